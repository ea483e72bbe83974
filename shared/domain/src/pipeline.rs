//! The analysis pipeline's stages: moderation → extraction → inference → webhook, plus the
//! failure handler. Each stage is a plain async function over ports. The Step Functions
//! Lambdas and the local runner call the same [`run_stage`].
//!
//! Only ids and blob keys travel between stages (the claim-check pattern; Step Functions
//! payloads are capped at 256 KB). Every stage is idempotent: running one twice for a job
//! writes nothing twice. Webhooks are delivered at least once: a delivery is recorded after
//! its POST, so a crash between the two sends it again, with the same `X-GVN-Delivery` id
//! for receivers to drop the repeat.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;
use uuid::Uuid;

use crate::auth;
use crate::error::Error;
use crate::model::*;
use crate::ports::{BlobStore, MediaAnalyzer, MediaFetcher, Moderator, ScoreRequest, Scorer, Store, WebhookSender};

/// Error type names the state machine's Retry and Catch rules match on.
pub const RETRYABLE: &str = "Stage.Retryable";
pub const PERMANENT: &str = "Stage.Permanent";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StageError {
    /// Worth trying again later: a dependency is down or slow.
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way again: bad input, missing data, a bug.
    #[error("{0}")]
    Permanent(String),
}

impl StageError {
    pub fn type_name(&self) -> &'static str {
        match self {
            StageError::Retryable(_) => RETRYABLE,
            StageError::Permanent(_) => PERMANENT,
        }
    }
}

impl From<Error> for StageError {
    fn from(e: Error) -> Self {
        if e.is_retryable() { StageError::Retryable(e.to_string()) } else { StageError::Permanent(e.to_string()) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Moderation,
    Extraction,
    Inference,
    Webhook,
    /// The Catch target: marks the job failed with the caught error.
    Failure,
}

impl Stage {
    pub const ALL: &'static [Stage] = &[Stage::Moderation, Stage::Extraction, Stage::Inference, Stage::Webhook, Stage::Failure];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Moderation => "moderation",
            Stage::Extraction => "extraction",
            Stage::Inference => "inference",
            Stage::Webhook => "webhook",
            Stage::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.iter().copied().find(|st| st.as_str() == s)
    }

    /// The Lambda (and package) that runs this stage on AWS.
    pub fn function_name(self) -> &'static str {
        match self {
            Stage::Moderation => "stage-moderation",
            Stage::Extraction => "stage-extraction",
            Stage::Inference => "stage-inference",
            Stage::Webhook => "stage-webhook",
            Stage::Failure => "stage-failure",
        }
    }
}

// ------------------------------------------------------------------ what travels between stages

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModerationResult {
    pub flagged: bool,
    /// Blob key of the text moderation read and passed: what extraction and inference work
    /// on, so the content is read once per job and what is scored is what was moderated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractionResult {
    /// Blob key of the features document.
    pub features_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceResult {
    pub score: f64,
}

/// The `{Error, Cause}` object Step Functions puts at a Catch's ResultPath. Either may be
/// null or missing (a failure reported without a cause); that must not fail the failure path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaughtError {
    #[serde(rename = "Error", default, deserialize_with = "null_as_empty")]
    pub error: String,
    #[serde(rename = "Cause", default, deserialize_with = "null_as_empty")]
    pub cause: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// The execution's state document. Each stage adds its result under its own key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineState {
    pub job_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderation: Option<ModerationResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extraction: Option<ExtractionResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CaughtError>,
    /// Which stage a caught error came from (set by the state machine's Catch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_stage: Option<String>,
}

impl PipelineState {
    pub fn new(job_id: Uuid) -> Self {
        PipelineState { job_id, moderation: None, extraction: None, inference: None, error: None, failed_stage: None }
    }
}

// ------------------------------------------------------------------ the stages

#[derive(Debug, Clone)]
pub struct WebhookPolicy {
    /// Deliveries per target before it is dead-lettered (the state machine's Retry allows one
    /// fewer retries than this, so both give up together).
    pub max_attempts: u32,
    /// Local development only: let webhooks reach 127.0.0.1.
    pub allow_loopback: bool,
}

