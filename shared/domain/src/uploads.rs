//! Uploads: the client asks for a signed URL, puts the file straight into the blob store, and
//! the store's "object created" report marks the upload ready; a submission then names it by
//! `upload_id`. Bytes never pass through an API function.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{Error, FieldError, Result};
use crate::model::*;
use crate::ports::BlobStore;
use crate::ports::{ReceivedUpload, SignedRequest, Store, UrlSigner};
use crate::service::{App, CAPTION_MAX_CHARS, Principal};

/// How long an upload URL works: long enough for a large video on a slow link.
pub const UPLOAD_URL_TTL: Duration = Duration::from_secs(60 * 60);
/// How long a download URL from the status route works.
pub const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(5 * 60);

/// How a stored file is served to a browser, wherever it is served from (the local server's
/// `/blobs`, or S3 through a presigned URL): the dashboard's stills inline as JPEG, and
/// everything else as a download, so a file whose bytes are HTML is never opened as a page
/// on an origin that matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// `inline` or `attachment`.
    pub disposition: &'static str,
    /// The type to serve it as, where the key says it (otherwise the type it was stored with).
    pub content_type: Option<&'static str>,
}

pub fn served_as(key: &str) -> Served {
    if key.starts_with("thumbnails/") && key.ends_with(".jpg") {
        Served { disposition: "inline", content_type: Some("image/jpeg") }
    } else {
        Served { disposition: "attachment", content_type: None }
    }
}

/// The policy every served file carries: nothing in it may run, load or be framed.
pub const SERVED_CSP: &str = "default-src 'none'; sandbox";
pub const FILENAME_MAX_CHARS: usize = 255;

const MIB: u64 = 1024 * 1024;
/// The media types accepted, each with its largest size in bytes. Text is a post's body or
/// a video's script; it is read whole, so it is bounded like a caption.
pub const MEDIA_TYPES: &[(&str, u64)] =
    &[("video/mp4", 512 * MIB), ("video/quicktime", 512 * MIB), ("video/webm", 512 * MIB), ("text/plain", 64 * 1024)];

pub fn max_bytes(media_type: &str) -> Option<u64> {
    MEDIA_TYPES.iter().find(|(t, _)| *t == media_type).map(|(_, max)| *max)
}

pub fn is_text(media_type: &str) -> bool {
    media_type == "text/plain"
}

pub fn is_video(media_type: &str) -> bool {
    media_type.starts_with("video/")
}

/// Where an upload's bytes live: the user's prefix keeps one user's files together.
pub fn storage_key(user_id: Uuid, upload_id: Uuid) -> String {
    format!("uploads/{user_id}/{upload_id}")
}

/// The (user id, upload id) of a key written by [`storage_key`]; None for any other key.
pub fn parse_storage_key(key: &str) -> Option<(Uuid, Uuid)> {
    parse_ids(key.strip_prefix("uploads/")?)
}

/// The (user id, upload id) of an upload's key or of its content copy's.
pub fn parse_upload_key(key: &str) -> Option<(Uuid, Uuid)> {
    parse_storage_key(key).or_else(|| parse_ids(key.strip_prefix("content/")?))
}

fn parse_ids(rest: &str) -> Option<(Uuid, Uuid)> {
    let (user, upload) = rest.split_once('/')?;
    Some((Uuid::parse_str(user).ok()?, Uuid::parse_str(upload).ok()?))
}

/// What a client asks for (its wire shape is the API's `UploadRequest`).
#[derive(Debug, Clone, PartialEq)]
pub struct UploadInput {
    /// One of video/mp4, video/quicktime, video/webm (up to 512 MiB) or text/plain (up to 64 KiB).
    pub media_type: String,
    /// The exact size of the file in bytes; the upload URL accepts only this size.
    pub size_bytes: u64,
    /// The file's name, for your own reference.
    pub filename: Option<String>,
}

