//! A job's live stream (Server-Sent Events), and the short-lived tokens browsers open it with:
//! an EventSource cannot send headers, and an API key must never sit in a URL.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use domain::Error;
use domain::model::JobEvent;
use domain::service::{App, Principal};
use futures_util::StreamExt;
use http::StatusCode;
use http::request::Parts;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::path_id;
use crate::dto::{EventsQuery, StreamTokenResponse};
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{Auth, ValidQuery};

/// How often an open stream looks for new events: they are written by whichever process runs
/// the stage (the in-process runner, or a stage Lambda), so the store is where they meet.
const POLL: Duration = Duration::from_millis(500);
/// Streams open at once in this process; past it, 503 `overloaded` (each holds a connection
/// and a poll, so the count is what bounds their memory and load).
pub const MAX_STREAMS: usize = 2_000;
static OPEN_STREAMS: Semaphore = Semaphore::const_new(MAX_STREAMS);

/// Live streams open now in this process.
pub fn open_streams() -> usize {
    MAX_STREAMS - OPEN_STREAMS.available_permits()
}

/// A token that opens this job's live stream for five minutes, for a browser's EventSource.
#[utoipa::path(post, path = "/api/v1/analyze/{job_id}/stream-token", tag = "analysis",
    params(("job_id" = uuid::Uuid, Path)),
    responses((status = 201, body = StreamTokenResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn stream_token(State(app): State<Arc<App>>, Auth(principal): Auth, Path(job_id): Path<String>) -> ApiResult<Response> {
    let job_id = path_id(&job_id, "job")?;
    let (token, expires_at) = app.stream_token(&principal, job_id).await?;
    let base = app.settings.stream_base_url.as_deref().unwrap_or("");
    let url = format!("{base}/api/v1/analyze/{job_id}/events?stream_token={token}");
    Ok((StatusCode::CREATED, Json(StreamTokenResponse { stream_token: token, expires_at, url })).into_response())
}

/// The job's progress as Server-Sent Events: `queued`, each stage as it starts, `progress`
/// during extraction, then `complete` (score, confidence) or `failed` (errors), after which
/// the stream closes. Each event's id is its number in the job's stream: reconnect with
/// `Last-Event-ID` to get only what followed. A finished job answers its whole history and
/// closes. Authenticate with a bearer token or `X-API-Key`, or (browsers) `stream_token`.
#[utoipa::path(get, path = "/api/v1/analyze/{job_id}/events", tag = "analysis",
    params(("job_id" = uuid::Uuid, Path), EventsQuery,
        ("Last-Event-ID" = Option<u32>, Header, description = "The last event id seen: the stream resumes after it")),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
            description = "`id: <n>`, `event: <kind>`, `data: {\"job_id\", \"seq\", \"kind\", \"at\", \"data\"}`; a comment every 15 s"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, description = "`too_many`: this account or credential already holds its live streams", body = ErrorBody),
        (status = 503, description = "`overloaded`: too many streams are open; retry after Retry-After", body = ErrorBody)),
    security((), ("bearer" = []), ("api_key" = [])))]
pub async fn events(
    State(app): State<Arc<App>>,
    Path(job_id): Path<String>,
    ValidQuery(q): ValidQuery<EventsQuery>,
    mut parts: Parts,
) -> ApiResult<Response> {
    let job_id = path_id(&job_id, "job")?;
    let principal = match q.stream_token.as_deref() {
        Some(token) => app.stream_principal(token, job_id).await?,
        None => Auth::from_request_parts(&mut parts, &app).await?.0,
    };
    let after = match parts.headers.get("last-event-id") {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .ok_or_else(|| Error::validation("Last-Event-ID", "must be an event id this stream sent (a whole number)"))?,
    };
    // Asked before the stream starts, so a job that is not the caller's is a plain 404.
    let (job, first) = app.job_events(&principal, job_id, after).await?;
    // A client that resumes after the end of a finished job's stream gets an empty one.
    let ended = first.is_empty() && job.status.is_ended();
    let (heartbeat_every, open_for) = (app.settings.stream_heartbeat, app.settings.stream_max);
    let place = app.take_stream_place(&principal)?;
    let permit = OPEN_STREAMS.try_acquire().map_err(|_| Error::Overloaded("too many live streams are open; retry shortly".into()))?;
    let now = Instant::now();
    let stream = Stream {
        app,
        principal,
        job_id,
        after,
        pending: first,
        ended,
        deadline: now + open_for,
        recheck_every: heartbeat_every,
        next_check: now + heartbeat_every,
        _place: place,
        _permit: permit,
    };
    let events = futures_util::stream::unfold(stream, Stream::next)
        .flat_map(|batch| futures_util::stream::iter(batch.into_iter().map(Ok::<_, Infallible>)));
    // A comment on a quiet stream keeps proxies and browsers from closing it.
    let heartbeat = KeepAlive::new().interval(heartbeat_every).text("heartbeat");
    Ok(Sse::new(events).keep_alive(heartbeat).into_response())
}

/// One open stream: what it has sent, and its place among the open ones.
struct Stream {
    app: Arc<App>,
    principal: Principal,
    job_id: uuid::Uuid,
    after: u32,
    pending: Vec<JobEvent>,
    ended: bool,
    deadline: Instant,
    /// The credential is checked again this often (the heartbeat's period): a revoked key,
    /// an ended session or a deactivated account closes the stream.
    recheck_every: Duration,
    next_check: Instant,
    _place: domain::guard::Held,
    _permit: SemaphorePermit<'static>,
}

impl Stream {
    /// The next events to send (waiting for some), or None when the stream is over.
    async fn next(mut self) -> Option<(Vec<Event>, Stream)> {
        loop {
            if self.ended || Instant::now() >= self.deadline {
                return None;
            }
            if !self.pending.is_empty() {
                let batch: Vec<Event> = std::mem::take(&mut self.pending).iter().map(|e| self.sent(e)).collect();
                return Some((batch, self));
            }
            tokio::time::sleep(POLL).await;
            if Instant::now() >= self.next_check {
                if let Err(e) = self.app.check_credential_live(&self.principal).await {
                    tracing::info!(job_id = %self.job_id, reason = %e, "live stream closed: its credential no longer stands");
                    return None;
                }
                self.next_check = Instant::now() + self.recheck_every;
            }
            match self.app.job_events(&self.principal, self.job_id, self.after).await {
                Ok((job, events)) => {
                    self.ended = events.is_empty() && job.status.is_ended();
                    self.pending = events;
                }
                // The store is unavailable: end the stream; the client reconnects and resumes.
                Err(e) => {
                    tracing::warn!(job_id = %self.job_id, error = %e, "live stream ended early");
                    return None;
                }
            }
        }
    }

    fn sent(&mut self, e: &JobEvent) -> Event {
        self.after = e.seq;
        self.ended |= e.kind.is_terminal();
        let at = e.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let body = serde_json::json!({"job_id": e.job_id, "seq": e.seq, "kind": e.kind.as_str(), "at": at, "data": e.data});
        Event::default().id(e.seq.to_string()).event(e.kind.as_str()).data(body.to_string())
    }
}