pub struct StageContext {
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub moderator: Arc<dyn Moderator>,
    pub scorer: Arc<dyn Scorer>,
    pub media: Arc<dyn MediaAnalyzer>,
    /// Downloads a video's `source_url`.
    pub fetcher: Arc<dyn MediaFetcher>,
    pub webhooks: Arc<dyn WebhookSender>,
    pub webhook_policy: WebhookPolicy,
}

type StageResult<T> = Result<T, StageError>;

/// Runs one stage on the execution's state document and returns the stage's result (which
/// the state machine stores at the stage's ResultPath).
pub async fn run_stage(ctx: &StageContext, stage: Stage, input: Value) -> StageResult<Value> {
    let state: PipelineState = serde_json::from_value(input).map_err(|e| StageError::Permanent(format!("bad stage input: {e}")))?;
    // Instrumented, not entered: a guard held across an await would tag whatever else runs
    // on this thread meanwhile with this job's id.
    let span = tracing::info_span!("stage", stage = stage.as_str(), job_id = %state.job_id);
    async {
        let started = match stage {
            Stage::Moderation => Some(JobEventKind::Moderation),
            Stage::Extraction => Some(JobEventKind::Extraction),
            Stage::Inference => Some(JobEventKind::Inference),
            Stage::Webhook | Stage::Failure => None,
        };
        if let Some(kind) = started {
            tell(ctx, state.job_id, kind, json!({})).await;
        }
        let started_at = Instant::now();
        let result = async {
            Ok(match stage {
                Stage::Moderation => to_value(moderate(ctx, &state).await?),
                Stage::Extraction => to_value(extract(ctx, &state).await?),
                Stage::Inference => to_value(infer(ctx, &state).await?),
                Stage::Webhook => to_value(notify(ctx, &state).await?),
                Stage::Failure => to_value(mark_failed(ctx, &state).await?),
            })
        }
        .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StageError::Retryable(_)) => "retryable",
            Err(_) => "permanent",
        };
        crate::telemetry::metrics().observe_ms(
            crate::telemetry::Metric::StageDuration,
            &[("stage", stage.as_str()), ("outcome", outcome)],
            started_at.elapsed().as_secs_f64() * 1000.0,
        );
        result
    }
    .instrument(span)
    .await
}

/// Adds a step to the job's live stream. Best effort: a stream that misses a step still ends
/// with the job (the events route reads the job's own state for that), so a failure here
/// never fails the stage.
pub async fn tell(ctx: &StageContext, job_id: Uuid, kind: JobEventKind, data: Value) {
    if let Err(e) = ctx.store.append_job_event(job_id, kind, &data, now()).await {
        tracing::warn!(%job_id, kind = kind.as_str(), error = %e, "job event not recorded");
    }
}

/// Fails the job with `errors` (and moderation `flags`) and tells its stream.
pub async fn fail_job(ctx: &StageContext, job_id: Uuid, errors: &Value, flags: Option<&Value>) -> crate::Result<bool> {
    let failed = ctx.store.fail_job(job_id, errors, flags, now()).await?;
    if failed {
        tell(ctx, job_id, JobEventKind::Failed, json!({"errors": errors})).await;
    }
    Ok(failed)
}

fn to_value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("stage results serialise")
}

async fn load(ctx: &StageContext, job_id: Uuid) -> StageResult<(Job, Submission)> {
    let job = ctx.store.job(job_id).await?.ok_or_else(|| StageError::Permanent(format!("job {job_id} does not exist")))?;
    let submission = ctx.store.submission(job.submission_id).await?.ok_or_else(|| StageError::Permanent("submission missing".into()))?;
    Ok((job, submission))
}

/// The text the stages work on: the caption, then an uploaded text file's body.
/// (A video's speech joins it in extraction, once it has been transcribed.)
async fn content_text(ctx: &StageContext, s: &Submission) -> StageResult<String> {
    let mut text = s.caption.clone().unwrap_or_default();
    let Some(upload_id) = s.upload_id else { return Ok(text) };
    let upload = ctx.store.upload(upload_id).await?.ok_or_else(|| StageError::Permanent(format!("upload {upload_id} is missing")))?;
    if crate::uploads::is_text(&upload.media_type) {
        // The immutable copy intake took, checked against its checksum: a file swapped at
        // the upload URL after intake is never read.
        let bytes = crate::uploads::read_content(ctx.blobs.as_ref(), &upload).await?;
        let body = String::from_utf8(bytes).map_err(|_| StageError::Permanent("uploaded text is not UTF-8".into()))?;
        if !text.trim().is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(body.trim());
    }
    Ok(text)
}