/// Every broken rule of an upload request at once.
pub fn validate_upload(input: &UploadInput) -> Result<()> {
    let mut errors = Vec::new();
    match max_bytes(&input.media_type) {
        None => errors.push(FieldError::new(
            "media_type",
            format!(
                "`{}` is not accepted; expected one of: {}",
                input.media_type,
                MEDIA_TYPES.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
            ),
        )),
        Some(max) if input.size_bytes > max => errors.push(FieldError::new(
            "size_bytes",
            format!("{} bytes is over the {max} byte limit for {}", input.size_bytes, input.media_type),
        )),
        Some(_) => {}
    }
    if input.size_bytes == 0 {
        errors.push(FieldError::new("size_bytes", "an upload must not be empty"));
    }
    if let Some(name) = &input.filename {
        if name.trim().is_empty() || name.chars().count() > FILENAME_MAX_CHARS || name.chars().any(char::is_control) {
            errors.push(FieldError::new("filename", format!("1–{FILENAME_MAX_CHARS} characters, no control characters")));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Validation(errors)) }
}

/// A new upload and the request that puts its bytes.
#[derive(Debug, Clone)]
pub struct UploadTicket {
    pub upload: Upload,
    pub put: SignedRequest,
}

/// An upload as its owner sees it, with a download URL once it is ready.
#[derive(Debug, Clone)]
pub struct UploadView {
    pub upload: Upload,
    /// True for a pending upload whose URL no longer works.
    pub expired: bool,
    pub download: Option<SignedRequest>,
}

impl App {
    fn url_signer(&self) -> Result<&Arc<dyn UrlSigner>> {
        self.url_signer.as_ref().ok_or_else(|| Error::Unavailable("uploads are not configured on this deployment".into()))
    }

    /// Registers a pending upload and signs the PUT that delivers it.
    pub async fn create_upload(&self, principal: &Principal, input: UploadInput) -> Result<UploadTicket> {
        validate_upload(&input)?;
        let signer = self.url_signer()?;
        // An upload is a request like any other: it counts against the caller's rate.
        self.take_rate_limit(principal).await?;
        let id = Uuid::now_v7();
        let key = storage_key(principal.user.id, id);
        let put = signer.sign_put(&key, &input.media_type, input.size_bytes, UPLOAD_URL_TTL).await?;
        let upload = Upload {
            id,
            user_id: principal.user.id,
            media_type: input.media_type,
            declared_bytes: input.size_bytes,
            filename: input.filename,
            storage_key: key,
            status: UploadStatus::Pending,
            received_bytes: None,
            rejection: None,
            created_at: now(),
            url_expires_at: put.expires_at,
            received_at: None,
            sha256: None,
            content_key: None,
        };
        self.store.create_upload(&upload).await?;
        Ok(UploadTicket { upload, put })
    }

    pub async fn upload_view(&self, principal: &Principal, id: Uuid) -> Result<UploadView> {
        let upload = self.visible_upload(principal, id).await?;
        let download = match upload.status {
            // The copy intake took: exactly what the pipeline reads.
            UploadStatus::Ready => {
                let key = upload.content_key.as_deref().unwrap_or(&upload.storage_key);
                Some(self.url_signer()?.sign_get(key, DOWNLOAD_URL_TTL).await?)
            }
            _ => None,
        };
        let expired = upload.status == UploadStatus::Pending && upload.url_expires_at <= OffsetDateTime::now_utc();
        Ok(UploadView { upload, expired, download })
    }

    async fn visible_upload(&self, principal: &Principal, id: Uuid) -> Result<Upload> {
        match self.store.upload(id).await? {
            Some(u) if principal.may_see(u.user_id) => Ok(u),
            _ => Err(Error::NotFound("upload")),
        }
    }

