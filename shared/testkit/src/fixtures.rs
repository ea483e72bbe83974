//! Rows the store contracts start from.

use domain::model::*;
use uuid::Uuid;

/// A queued text submission of `user_id` at `at`, and its job.
pub fn text_job(user_id: Uuid, at: time::OffsetDateTime) -> (Submission, Job) {
    let s = Submission {
        id: Uuid::now_v7(),
        user_id,
        content_type: ContentType::Text,
        source_url: None,
        upload_id: None,
        storage_key: None,
        caption: Some("You won't believe this one trick".into()),
        platform_hint: Some(Platform::Tiktok),
        notify_webhook: Some("https://example.com/hook".into()),
        status: SubmissionStatus::Queued,
        created_at: at,
    };
    let j = Job {
        id: Uuid::now_v7(),
        submission_id: s.id,
        user_id,
        status: JobStatus::Queued,
        score: None,
        confidence: None,
        errors: None,
        metrics: None,
        moderation_flags: None,
        created_at: at,
        updated_at: at,
        completed_at: None,
        archived_at: None,
    };
    (s, j)
}