pub async fn moderate(ctx: &StageContext, state: &PipelineState) -> StageResult<ModerationResult> {
    let (job, submission) = load(ctx, state.job_id).await?;
    match job.status {
        JobStatus::Failed => return Ok(ModerationResult { flagged: job.moderation_flags.is_some(), text_key: None }),
        JobStatus::Queued => {
            ctx.store.transition_job(job.id, &[JobStatus::Queued], JobStatus::Processing, now()).await?;
        }
        _ => {}
    }
    let text = content_text(ctx, &submission).await?;
    // Fail closed: an unavailable moderator is an error (retried, then caught), never a pass.
    let verdict = ctx.moderator.moderate(&text).await.map_err(|e| match e {
        Error::Unavailable(m) => StageError::Retryable(format!("moderation unavailable: {m}")),
        other => StageError::from(other),
    })?;
    if verdict.flagged {
        let errors = json!([{"stage": "moderation", "error": "content_flagged", "reason": verdict.reasons.join("; ")}]);
        let flags = json!({"categories": verdict.categories, "reasons": verdict.reasons, "model": verdict.model});
        fail_job(ctx, job.id, &errors, Some(&flags)).await?;
        tracing::info!("content flagged by moderation");
    }
    if verdict.flagged {
        return Ok(ModerationResult { flagged: true, text_key: None });
    }
    let key = moderated_text_key(job.id);
    // Same key on every run: a redelivery overwrites with identical bytes.
    ctx.blobs.put(&key, text.into_bytes(), "text/plain; charset=utf-8").await?;
    Ok(ModerationResult { flagged: false, text_key: Some(key) })
}

pub fn features_key(job_id: Uuid) -> String {
    format!("features/{job_id}.json")
}

pub fn moderated_text_key(job_id: Uuid) -> String {
    format!("moderated/{job_id}.txt")
}

pub async fn extract(ctx: &StageContext, state: &PipelineState) -> StageResult<ExtractionResult> {
    let (_, submission) = load(ctx, state.job_id).await?;
    let text = match state.moderation.as_ref().and_then(|m| m.text_key.as_deref()) {
        Some(key) => {
            let bytes = ctx.blobs.get(key).await?.ok_or_else(|| StageError::Retryable(format!("moderated text {key} is not readable")))?;
            String::from_utf8(bytes).map_err(|_| StageError::Permanent("moderated text is not UTF-8".into()))?
        }
        // An execution started before moderation kept its text: read the content itself.
        None => content_text(ctx, &submission).await?,
    };
    let media = measure_media(ctx, state.job_id, &submission).await?;
    if submission.content_type == ContentType::Video {
        // Admission reserved the longest video's minutes: settle at the started minutes
        // measured (one where the video could not be measured here).
        let units = media["duration_s"].as_f64().map_or(1, crate::usage::video_units);
        ctx.store.settle_charge(state.job_id, units, now()).await?;
    }
    moderate_media(ctx, state.job_id, &media).await?;
    let text = with_spoken_hook(text, &media);
    let document = json!({
        "job_id": state.job_id,
        "media": media,
        "content_type": submission.content_type,
        "platform": submission.platform_hint,
        // The scorer's own reading of the text: inference scores exactly this.
        "features": ctx.scorer.features(&text, submission.platform_hint),
        "text": text,
    });
    let key = features_key(state.job_id);
    // Same key on every run: a redelivery overwrites with identical bytes.
    ctx.blobs.put(&key, serde_json::to_vec(&document).expect("features serialise"), "application/json").await?;
    Ok(ExtractionResult { features_key: key })
}

