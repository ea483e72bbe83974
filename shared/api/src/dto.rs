//! Wire shapes of the public API. These types are what the handlers really parse and return,
//! and the OpenAPI document is generated from them.

use std::collections::BTreeMap;

use domain::model::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub api_key: Option<String>,
}

/// Opens a dashboard session with an API key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    pub api_key: String,
}

/// Who is signed in. The session itself is the HttpOnly `gv_session` cookie.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    pub user_id: Uuid,
    pub email: String,
    pub plan: Plan,
    pub roles: Vec<Role>,
    /// Send it as `X-CSRF-Token` on every request that changes state (present for a cookie
    /// session; null for a bearer token or an API key, which need none).
    pub csrf_token: Option<String>,
    /// When the session ends (null for a bearer token or an API key).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
    /// Always `bearer`.
    pub token_type: &'static str,
}

/// What a client asks to have analysed (`POST /api/v1/analyze`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    pub content_type: ContentType,
    /// https URL of the content on a public host. For a video, a direct link to the file
    /// (MP4, MOV or WebM, up to 512 MiB; its type is read from its bytes): extraction fetches
    /// it once and measures that copy. A platform's page (tiktok.com/@…/video/…,
    /// youtube.com/watch?…) is refused with 422: upload the file instead.
    pub source_url: Option<String>,
    /// An upload made earlier (video or post).
    pub upload_id: Option<Uuid>,
    /// The caption, post text or script; required for `text`. At most 10,000 characters.
    pub caption: Option<String>,
    pub platform_hint: Option<Platform>,
    /// Whose submission this is: your own user id (admins may submit for others).
    pub user_id: Uuid,
    /// https URL (a public host) that receives a signed POST when the job ends.
    pub notify_webhook: Option<String>,
}

impl From<AnalyzeRequest> for domain::service::AnalyzeInput {
    fn from(r: AnalyzeRequest) -> Self {
        domain::service::AnalyzeInput {
            content_type: r.content_type,
            source_url: r.source_url,
            upload_id: r.upload_id,
            caption: r.caption,
            platform_hint: r.platform_hint,
            user_id: r.user_id,
            notify_webhook: r.notify_webhook,
        }
    }
}

/// Variants of one caption or headline to rank against each other.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompareRequest {
    /// 2 to 10 distinct variants (captions, headlines, hooks), each at most 10,000 characters.
    #[schema(min_items = 2, max_items = 10)]
    pub variants: Vec<String>,
    /// Where they will be posted. The ranking does not depend on it today.
    pub platform_hint: Option<Platform>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CompareResponse {
    /// The comparison's id (its usage ledger entry).
    pub comparison_id: Uuid,
    /// Strongest first.
    pub ranking: Vec<domain::ports::RankedVariant>,
    /// `pairwise[i][j]`: calibrated probability that `variants[i]` beats `variants[j]` (0.5 on
    /// the diagonal).
    pub pairwise: Vec<Vec<f64>>,
    /// Probability that the top variant beats the runner-up.
    pub confidence: f64,
    pub platform_hint: Option<Platform>,
    /// The model that ranked them.
    pub model: String,
}

/// What a job's post did, observed at one moment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    pub platform: Option<Platform>,
    /// The post's https address (on the platform's own host when `platform` is given).
    #[schema(pattern = "^https://[^/@?#\\s]+", max_length = 2048)]
    pub post_url: Option<String>,
    /// When the counts were read (RFC 3339); not in the future.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub observed_at: OffsetDateTime,
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub views: Option<u64>,
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub likes: Option<u64>,
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub comments: Option<u64>,
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub shares: Option<u64>,
    /// The author's followers when the content was posted.
    #[schema(maximum = 1_000_000_000_000_u64)]
    pub followers: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutcomeItem {
    pub outcome_id: Uuid,
    pub platform: Option<Platform>,
    pub post_url: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub observed_at: OffsetDateTime,
    pub views: Option<u64>,
    pub likes: Option<u64>,
    pub comments: Option<u64>,
    pub shares: Option<u64>,
    pub followers: Option<u64>,
    /// Who reported it: `api`.
    pub source: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: OffsetDateTime,
}