    /// The upload a submission names, checked against its owner and content type.
    pub(crate) async fn upload_for_submission(&self, owner: Uuid, id: Uuid, content_type: ContentType) -> Result<Upload> {
        let upload = match self.store.upload(id).await? {
            Some(u) if u.user_id == owner => u,
            _ => return Err(Error::NotFound("upload")),
        };
        match upload.status {
            UploadStatus::Pending => {
                return Err(Error::Conflict(format!("upload {id} has not arrived yet; PUT the file to its upload URL first")));
            }
            UploadStatus::Rejected => {
                let why = upload.rejection.as_deref().unwrap_or("refused");
                return Err(Error::validation("upload_id", format!("the upload was rejected: {why}")));
            }
            UploadStatus::Ready => {}
        }
        let fits = match content_type {
            ContentType::Video => is_video(&upload.media_type),
            ContentType::Post => is_video(&upload.media_type) || is_text(&upload.media_type),
            ContentType::Text => false,
        };
        if !fits {
            return Err(Error::validation("upload_id", format!("a {content_type} job cannot take a {} upload", upload.media_type)));
        }
        Ok(upload)
    }
}

/// What an "object created" report did.
#[derive(Debug, Clone, PartialEq)]
pub enum Intake {
    Ready(Uuid),
    Rejected {
        upload_id: Uuid,
        reason: String,
    },
    /// Not an upload key, or no such upload: nothing to do.
    Unknown,
    /// The upload had already ended (a redelivered report).
    AlreadyFinished(Uuid),
}

/// Where intake keeps the immutable copy of an upload that the pipeline reads.
pub fn content_key(user_id: Uuid, upload_id: Uuid) -> String {
    format!("content/{user_id}/{upload_id}")
}

/// Handles one "object created" report for `key` with the size the store measured. Takes an
/// immutable copy first, then checks the copy against what was declared and records its
/// checksum: whatever is put at the upload URL afterwards never reaches the pipeline.
pub async fn receive(store: &dyn Store, blobs: &dyn BlobStore, key: &str, size_bytes: u64) -> Result<Intake> {
    let Some((user_id, upload_id)) = parse_storage_key(key) else {
        return Ok(Intake::Unknown);
    };
    let upload = match store.upload(upload_id).await? {
        Some(u) if u.user_id == user_id && u.storage_key == key => u,
        _ => return Ok(Intake::Unknown),
    };
    if upload.status != UploadStatus::Pending {
        return Ok(Intake::AlreadyFinished(upload_id));
    }
    let received = inspect(blobs, &upload, size_bytes).await?;
    if !store.finish_upload(upload_id, &received, now()).await? {
        return Ok(Intake::AlreadyFinished(upload_id));
    }
    Ok(match received.rejection {
        None => Intake::Ready(upload_id),
        Some(reason) => Intake::Rejected { upload_id, reason },
    })
}

/// Copies, measures and checks what arrived.
async fn inspect(blobs: &dyn BlobStore, upload: &Upload, reported_bytes: u64) -> Result<ReceivedUpload> {
    let rejected = |bytes: u64, reason: String| ReceivedUpload {
        status: UploadStatus::Rejected,
        received_bytes: bytes,
        rejection: Some(reason),
        sha256: None,
        content_key: None,
    };
    let mismatch = |bytes: u64| format!("{bytes} bytes arrived, {} were declared", upload.declared_bytes);
    if reported_bytes != upload.declared_bytes {
        return Ok(rejected(reported_bytes, mismatch(reported_bytes)));
    }
    let copy = content_key(upload.user_id, upload.id);
    // Reported but not there: the store is not yet consistent; try the report again.
    let not_yet = || Error::Unavailable(format!("{} is not readable yet", upload.storage_key));
    if !blobs.copy(&upload.storage_key, &copy).await? {
        return Err(not_yet());
    }
    let digest = blobs.digest(&copy).await?.ok_or_else(not_yet)?;
    if digest.bytes != upload.declared_bytes {
        return Ok(rejected(digest.bytes, mismatch(digest.bytes)));
    }
    if is_text(&upload.media_type) {
        let bytes = blobs.get(&copy).await?.ok_or_else(not_yet)?;
        if let Err(reason) = check_text(&bytes) {
            return Ok(rejected(digest.bytes, reason));
        }
    }
    Ok(ReceivedUpload {
        status: UploadStatus::Ready,
        received_bytes: digest.bytes,
        rejection: None,
        sha256: Some(digest.sha256),
        content_key: Some(copy),
    })
}