/// What is said and shown in the video goes through moderation too, before anything is
/// scored; fail closed as for the text. A flag fails the job with the moderator's reasons.
async fn moderate_media(ctx: &StageContext, job_id: Uuid, media: &Value) -> StageResult<()> {
    let mut said = media["speech"]["transcript"].as_str().unwrap_or_default().to_string();
    for frame in media["on_screen_text"].as_array().into_iter().flatten() {
        said.push('\n');
        said.push_str(frame["text"].as_str().unwrap_or_default());
    }
    let stills = if ctx.moderator.sees_pictures() { stills(ctx, media).await? } else { Vec::new() };
    if said.trim().is_empty() && stills.is_empty() {
        return Ok(());
    }
    let verdict = ctx.moderator.moderate_video(&said, &stills).await.map_err(|e| match e {
        Error::Unavailable(m) => StageError::Retryable(format!("moderation unavailable: {m}")),
        other => StageError::from(other),
    })?;
    if !verdict.flagged {
        return Ok(());
    }
    let reason = format!("what is said or shown in the video was flagged: {}", verdict.reasons.join("; "));
    let errors = json!([{"stage": "moderation", "error": "content_flagged", "reason": reason}]);
    let source = if stills.is_empty() { "video speech and on-screen text" } else { "video speech, on-screen text and frames" };
    let flags = json!({"categories": verdict.categories, "reasons": verdict.reasons, "model": verdict.model, "source": source});
    fail_job(ctx, job_id, &errors, Some(&flags)).await?;
    tracing::info!("video flagged by moderation");
    // The job is failed already; the Catch path only notifies.
    Err(StageError::Permanent(reason))
}

/// The video's stored thumbnails (the opening and each shot), for a moderator that looks at
/// pictures. One that cannot be read is retried: a frame left unchecked would fail open.
async fn stills(ctx: &StageContext, media: &Value) -> StageResult<Vec<crate::ports::Still>> {
    let mut stills = Vec::new();
    for thumb in media["thumbnails"].as_array().into_iter().flatten() {
        let (Some(key), Some(t_s)) = (thumb["key"].as_str(), thumb["t_s"].as_f64()) else { continue };
        let jpeg = ctx.blobs.get(key).await?.ok_or_else(|| StageError::Retryable(format!("thumbnail {key} is not readable")))?;
        stills.push(crate::ports::Still { t_s, jpeg });
    }
    // A measured video has at least its opening still; without it the pictures would go
    // unchecked (fail closed: retried, then failed).
    if stills.is_empty() && media["duration_s"].is_number() {
        return Err(StageError::Retryable("no still of the video could be taken for moderation".into()));
    }
    Ok(stills)
}

/// The text the model scores: the caption (or uploaded text), then the video's hook as a
/// viewer meets it: the text on screen in its first seconds, and what is said in them (or
/// the first sentence, when speech starts later).
fn with_spoken_hook(mut text: String, media: &Value) -> String {
    let shown = media["hook"]["on_screen_text"].as_str();
    let spoken = media["hook"]["spoken"].as_str().filter(|h| !h.trim().is_empty()).or(media["speech"]["segments"][0]["text"].as_str());
    for part in [shown, spoken].into_iter().flatten().map(str::trim).filter(|s| !s.is_empty()) {
        if !text.trim().is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(part);
    }
    text
}

/// The measurements of the job's video (null for text). A deployment without media tools
/// says so in the document and the job is scored from its text, as before media analysis.
async fn measure_media(ctx: &StageContext, job_id: Uuid, submission: &Submission) -> StageResult<Value> {
    let file = std::env::temp_dir().join(format!("goviral-media-{}", Uuid::new_v4().simple()));
    let _cleanup = RemoveOnDrop(file.clone());
    if !video_to_file(ctx, job_id, submission, &file).await? {
        return Ok(Value::Null);
    }
    let bytes = tokio::fs::metadata(&file).await.map(|m| m.len()).unwrap_or(0);
    progress(ctx, job_id, MediaStep::Received, json!({"bytes": bytes})).await;
    match ctx.media.analyze(&file).await {
        Ok(mut report) => {
            let measured = json!({
                "duration_s": report["duration_s"],
                "cuts": report["scenes"]["cuts_s"].as_array().map_or(0, Vec::len),
                "speech": report["speech"]["transcript"].as_str().is_some_and(|t| !t.trim().is_empty()),
            });
            progress(ctx, job_id, MediaStep::Measured, measured).await;
            let thumbnails = store_thumbnails(ctx, job_id, &file, &report).await;
            progress(ctx, job_id, MediaStep::Thumbnails, json!({"count": thumbnails.len()})).await;
            report["thumbnails"] = json!(thumbnails);
            Ok(report)
        }
        Err(Error::Unavailable(why)) => {
            tracing::warn!(reason = %why, "media analysis unavailable; scoring the text alone");
            Ok(json!({"unavailable": why}))
        }
        Err(Error::Validation(fields)) => Err(StageError::Permanent(format!(
            "the video could not be analysed: {}",
            fields.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; ")
        ))),
        Err(other) => Err(StageError::from(other)),
    }
}

