//! Entities and the closed vocabularies (plans, statuses, categories) of the product.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// A closed set of lowercase string values, stored and sent as text. The OpenAPI schema is
/// written here from the same texts serde uses (utoipa's derive does not see a `rename`
/// that arrives through a macro, and would document the Rust variant names).
macro_rules! string_enum {
    ($(#[doc = $doc:literal])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let doc: &[&str] = &[$($doc),*];
                let description = Some(doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")).filter(|d| !d.is_empty());
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(description)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The accepted values, for error messages.
            pub fn expected() -> String {
                [$($text),+].join(", ")
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} `{other}`; expected one of: {}", stringify!($name), $name::expected())),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Billing plan; decides the rate limit.
    Plan { Free => "free", Pro => "pro", Enterprise => "enterprise" }
);
string_enum!(
    /// Role-based access: `admin` unlocks the admin routes.
    Role { User => "user", Admin => "admin" }
);
string_enum!(ContentType { Video => "video", Post => "post", Text => "text" });
string_enum!(
    /// What a usage ledger entry metered: an analysis of one kind of content, or a comparison
    /// of variants.
    UsageKind { Video => "video", Post => "post", Text => "text", Compare => "compare" }
);

impl From<ContentType> for UsageKind {
    fn from(c: ContentType) -> UsageKind {
        match c {
            ContentType::Video => UsageKind::Video,
            ContentType::Post => UsageKind::Post,
            ContentType::Text => UsageKind::Text,
        }
    }
}
string_enum!(Platform { Tiktok => "tiktok", Youtube => "youtube", Instagram => "instagram", X => "x" });
string_enum!(SubmissionStatus {
    Draft => "draft", Queued => "queued", Processing => "processing", Complete => "complete", Failed => "failed"
});
string_enum!(JobStatus {
    Queued => "queued", Processing => "processing", Complete => "complete", Failed => "failed", Archived => "archived"
});
string_enum!(
    /// A step of a job's progress, as its live stream tells it: queued, each stage as it
    /// starts, media progress during extraction, and how it ended.
    JobEventKind {
        Queued => "queued", Moderation => "moderation", Extraction => "extraction", Progress => "progress",
        Inference => "inference", Complete => "complete", Failed => "failed"
    }
);
string_enum!(
    /// The five insight categories every analysis reports on.
    InsightCategory { Hook => "hook", Pacing => "pacing", Emotion => "emotion", Storytelling => "storytelling", Cta => "cta" }
);
string_enum!(
    /// Events a webhook subscription can listen to (`usage.threshold`: an account reached 80% or
    /// 100% of its monthly allowance; asked for by name).
    WebhookEvent { JobCompleted => "job.completed", JobFailed => "job.failed", UsageThreshold => "usage.threshold" }
);

impl InsightCategory {
    pub fn label(self) -> &'static str {
        match self {
            InsightCategory::Hook => "Hook",
            InsightCategory::Pacing => "Pacing",
            InsightCategory::Emotion => "Emotion",
            InsightCategory::Storytelling => "Storytelling",
            InsightCategory::Cta => "Call to action",
        }
    }
}

/// Serialises roles/events as a comma-joined list for stores without arrays.
pub fn join_values<T: Copy>(values: &[T], as_str: impl Fn(T) -> &'static str) -> String {
    values.iter().map(|v| as_str(*v)).collect::<Vec<_>>().join(",")
}

/// Parses a comma-joined list written by [`join_values`].
pub fn split_values<T: std::str::FromStr<Err = String>>(text: &str) -> Result<Vec<T>, String> {
    text.split(',').filter(|s| !s.is_empty()).map(str::parse).collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    /// Argon2id PHC string of the client secret.
    pub hashed_secret: String,
    pub plan: Plan,
    pub is_active: bool,
    pub roles: Vec<Role>,
    /// Signs webhooks sent to a submission's `notify_webhook` (subscriptions have their own).
    pub webhook_secret: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }
}

/// A dashboard session, kept so it can be ended on the server: its id rides in the signed
/// cookie, and every request checks it is still live.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The API key it was opened with: the session ends with the key.
    pub key_id: Uuid,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: Uuid,
    pub user_id: Uuid,
    /// Public, unique lookup part of the key (`gvk_<prefix>_<secret>`).
    pub prefix: String,
    /// Argon2id PHC string of the whole key.
    pub hashed_key: String,
    pub created_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    /// The key this one replaced, when issued by rotation.
    pub rotated_from: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub id: Uuid,
    pub user_id: Uuid,
    pub content_type: ContentType,
    pub source_url: Option<String>,
    pub upload_id: Option<Uuid>,
    /// Where the content lives in the blob store, once it is there.
    pub storage_key: Option<String>,
    pub caption: Option<String>,
    pub platform_hint: Option<Platform>,
    pub notify_webhook: Option<String>,
    pub status: SubmissionStatus,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: Uuid,
    pub submission_id: Uuid,
    pub user_id: Uuid,
    pub status: JobStatus,
    /// 0.00–100.00
    pub score: Option<f64>,
    /// 0.00–1.00
    pub confidence: Option<f64>,
    pub errors: Option<serde_json::Value>,
    pub metrics: Option<serde_json::Value>,
    pub moderation_flags: Option<serde_json::Value>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub completed_at: Option<OffsetDateTime>,
    pub archived_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Insight {
    pub category: InsightCategory,
    pub message: String,
    pub recommendations: Vec<String>,
    /// How much this category weighed in the score, 0.00–1.00.
    pub weight: f64,
}

/// What a finished inference writes onto a job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub score: f64,
    pub confidence: f64,
    pub insights: Vec<Insight>,
    pub metrics: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSubscription {
    pub id: Uuid,
    pub user_id: Uuid,
    pub target_url: String,
    pub secret: String,
    pub events: Vec<WebhookEvent>,
    pub active: bool,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: Uuid,
    /// Who did it: a user id, or `system`/`cli` for operator actions.
    pub actor: String,
    pub action: String,
    pub payload: serde_json::Value,
    pub ip_address: Option<std::net::IpAddr>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelRun {
    pub id: Uuid,
    pub job_id: Uuid,
    pub model_name: String,
    /// The registered version of the on-device model that scored (`headline@3`); the
    /// built-in one when none is registered (`headline-v3 (built in)`).
    pub model_version: Option<String>,
    pub latency_ms: i64,
    pub token_usage: Option<serde_json::Value>,
    pub prompt_hash: Option<String>,
    pub created_at: OffsetDateTime,
}

string_enum!(UploadStatus { Pending => "pending", Ready => "ready", Rejected => "rejected" });

/// A file a client puts straight into the blob store with a signed URL, then names in a
/// submission by `upload_id`. Pending until the store reports the object arrived (S3's
/// ObjectCreated event on AWS; the local upload route on the embedded default).
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The MIME type the client declared and the signed URL enforces.
    pub media_type: String,
    /// The exact size the client declared and the signed URL enforces.
    pub declared_bytes: u64,
    pub filename: Option<String>,
    pub storage_key: String,
    pub status: UploadStatus,
    /// What arrived, once it has.
    pub received_bytes: Option<u64>,
    /// Why a received object was refused.
    pub rejection: Option<String>,
    pub created_at: OffsetDateTime,
    /// After this the upload URL no longer works.
    pub url_expires_at: OffsetDateTime,
    pub received_at: Option<OffsetDateTime>,
    /// SHA-256 (hex) of the copy taken in; every later read is checked against it.
    pub sha256: Option<String>,
    /// Where intake put the immutable copy the pipeline reads (`content/{user}/{upload}`).
    pub content_key: Option<String>,
}

string_enum!(DeliveryStatus { Pending => "pending", Delivered => "delivered", Dead => "dead" });

/// One webhook delivery: a job's event to one target URL, with its attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub job_id: Uuid,
    pub target_url: String,
    pub event: WebhookEvent,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One row of a user's history.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    pub job_id: Uuid,
    pub score: Option<f64>,
    pub status: JobStatus,
    pub created_at: OffsetDateTime,
}

/// Keyset position: the last row a page showed (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at_us: i64,
    pub id: Uuid,
}

#[derive(Debug, Clone, Default)]
pub struct AdminJobFilter {
    pub status: Option<JobStatus>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub limit: u32,
    pub cursor: Option<Cursor>,
}

/// Microseconds since the Unix epoch: how every store keeps time.
pub fn to_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Now, truncated to microseconds so it survives a round trip through any store.
pub fn now() -> OffsetDateTime {
    from_micros(to_micros(OffsetDateTime::now_utc()))
}

impl JobStatus {
    /// Complete or failed: the pipeline is done with it.
    pub fn is_ended(self) -> bool {
        matches!(self, JobStatus::Complete | JobStatus::Failed)
    }
}

impl JobEventKind {
    /// The job has ended: nothing follows this event.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobEventKind::Complete | JobEventKind::Failed)
    }
}

/// One event of a job's live stream; `seq` numbers them from 1 per job (the stream's ids).
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    pub job_id: Uuid,
    pub seq: u32,
    pub kind: JobEventKind,
    pub data: serde_json::Value,
    pub at: OffsetDateTime,
}