/// Reads a ready upload's immutable copy and checks it is exactly what intake took in.
pub async fn read_content(blobs: &dyn BlobStore, upload: &Upload) -> Result<Vec<u8>> {
    let (Some(key), Some(sha256)) = (&upload.content_key, &upload.sha256) else {
        return Err(Error::Internal(format!("upload {} was never taken in", upload.id)));
    };
    let bytes = blobs.get(key).await?.ok_or_else(|| Error::Unavailable(format!("{key} is not readable")))?;
    if crate::auth::sha256_hex(&bytes) != *sha256 {
        return Err(Error::Internal(format!("{key} no longer matches the checksum taken at intake")));
    }
    Ok(bytes)
}

/// SHA-256 (hex) of a local file, read in chunks.
pub async fn file_sha256(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
    let mut file = tokio::fs::File::open(path).await?;
    let (mut hasher, mut buf) = (sha2::Sha256::new(), vec![0u8; 64 * 1024]);
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// An uploaded text is scored like a caption, so it obeys a caption's rules.
pub fn check_text(bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the text is not UTF-8".to_string())?;
    if text.trim().is_empty() {
        return Err("the text is empty".into());
    }
    if text.contains('\0') {
        return Err("the text contains a NUL character".into());
    }
    let chars = text.chars().count();
    if chars > CAPTION_MAX_CHARS {
        return Err(format!("the text has {chars} characters; at most {CAPTION_MAX_CHARS}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(media_type: &str, size_bytes: u64) -> UploadInput {
        UploadInput { media_type: media_type.into(), size_bytes, filename: None }
    }

    use crate::error::validation_fields as fields;

    #[test]
    fn media_types_and_sizes_are_bounded() {
        assert!(validate_upload(&input("video/mp4", 512 * MIB)).is_ok());
        assert!(validate_upload(&input("text/plain", 1)).is_ok());
        assert_eq!(fields(validate_upload(&input("video/mp4", 512 * MIB + 1))), ["size_bytes"]);
        assert_eq!(fields(validate_upload(&input("text/plain", 64 * 1024 + 1))), ["size_bytes"]);
        assert_eq!(fields(validate_upload(&input("application/x-sh", 10))), ["media_type"]);
        assert_eq!(fields(validate_upload(&input("video/mp4", 0))), ["size_bytes"]);
        let mut named = input("video/mp4", 10);
        named.filename = Some("clip\n.mp4".into());
        assert_eq!(fields(validate_upload(&named)), ["filename"]);
    }

    #[test]
    fn storage_keys_round_trip_and_refuse_anything_else() {
        let (user, upload) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(parse_storage_key(&storage_key(user, upload)), Some((user, upload)));
        for key in
            ["features/x.json", "uploads/", "uploads/not-a-uuid/x", &format!("uploads/{user}"), &format!("uploads/{user}/{upload}/x")]
        {
            assert_eq!(parse_storage_key(key), None, "{key}");
        }
    }

    #[test]
    fn uploaded_text_obeys_the_caption_rules() {
        assert!(check_text("Why nobody tells you this".as_bytes()).is_ok());
        assert!(check_text(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
        assert!(check_text(b"  \n ").unwrap_err().contains("empty"));
        assert!(check_text(b"a\0b").unwrap_err().contains("NUL"));
        assert!(check_text("x".repeat(CAPTION_MAX_CHARS + 1).as_bytes()).unwrap_err().contains("at most"));
    }
}