/// What extraction has done with a video, told to the job's stream as `progress` events
/// (`{"step", "done", "of", …}`, so a client can draw a bar).
#[derive(Debug, Clone, Copy)]
enum MediaStep {
    /// The video is here, whole (uploaded, or fetched from its URL).
    Received,
    /// Cuts, loudness, speech, on-screen text and faces are measured.
    Measured,
    /// Stills for the timeline are stored.
    Thumbnails,
}

impl MediaStep {
    const COUNT: usize = 3;

    fn name(self) -> &'static str {
        match self {
            MediaStep::Received => "received",
            MediaStep::Measured => "measured",
            MediaStep::Thumbnails => "thumbnails",
        }
    }
}

async fn progress(ctx: &StageContext, job_id: Uuid, step: MediaStep, mut data: Value) {
    data["step"] = step.name().into();
    data["done"] = (step as usize + 1).into();
    data["of"] = MediaStep::COUNT.into();
    tell(ctx, job_id, JobEventKind::Progress, data).await;
}

/// The most thumbnails kept per video: the opening and the first shots after it.
const MAX_THUMBNAILS: usize = 8;

pub fn thumbnail_key(job_id: Uuid, index: usize) -> String {
    format!("thumbnails/{job_id}/{index:02}.jpg")
}

/// Stills of the video for the dashboard: the hook (0.5 s) and just after each cut, stored
/// under `thumbnails/{job}/`. Best effort: a video without them is still analysed.
async fn store_thumbnails(ctx: &StageContext, job_id: Uuid, file: &std::path::Path, report: &Value) -> Vec<Value> {
    let duration = report["duration_s"].as_f64().unwrap_or(0.0);
    let mut times = vec![0.5f64.min(duration / 2.0)];
    times.extend(
        report["scenes"]["cuts_s"].as_array().into_iter().flatten().filter_map(Value::as_f64).map(|c| c + 0.2).filter(|t| *t < duration),
    );
    times.truncate(MAX_THUMBNAILS);
    let Ok(dir) = tempfile_dir() else { return Vec::new() };
    let frames = match ctx.media.frames(file, &times, dir.path()).await {
        Ok(frames) => frames,
        Err(e) => {
            tracing::warn!(error = %e, "thumbnails could not be taken");
            return Vec::new();
        }
    };
    let mut stored = Vec::new();
    for (i, (t, path)) in frames.iter().enumerate() {
        let key = thumbnail_key(job_id, i);
        match ctx.blobs.put_file(&key, path, "image/jpeg").await {
            Ok(()) => stored.push(json!({"t_s": (t * 100.0).round() / 100.0, "key": key})),
            Err(e) => tracing::warn!(error = %e, %key, "a thumbnail could not be stored"),
        }
    }
    stored
}