impl From<domain::outcomes::Outcome> for OutcomeItem {
    fn from(o: domain::outcomes::Outcome) -> Self {
        let i = o.input;
        OutcomeItem {
            outcome_id: o.id,
            platform: i.platform,
            post_url: i.post_url,
            observed_at: i.observed_at,
            views: i.views,
            likes: i.likes,
            comments: i.comments,
            shares: i.shares,
            followers: i.followers,
            source: o.source.as_str(),
            recorded_at: o.created_at,
        }
    }
}

/// A job's prediction beside what was observed of its post.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutcomeHistoryResponse {
    pub job_id: Uuid,
    pub status: JobStatus,
    /// The predicted score and confidence (null until the job is complete).
    pub score: Option<f64>,
    pub confidence: Option<f64>,
    /// Observations, newest first.
    pub observations: Vec<OutcomeItem>,
}

/// The body of a completion webhook, as the webhook stage sends it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionNoticeBody {
    pub job_id: Uuid,
    pub status: JobStatus,
    /// Present for a complete job.
    pub score: Option<f64>,
    /// RFC 3339
    pub timestamp: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyzeResponse {
    pub job_id: Uuid,
    pub status: JobStatus,
    pub estimated_completion_sec: u32,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Include the insights of a finished job.
    #[serde(default)]
    pub include_insights: bool,
    /// `metrics` adds the features and model metrics behind the score (empty: nothing added).
    #[param(pattern = "^(metrics)?$")]
    pub expand: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// A token from `POST /api/v1/analyze/{job_id}/stream-token`, for clients that cannot
    /// send headers (a browser's EventSource).
    #[param(max_length = 2048)]
    pub stream_token: Option<String>,
}