/// A private temporary directory, removed when dropped.
fn tempfile_dir() -> std::io::Result<TempDir> {
    let path = std::env::temp_dir().join(format!("goviral-frames-{}", Uuid::new_v4().simple()));
    std::fs::create_dir(&path)?;
    Ok(TempDir(path))
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Puts the job's video in `file`; false when the job has none. An uploaded video is the
/// copy intake took, checked against its checksum. A `source_url` is downloaded once and
/// stored as the job's immutable copy, which every later run reads instead of the URL.
async fn video_to_file(ctx: &StageContext, job_id: Uuid, submission: &Submission, file: &std::path::Path) -> StageResult<bool> {
    if let Some(upload_id) = submission.upload_id {
        let upload = ctx.store.upload(upload_id).await?.ok_or_else(|| StageError::Permanent(format!("upload {upload_id} is missing")))?;
        if !crate::uploads::is_video(&upload.media_type) {
            return Ok(false);
        }
        let key = upload.content_key.clone().ok_or_else(|| StageError::Permanent(format!("upload {upload_id} was never taken in")))?;
        if !ctx.blobs.fetch_to(&key, file).await? {
            return Err(StageError::Retryable(format!("{key} is not readable")));
        }
        // Exactly what intake took in, or nothing is measured.
        let sha256 =
            crate::uploads::file_sha256(file).await.map_err(|e| StageError::Retryable(format!("reading the fetched video: {e}")))?;
        if upload.sha256.as_deref() != Some(sha256.as_str()) {
            return Err(StageError::Permanent(format!("{key} no longer matches the checksum taken at intake")));
        }
        return Ok(true);
    }
    let (ContentType::Video, Some(url)) = (submission.content_type, &submission.source_url) else { return Ok(false) };
    let key = crate::media::fetched_key(job_id);
    if !ctx.blobs.fetch_to(&key, file).await? {
        download_to(ctx, job_id, url, file).await?;
    }
    Ok(true)
}

/// What the extraction of the job in an execution's state will take, so the local runner
/// can give each part its own limit: a download first (its own pool, no slot held), then a
/// turn at media analysis only for a video (text never waits behind videos).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractionPlan {
    /// The job and its `source_url`, when the video is still to be downloaded.
    pub download: Option<(Uuid, String)>,
    /// Whether a video will be measured.
    pub analyses_media: bool,
}

pub async fn plan_extraction(ctx: &StageContext, input: &Value) -> StageResult<ExtractionPlan> {
    let Some(job_id) = input["job_id"].as_str().and_then(|s| s.parse::<Uuid>().ok()) else { return Ok(ExtractionPlan::default()) };
    let (_, submission) = load(ctx, job_id).await?;
    if submission.content_type != ContentType::Video {
        return Ok(ExtractionPlan::default());
    }
    let download = match (submission.source_url, submission.upload_id) {
        // Downloaded by an earlier run if the stored copy is there.
        (Some(url), None) if !ctx.blobs.exists(&crate::media::fetched_key(job_id)).await? => Some((job_id, url)),
        _ => None,
    };
    Ok(ExtractionPlan { download, analyses_media: true })
}

/// Downloads the job's `source_url` into its stored copy, which extraction then reads.
pub async fn download_source(ctx: &StageContext, job_id: Uuid, url: &str) -> StageResult<()> {
    let file = std::env::temp_dir().join(format!("goviral-download-{}", Uuid::new_v4().simple()));
    let _cleanup = RemoveOnDrop(file.clone());
    download_to(ctx, job_id, url, &file).await
}

/// Downloads `url` to `file` and stores it as the job's immutable copy.
async fn download_to(ctx: &StageContext, job_id: Uuid, url: &str, file: &std::path::Path) -> StageResult<()> {
    let fetched = ctx.fetcher.fetch(url, file).await.map_err(|e| match e {
        Error::Validation(fields) => StageError::Permanent(format!(
            "the video at source_url could not be used: {}",
            fields.iter().map(|f| f.message.as_str()).collect::<Vec<_>>().join("; ")
        )),
        other => StageError::from(other),
    })?;
    ctx.blobs.put_file(&crate::media::fetched_key(job_id), file, &fetched.media_type).await?;
    tracing::info!(bytes = fetched.bytes, sha256 = %fetched.sha256, media_type = %fetched.media_type, "fetched the video from source_url");
    Ok(())
}

/// Why a job with no text is not given a score of nothing (which would look real).
fn nothing_to_score(media: &Value) -> &'static str {
    match media {
        Value::Null => "nothing to score: the submission has no caption or text",
        m if m.get("unavailable").is_some() => {
            "nothing to score: the video has no caption, and this deployment cannot analyse video; add a caption"
        }
        m if m["speech"]["engine"] == "unavailable" => {
            "nothing to score: the video has no caption, and its speech could not be transcribed here; add a caption"
        }
        _ => "nothing to score: the video has no caption, no speech was heard in it and no text was read on screen; add a caption",
    }
}

/// Deletes a temporary file however the stage ends.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// How much of the text model's confidence stands for a video it judged by its words alone.
const VIDEO_CONFIDENCE_SCALE: f64 = 0.8;

pub async fn infer(ctx: &StageContext, state: &PipelineState) -> StageResult<InferenceResult> {
    let (job, submission) = load(ctx, state.job_id).await?;
    if let (JobStatus::Complete, Some(score)) = (job.status, job.score) {
        return Ok(InferenceResult { score }); // already done: a redelivery
    }
    let key = state
        .extraction
        .as_ref()
        .map(|e| e.features_key.clone())
        .ok_or_else(|| StageError::Permanent("no extraction result in the input".into()))?;
    let bytes = ctx.blobs.get(&key).await?.ok_or_else(|| StageError::Permanent(format!("features blob {key} is missing")))?;
    let doc: Value = serde_json::from_slice(&bytes).map_err(|e| StageError::Permanent(format!("features blob unreadable: {e}")))?;
    let features = doc["features"].clone();
    if features.is_null() {
        return Err(StageError::Permanent("the features document has no features".into()));
    }
    // The text as extraction saw it: one read of the upload per job, and the scorer sees
    // exactly what the features describe.
    let text = doc["text"].as_str().unwrap_or_default().to_string();
    if text.trim().is_empty() {
        // A score of nothing would look real and mean nothing.
        return Err(StageError::Permanent(nothing_to_score(&doc["media"]).into()));
    }
    let request = ScoreRequest { text, platform: submission.platform_hint, content_type: submission.content_type, features };
    let started = Instant::now();
    let out = ctx.scorer.score(&request).await?;
    let latency_ms = started.elapsed().as_millis() as i64;
    crate::telemetry::metrics().observe_ms(
        crate::telemetry::Metric::ModelLatency,
        &[("model", &out.model_name)],
        started.elapsed().as_secs_f64() * 1000.0,
    );
    let mut metrics = out.metrics.clone();
    let findings = crate::media_insights::findings(&doc["media"], submission.platform_hint);
    let insights = crate::media_insights::merge(out.insights.clone(), &findings);
    let measured_video = doc["media"]["duration_s"].is_number();
    // The score reads the text only; what the text cannot see lowers how sure it can be.
    let confidence = if measured_video { (out.confidence * VIDEO_CONFIDENCE_SCALE * 100.0).round() / 100.0 } else { out.confidence };
    if let Value::Object(m) = &mut metrics {
        if measured_video {
            m.insert("media_findings".into(), json!(findings));
            m.insert(
                "video_basis".into(),
                json!(format!(
                    "scored by the text model from the caption and the spoken hook; the video's measurements give heuristic advice \
                     (media_findings, not learned from outcomes) and do not move the score; confidence is scaled by {VIDEO_CONFIDENCE_SCALE} \
                     for what the text cannot see"
                )),
            );
        }
        if let Some(why) = doc["media"]["unavailable"].as_str() {
            m.insert("media_unavailable".into(), json!(why));
        } else if measured_video {
            m.insert("media".into(), doc["media"].clone());
            m.insert("hook".into(), doc["media"]["hook"].clone());
        }
        m.insert("model".into(), json!(out.model_name));
        m.insert("model_version".into(), json!(out.model_version));
        m.insert("inference_ms".into(), json!(latency_ms));
    }
    let result = JobResult { score: out.score, confidence, insights, metrics };
    let run = ModelRun {
        id: Uuid::now_v7(),
        job_id: job.id,
        model_name: out.model_name.clone(),
        model_version: out.model_version.clone(),
        latency_ms,
        token_usage: out.token_usage.clone(),
        prompt_hash: out.prompt_hash.clone().or_else(|| Some(auth::sha256_hex(request.text.as_bytes()))),
        created_at: now(),
    };
    if ctx.store.complete_job(job.id, &result, Some(&run), now()).await? {
        tell(ctx, job.id, JobEventKind::Complete, json!({"score": result.score, "confidence": result.confidence})).await;
    }
    Ok(InferenceResult { score: out.score })
}