/// Opens one job's live stream for five minutes (a stream opened in time stays open).
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamTokenResponse {
    pub stream_token: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// The stream's URL with the token in it, for `new EventSource(url)` (relative to the API,
    /// or absolute where streams are served elsewhere).
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    pub job_id: Uuid,
    pub status: JobStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insights: Option<Vec<Insight>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<JobMetrics>)]
    pub metrics: Option<serde_json::Value>,
    /// Why the job failed, stage by stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub errors: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub moderation_flags: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1–100, default 20.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    pub status: Option<JobStatus>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryItem {
    pub job_id: Uuid,
    pub score: Option<f64>,
    pub status: JobStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    pub items: Vec<HistoryItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Category {
    pub id: InsightCategory,
    pub label: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplatesResponse {
    pub categories: Vec<Category>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminJobsQuery {
    pub status: Option<JobStatus>,
    /// RFC 3339; jobs created at or after.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// RFC 3339; jobs created at or before.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminJob {
    pub job_id: Uuid,
    pub user_id: Uuid,
    pub status: JobStatus,
    pub score: Option<f64>,
    pub confidence: Option<f64>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminJobsResponse {
    pub items: Vec<AdminJob>,
    /// Jobs per status over the same filter (every status present).
    pub totals: BTreeMap<JobStatus, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// A public https:// host (private, loopback and metadata addresses are refused).
    #[schema(pattern = "^https://[^/@?#\\s]+", max_length = 2048)]
    pub target_url: String,
    /// Default: every event.
    #[schema(min_items = 1)]
    pub events: Option<Vec<WebhookEvent>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookResponse {
    pub id: Uuid,
    pub target_url: String,
    pub events: Vec<WebhookEvent>,
    pub active: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Signing secret; present only in the response that created the subscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The secret that signs deliveries to your submissions' `notify_webhook`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningSecretResponse {
    /// The `X-GVN-Webhook-Id` those deliveries carry (`user:<your user id>`).
    pub signing_id: String,
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<WebhookResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    pub id: Uuid,
    pub prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
    pub rotated_from: Option<Uuid>,
    /// The key itself; present only in the response that issued it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub items: Vec<ApiKeyResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: &'static str,
    pub store: &'static str,
}

impl From<&WebhookSubscription> for WebhookResponse {
    fn from(w: &WebhookSubscription) -> Self {
        WebhookResponse {
            id: w.id,
            target_url: w.target_url.clone(),
            events: w.events.clone(),
            active: w.active,
            created_at: w.created_at,
            secret: None,
        }
    }
}

impl From<&ApiKey> for ApiKeyResponse {
    fn from(k: &ApiKey) -> Self {
        ApiKeyResponse {
            id: k.id,
            prefix: k.prefix.clone(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            rotated_from: k.rotated_from,
            api_key: None,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLettersQuery {
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetter {
    pub delivery_id: Uuid,
    pub job_id: Uuid,
    pub target_url: String,
    pub event: WebhookEvent,
    pub attempts: u32,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it was given up on.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub dead_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterList {
    pub items: Vec<DeadLetter>,
}

/// The upload request body is the domain's input type itself.
/// What a client asks for (`POST /api/v1/uploads`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// One of video/mp4, video/quicktime, video/webm (up to 512 MiB) or text/plain (up to 64 KiB).
    #[schema(pattern = "^(video/mp4|video/quicktime|video/webm|text/plain)$")]
    pub media_type: String,
    /// The exact size of the file in bytes; the upload URL accepts only this size.
    #[schema(minimum = 1, maximum = 536870912)]
    pub size_bytes: u64,
    /// The file's name, for your own reference.
    pub filename: Option<String>,
}

impl From<UploadRequest> for domain::uploads::UploadInput {
    fn from(r: UploadRequest) -> Self {
        domain::uploads::UploadInput { media_type: r.media_type, size_bytes: r.size_bytes, filename: r.filename }
    }
}

/// A request to make exactly as given: the method, the URL and every header.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedRequestDto {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

impl From<domain::ports::SignedRequest> for SignedRequestDto {
    fn from(r: domain::ports::SignedRequest) -> Self {
        SignedRequestDto { method: r.method, url: r.url, headers: r.headers, expires_at: r.expires_at }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResponse {
    pub upload_id: Uuid,
    /// `pending` until the file has arrived, then `ready` (or `rejected`, with `rejection`).
    pub status: UploadStatus,
    /// True when a pending upload's URL no longer works: ask for a new upload.
    pub expired: bool,
    pub media_type: String,
    pub size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection: Option<String>,
    /// How to send the file (in the creating response only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload: Option<SignedRequestDto>,
    /// Where to fetch the file back, for a few minutes (ready uploads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download: Option<SignedRequestDto>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub received_at: Option<OffsetDateTime>,
}

impl UploadResponse {
    pub fn new(u: &Upload, expired: bool) -> Self {
        UploadResponse {
            upload_id: u.id,
            status: u.status,
            expired,
            media_type: u.media_type.clone(),
            size_bytes: u.declared_bytes,
            filename: u.filename.clone(),
            rejection: u.rejection.clone(),
            upload: None,
            download: None,
            created_at: u.created_at,
            received_at: u.received_at,
        }
    }
}

// ------------------------------------------------------------------ the metrics contract
// What the pipeline writes under `metrics` (with `expand=metrics`), documented for clients.
// The JSON is built by the stages; these types only describe it, and the speech suite checks
// a real job's metrics against this part of the served document.

/// The score's workings. For a measured video, also `media`, `hook`, `media_findings` and
/// `video_basis`; other members (drivers, sub-scores) describe the text model.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobMetrics {
    pub model: String,
    pub media: Option<MediaMetrics>,
    pub hook: Option<HookMetrics>,
    /// Advice from the measurements: heuristics, not learned from outcomes; they do not move the score.
    pub media_findings: Option<Vec<MediaFinding>>,
    /// How a video's score and confidence were arrived at.
    pub video_basis: Option<String>,
    /// Why a video was not measured on this deployment (it was scored from its text).
    pub media_unavailable: Option<String>,
}

/// What was measured in the video (ffmpeg and the on-device speech model).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MediaMetrics {
    pub duration_s: f64,
    /// As shown (rotation applied).
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub rotation: i32,
    pub has_audio: bool,
    pub scenes: SceneMetrics,
    pub audio: AudioMetrics,
    pub speech: SpeechMetrics,
    /// Text burned into the picture, frame by frame (the hook at 0.5, 1.5 and 2.5 s, then
    /// every 5 s); null where text is not read on this deployment.
    pub on_screen_text: Option<Vec<ScreenTextMetrics>>,
    /// Faces in the same sampled frames; null where faces are not looked for on this
    /// deployment.
    pub faces: Option<FaceMetrics>,
    pub hook: HookMetrics,
    /// Stills for the dashboard (the hook, then just after each cut), as blob keys.
    pub thumbnails: Vec<ThumbnailMetrics>,
    /// `ffmpeg`.
    pub engine: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SceneMetrics {
    /// Hard cuts, seconds from the start.
    pub cuts_s: Vec<f64>,
    pub cuts_per_minute: f64,
    pub first_cut_s: Option<f64>,
    /// Share of the duration that is black, 0–1.
    pub black_ratio: f64,
    /// Share in which the picture does not change, 0–1.
    pub static_ratio: f64,
}

/// Sound; every member is null for a video without a sound track.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AudioMetrics {
    /// EBU R128 integrated loudness (platforms normalise to about −14).
    pub loudness_lufs: Option<f64>,
    pub loudness_range_lu: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    /// Share of the duration below −35 dBFS for 0.4 s or more, 0–1.
    pub silence_ratio: Option<f64>,
    /// When the first sound starts.
    pub sound_onset_s: Option<f64>,
    /// When the first words start (null: no speech heard).
    pub speech_onset_s: Option<f64>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SpeechMetrics {
    /// `openai (whisper-1)` when OpenAI is configured, `whisper-tiny.en (on-device)`, or
    /// `unavailable` (then `reason` says why).
    pub engine: String,
    /// Why OpenAI's transcription was not used although configured (it failed; on-device was).
    pub fallback: Option<String>,
    /// `en`; null when nothing was transcribed.
    pub language: Option<String>,
    pub transcript: String,
    pub segments: Vec<SpeechSegment>,
    pub words: u32,
    /// Seconds in which someone speaks.
    pub speaking_s: f64,
    pub words_per_minute: Option<f64>,
    /// Why there is no transcript (no sound track, no model installed).
    pub reason: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SpeechSegment {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
}

/// The first seconds, where viewers decide.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HookMetrics {
    /// How long the hook is taken to be (3).
    pub seconds: f64,
    /// Mean absolute frame difference over the hook (0: nothing moves).
    pub motion: Option<f64>,
    pub cut_in_hook: bool,
    pub speech_onset_s: Option<f64>,
    /// What is said in the hook.
    pub spoken: String,
    /// What is written on screen in the hook; null where text is not read.
    pub on_screen_text: Option<String>,
    /// Whether a face is seen in the hook; null where faces are not looked for.
    pub face: Option<bool>,
}

/// Faces found by an on-device detector (CenterFace) in the sampled frames.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct FaceMetrics {
    /// A face is seen in a frame of the hook (0.5, 1.5 or 2.5 s).
    pub in_hook: bool,
    /// The first sampled frame with a face, seconds from the start.
    pub first_face_s: Option<f64>,
    /// Share of the sampled frames with a face, 0–1.
    pub share_of_frames: f64,
    /// The largest face in the hook, as a share of the frame's area, 0–1.
    pub largest_in_hook: Option<f64>,
    /// The most faces in one frame.
    pub most_at_once: u32,
    pub frames_checked: u32,
    /// `centerface`.
    pub engine: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ThumbnailMetrics {
    pub t_s: f64,
    /// `thumbnails/{job_id}/NN.jpg` in the blob store.
    pub key: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ScreenTextMetrics {
    /// When the frame is, seconds from the start.
    pub t_s: f64,
    pub text: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MediaFinding {
    pub category: InsightCategory,
    /// Which rule fired, e.g. `late_first_words`, `slow_cutting`, `quiet_mix`.
    pub rule: String,
    /// What was measured, with the number.
    pub message: String,
    /// The change to make.
    pub fix: String,
    /// Where it applies, seconds from the start (a span with `until_s`).
    pub at_s: f64,
    pub until_s: Option<f64>,
    /// `heuristic: platform guidance, not learned from outcomes`.
    pub basis: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageCurrentQuery {
    /// Whose usage (default: the caller's; another user's needs the admin role).
    pub user_id: Option<Uuid>,
}

/// Where an account stands in the current period (a calendar month, UTC).
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageCurrentResponse {
    pub user_id: Uuid,
    pub plan: Plan,
    /// `2026-12`.
    pub period: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub period_start: OffsetDateTime,
    /// When the allowance resets.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub period_end: OffsetDateTime,
    /// Units included this period (1 per text or post, 1 per started minute of video).
    pub allowance: u64,
    pub used: u64,
    pub remaining: u64,
    /// True on free: nothing is admitted past the allowance (429 `quota_exceeded`).
    pub hard_cap: bool,
    /// Units past the allowance, billed at `overage_cents_per_unit`.
    pub overage_units: u64,
    /// The overage at the period's end at the pace so far.
    pub projected_overage_units: u64,
    pub overage_cents_per_unit: u64,
    /// Prepaid units left; null when the account does not pay in advance.
    pub credits: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Whose usage (default: the caller's; another user's needs the admin role).
    pub user_id: Option<Uuid>,
    /// First day, `YYYY-MM-DD` (UTC); default: the first of this month.
    #[param(format = Date)]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD`; default: today. At most 366 days from `from`.
    #[param(format = Date)]
    pub to: Option<String>,
    /// Bucket size; default `day`.
    pub granularity: Option<UsageGranularity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsageGranularity {
    Day,
    Month,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageBucketItem {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub end: OffsetDateTime,
    pub kind: UsageKind,
    /// Net units: charges less what was given back (unused video minutes, our failures).
    pub units: i64,
    /// Analyses (or comparisons) admitted, and of them credited back.
    pub analyses: u64,
    pub reversed: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageResponse {
    pub user_id: Uuid,
    pub granularity: UsageGranularity,
    /// Buckets with usage, oldest first (days or months without usage are left out).
    pub buckets: Vec<UsageBucketItem>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AdminUsageQuery {
    /// Accounts at or past this share of their allowance (default 0.8; 1 = all of it).
    #[param(minimum = 0, maximum = 10)]
    pub share: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUsageResponse {
    pub accounts: Vec<UsageCurrentResponse>,
}

/// An operator's change to an account's terms: fields left out stay as they are; `null`
/// returns the allowance to the plan's, or stops prepaying.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageTermsRequest {
    pub plan: Option<Plan>,
    /// Units per month instead of the plan's; null: the plan's.
    #[serde(default, deserialize_with = "present_units")]
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 1_000_000_000)]
    pub allowance_override: Option<Option<u64>>,
    /// Prepaid units; null: the account stops paying in advance.
    #[serde(default, deserialize_with = "present_units")]
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 1_000_000_000)]
    pub credits: Option<Option<u64>>,
    /// Prepaid units added to the balance as it is when the change applies (after `credits`,
    /// if both are given), so a top-up never undoes a debit made meanwhile; null adds nothing.
    #[serde(default, deserialize_with = "added_units")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 1_000_000_000)]
    pub add_credits: Option<u64>,
    /// The Stripe customer (`cus_…`) the account's usage is exported to; null: not exported.
    #[serde(default, deserialize_with = "present_text")]
    #[schema(value_type = Option<String>, pattern = "^cus_[A-Za-z0-9]{1,60}$")]
    pub stripe_customer_id: Option<Option<String>>,
}

/// A top-up: whole units, 1–`MAX_UNITS`; null is none.
fn added_units<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error as _;
    match present_units(d)? {
        Some(Some(0)) => Err(D::Error::custom(format!("must be a whole number of units, 1–{MAX_UNITS}"))),
        units => Ok(units.flatten()),
    }
}

fn present_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The most units an allowance or a credit balance may be set to.
pub const MAX_UNITS: u64 = 1_000_000_000;

/// A field that is there is `Some` (null: `Some(None)`); an absent one stays `None`. A
/// number of units is whole (JSON's `7.0` is 7), 0–`MAX_UNITS`.
fn present_units<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    use serde::de::Error as _;
    let value = Option::<serde_json::Number>::deserialize(d)?;
    let Some(n) = value else { return Ok(Some(None)) };
    let units = n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= MAX_UNITS as f64).map(|f| f as u64));
    match units {
        Some(u) if u <= MAX_UNITS => Ok(Some(Some(u))),
        _ => Err(D::Error::custom(format!("must be a whole number of units, 0–{MAX_UNITS}"))),
    }
}

/// Start connecting a platform account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    pub platform: Platform,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectResponse {
    pub platform: Platform,
    /// Send the creator here to grant read access; the platform sends them back to
    /// `/api/v1/accounts/callback`.
    pub authorize_url: String,
    /// The `state` the callback must bring back (single use).
    pub state: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

/// What the platform's redirect carries (other parameters the platforms add are ignored).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The `state` the connection was started with (single use).
    pub state: String,
    pub code: Option<String>,
    /// Set when the creator declined (`access_denied`).
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// What the platform's redirect brought to the creator's browser, sent on by the dashboard
/// with the creator's own session: the connection is finished only for the account that
/// started it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishConnectionRequest {
    #[schema(max_length = 256)]
    pub state: String,
    #[schema(max_length = 2048)]
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A connected account; its tokens are never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountItem {
    pub account_id: Uuid,
    pub platform: Platform,
    /// The platform's id for the account.
    pub external_id: String,
    pub handle: Option<String>,
    pub followers: Option<u64>,
    /// `active`, or `reauth_required` (the grant was revoked or lacks a permission).
    pub status: &'static str,
    pub scopes: Vec<String>,
    /// Why the account needs attention, when it does.
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub token_expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub connected_at: OffsetDateTime,
}

impl From<domain::accounts::ConnectedAccount> for AccountItem {
    fn from(a: domain::accounts::ConnectedAccount) -> Self {
        AccountItem {
            account_id: a.id,
            platform: a.platform,
            external_id: a.external_id,
            handle: a.handle,
            followers: a.followers,
            status: a.status.as_str(),
            scopes: a.scopes,
            last_error: a.last_error,
            token_expires_at: a.tokens.expires_at,
            connected_at: a.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountsResponse {
    pub items: Vec<AccountItem>,
}

/// Follow a job's post on a connected account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrackPostRequest {
    pub account_id: Uuid,
    /// The post's address on the platform (Instagram: the permalink).
    #[schema(max_length = 2048)]
    pub post_url: Option<String>,
    /// The platform's id for the post, instead of its address.
    #[schema(max_length = 64)]
    pub post_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrackedPostItem {
    pub tracked_post_id: Uuid,
    pub account_id: Uuid,
    pub platform: Platform,
    pub post_id: String,
    pub post_url: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub posted_at: OffsetDateTime,
    /// The author's followers when the post was linked.
    pub followers: Option<u64>,
    pub checks_done: u32,
    /// The next reading (about 24 h and 7 days after posting); null once done.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_check_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
}

impl From<domain::collect::TrackedPost> for TrackedPostItem {
    fn from(t: domain::collect::TrackedPost) -> Self {
        TrackedPostItem {
            tracked_post_id: t.id,
            account_id: t.account_id,
            platform: t.platform,
            post_id: t.post_id,
            post_url: t.post_url,
            posted_at: t.posted_at,
            followers: t.followers,
            checks_done: t.checks_done,
            next_check_at: t.next_check_at,
            last_error: t.last_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrackPostResponse {
    pub post: TrackedPostItem,
    /// The first reading, made now.
    pub observation: OutcomeItem,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrackedPostsResponse {
    pub items: Vec<TrackedPostItem>,
}

/// A registered model version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelVersionItem {
    pub model_version_id: Uuid,
    pub name: String,
    pub version: u32,
    /// `headline@3`: how results (`metrics.model_version`, model runs) name it.
    pub label: String,
    /// `candidate`, `approved`, `rejected`, `serving` or `retired`.
    pub state: &'static str,
    pub artifact_sha256: String,
    pub artifact_bytes: u64,
    pub training_data_hash: String,
    pub code_version: String,
    /// Its gate metrics beside the serving version's on the same gate set.
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// It beat the serving version on the gate.
    pub gate_passed: bool,
    pub gate_summary: String,
    /// Approved although it did not pass the gate.
    pub overridden: bool,
    pub decided_by: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<OffsetDateTime>,
    pub decision_note: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub serving_since: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<domain::registry::ModelVersion> for ModelVersionItem {
    fn from(v: domain::registry::ModelVersion) -> Self {
        ModelVersionItem {
            model_version_id: v.id,
            label: v.label(),
            gate_summary: domain::registry::gate_summary(&v.metrics),
            name: v.name,
            version: v.version,
            state: v.state.as_str(),
            artifact_sha256: v.artifact_sha256,
            artifact_bytes: v.artifact_bytes,
            training_data_hash: v.training_data_hash,
            code_version: v.code_version,
            metrics: v.metrics,
            gate_passed: v.gate_passed,
            overridden: v.overridden,
            decided_by: v.decided_by,
            decided_at: v.decided_at,
            decision_note: v.decision_note,
            serving_since: v.serving_since,
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelVersionsResponse {
    pub items: Vec<ModelVersionItem>,
}

/// An admin's decision on a model version.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelDecisionRequest {
    /// Why (required with `override_gate`); kept in the registry and the audit log.
    #[schema(max_length = 1000)]
    pub note: Option<String>,
    /// Approve a candidate that did not beat the serving model on the gate.
    #[serde(default)]
    pub override_gate: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The model to roll back (default: the scorer, `headline`).
    pub name: Option<String>,
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}