pub async fn mark_failed(ctx: &StageContext, state: &PipelineState) -> StageResult<Value> {
    let caught = state.error.clone().unwrap_or(CaughtError { error: "States.Unknown".into(), cause: String::new() });
    let stage = state.failed_stage.clone().unwrap_or_else(|| "unknown".into());
    let errors = json!([{"stage": stage, "error": caught.error, "reason": caught.cause}]);
    fail_job(ctx, state.job_id, &errors, None).await?;
    // A failure of ours is credited back; one the content caused is not (idempotent: a
    // retried failure stage never reverses twice).
    if crate::usage::refunded(&caught.error) {
        ctx.store.reverse_charge(state.job_id, &format!("{stage}: {}", caught.error), now()).await?;
    }
    Ok(json!({"failed": true}))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyResult {
    pub delivered: u32,
    pub dead_lettered: u32,
}

/// Sends the job's outcome to every target: the submission's `notify_webhook` and each active
/// subscription to the event. Delivered or dead-lettered targets are never sent again; a target
/// that failed but may recover makes the stage fail retryably, and the state machine retries it
/// with backoff until `max_attempts`, then it is dead-lettered.
pub async fn notify(ctx: &StageContext, state: &PipelineState) -> StageResult<NotifyResult> {
    let (job, submission) = load(ctx, state.job_id).await?;
    let event = match job.status {
        JobStatus::Complete => WebhookEvent::JobCompleted,
        JobStatus::Failed => WebhookEvent::JobFailed,
        other => return Err(StageError::Permanent(format!("job is {other}, not finished"))),
    };
    let owner = ctx.store.user_by_id(job.user_id).await?.ok_or_else(|| StageError::Permanent("job owner missing".into()))?;
    let mut targets: Vec<(String, String, String)> = Vec::new(); // (url, signing id, secret)
    if let Some(url) = &submission.notify_webhook {
        targets.push((url.clone(), crate::service::notify_signing_id(owner.id), owner.webhook_secret.clone()));
    }
    for sub in ctx.store.webhooks_for_user(job.user_id).await? {
        if sub.active && sub.events.contains(&event) && !targets.iter().any(|(u, _, _)| *u == sub.target_url) {
            targets.push((sub.target_url.clone(), sub.id.to_string(), sub.secret.clone()));
        }
    }
    let notice = crate::service::CompletionNotice {
        job_id: job.id,
        status: job.status,
        score: job.score,
        timestamp: time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    };
    let body = serde_json::to_vec(&notice).expect("payload serialises");
    let mut result = NotifyResult { delivered: 0, dead_lettered: 0 };
    let mut retry_later = Vec::new();
    for (url, signing_id, secret) in targets {
        let delivery = ctx.store.webhook_delivery(job.id, &url, event).await?;
        match delivery.status {
            DeliveryStatus::Delivered => {
                result.delivered += 1;
                continue;
            }
            DeliveryStatus::Dead => {
                result.dead_lettered += 1;
                continue;
            }
            DeliveryStatus::Pending => {}
        }
        let headers = crate::ports::signed_delivery_headers(&signing_id, event, delivery.id, &secret, &body);
        let outcome = ctx.webhooks.post(&url, &headers, &body).await;
        let (status, error) = outcome.next_status(delivery.attempts + 1, ctx.webhook_policy.max_attempts);
        ctx.store.record_delivery_attempt(delivery.id, status, error.as_deref(), now()).await?;
        let outcome = match status {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Pending => "retrying",
        };
        crate::telemetry::metrics().count(crate::telemetry::Metric::WebhookDeliveries, &[("outcome", outcome)]);
        match status {
            DeliveryStatus::Delivered => result.delivered += 1,
            DeliveryStatus::Dead => {
                result.dead_lettered += 1;
                let host = crate::net::host_only(&url);
                tracing::warn!(target_host = %host, error = error.as_deref().unwrap_or_default(), "webhook dead-lettered");
            }
            DeliveryStatus::Pending => retry_later.push(format!("{}: {}", crate::net::host_only(&url), error.unwrap_or_default())),
        }
    }
    if !retry_later.is_empty() {
        return Err(StageError::Retryable(format!("webhook delivery failed, will retry: {}", retry_later.join("; "))));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_error_without_cause_still_reads() {
        let state: PipelineState = serde_json::from_value(
            json!({"job_id": Uuid::nil(), "error": {"Error": "Stage.Permanent", "Cause": null}, "failed_stage": "inference"}),
        )
        .unwrap();
        assert_eq!(state.error, Some(CaughtError { error: "Stage.Permanent".into(), cause: String::new() }));
        let bare: CaughtError = serde_json::from_value(json!({})).unwrap();
        assert_eq!(bare.error, "");
    }
}
