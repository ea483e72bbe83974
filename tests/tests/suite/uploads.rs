//! Uploads on the embedded default, through the real server: ask for an upload, PUT the file
//! to the signed URL (the local stand-in for S3), see it ready, and analyse it.

use domain::model::Plan;
use domain::ports::BlobStore;
use goviral_testkit::pipeline::Stages;
use goviral_testkit::{Backend, TestApp, TestResponse};
use http::{Method, StatusCode};
use serde_json::{Value, json};

const SCRIPT: &str = "Stop scrolling: the three edits that doubled our watch time.\nWhich one will you try first? Tell me below.\n";

/// The path and query of a signed URL, which must point at this server.
fn local_path(t: &TestApp, url: &str) -> String {
    url.strip_prefix(&format!("http://{}", t.addr)).unwrap_or_else(|| panic!("{url} is not on this server")).to_string()
}

async fn create(t: &TestApp, api_key: &str, media_type: &str, size: usize) -> TestResponse {
    t.post("/api/v1/uploads").api_key(api_key).json(&json!({"media_type": media_type, "size_bytes": size})).send().await
}

async fn analyze(t: &TestApp, api_key: &str, body: Value) -> TestResponse {
    t.post("/api/v1/analyze").api_key(api_key).json(&body).send().await
}

/// Sends `body` the way the upload's signed request says to.
async fn put(t: &TestApp, upload: &Value, content_type: &str, body: &[u8]) -> TestResponse {
    let url = upload["upload"]["url"].as_str().unwrap();
    assert_eq!(upload["upload"]["method"], "PUT");
    t.call(Method::PUT, &local_path(t, url)).raw(content_type, body.to_vec()).send().await
}

#[tokio::test]
async fn a_text_upload_is_put_then_analysed_as_a_post() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;

    let created = create(&t, &ann.api_key, "text/plain", SCRIPT.len()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let upload = created.body.clone();
    assert_eq!((upload["status"].as_str(), upload["expired"].as_bool()), (Some("pending"), Some(false)));
    assert_eq!(upload["upload"]["headers"]["content-type"], "text/plain");
    let id = upload["upload_id"].as_str().unwrap().to_string();

    // Named before it has arrived: not yet.
    let post = json!({"content_type": "post", "upload_id": id, "user_id": ann.user.id});
    let early = analyze(&t, &ann.api_key, post.clone()).await;
    assert_eq!((early.status, early.error_code()), (StatusCode::CONFLICT, "conflict"), "{:?}", early.body);

    let sent = put(&t, &upload, "text/plain", SCRIPT.as_bytes()).await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    let status = t.get(&format!("/api/v1/uploads/{id}")).api_key(&ann.api_key).send().await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!((status.body["status"].as_str(), status.body["size_bytes"].as_u64()), (Some("ready"), Some(SCRIPT.len() as u64)));
    assert!(status.body.get("upload").is_none(), "the upload URL is shown once: {:?}", status.body);

    // The download URL gives the same bytes back, with the declared type.
    let download = status.body["download"]["url"].as_str().unwrap();
    let fetched = t.get(&local_path(&t, download)).send().await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.raw.as_ref(), SCRIPT.as_bytes());
    assert_eq!(fetched.header("content-type"), Some("text/plain"));

    // A post with no caption at all: the uploaded text is what gets scored.
    let pipeline = t.start_pipeline(&Stages::sharing_blobs(&t));
    let submitted = analyze(&t, &ann.api_key, post.clone()).await;
    assert_eq!(submitted.status, StatusCode::CREATED, "{:?}", submitted.body);
    let job = t.finished_job(&ann.api_key, submitted.body["job_id"].as_str().unwrap()).await;
    pipeline.stop().await;
    assert_eq!(job["status"], "complete", "{job}");
    assert!(job["score"].as_f64().is_some_and(|s| (0.0..=100.0).contains(&s)), "{job}");
    let job_id: uuid::Uuid = job["job_id"].as_str().unwrap().parse().unwrap();
    let submission_id = t.app.store.job(job_id).await.unwrap().unwrap().submission_id;
    let submission = t.app.store.submission(submission_id).await.unwrap().unwrap();
    // The submission names intake's immutable copy, not the upload URL's object.
    assert_eq!(submission.storage_key, Some(format!("content/{}/{id}", ann.user.id)));
    // Extraction read the upload: its text and its first line are what the scorer saw.
    use domain::ports::BlobStore;
    let features = t.blobs.get(&domain::pipeline::features_key(job_id)).await.unwrap().expect("the features document");
    let features: Value = serde_json::from_slice(&features).unwrap();
    assert_eq!(features["text"], SCRIPT.trim());
    assert_eq!(features["features"]["first_line"], SCRIPT.lines().next().unwrap());
    // Moderation kept the text it passed; extraction read that, not the upload again.
    let moderated = t.blobs.get(&domain::pipeline::moderated_text_key(job_id)).await.unwrap().expect("the moderated text");
    assert_eq!(String::from_utf8(moderated).unwrap(), SCRIPT.trim());
}

#[tokio::test]
async fn signed_urls_refuse_anything_they_were_not_signed_for() {
    let t = TestApp::spawn(Backend::Postgres).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let upload = create(&t, &ann.api_key, "video/mp4", 16).await.body;
    let path = local_path(&t, upload["upload"]["url"].as_str().unwrap());
    let video = [7u8; 16];

    for (what, path, content_type, body) in [
        ("another type", path.clone(), "video/webm", video.to_vec()),
        ("another size", path.clone(), "video/mp4", vec![7u8; 17]),
        ("a forged signature", path.replace("signature=", "signature=00"), "video/mp4", video.to_vec()),
        ("no signature", path.split('?').next().unwrap().to_string(), "video/mp4", video.to_vec()),
        (
            "another key",
            path.replace(upload["upload_id"].as_str().unwrap(), &uuid::Uuid::now_v7().to_string()),
            "video/mp4",
            video.to_vec(),
        ),
    ] {
        let r = t.call(Method::PUT, &path).raw(content_type, body).send().await;
        assert_eq!((r.status, r.error_code()), (StatusCode::FORBIDDEN, "forbidden"), "{what}: {:?}", r.body);
    }
    let id = upload["upload_id"].as_str().unwrap();
    let still = t.get(&format!("/api/v1/uploads/{id}")).api_key(&ann.api_key).send().await;
    assert_eq!(still.body["status"], "pending", "nothing was written");
    // A GET cannot use the PUT's signature.
    let r = t.get(&path).send().await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    assert_eq!(put(&t, &upload, "video/mp4", &video).await.status, StatusCode::OK);
    // An upload is written once: its still-valid URL takes nothing more, not even the same bytes.
    let again = put(&t, &upload, "video/mp4", &video).await;
    assert_eq!((again.status, again.error_code()), (StatusCode::CONFLICT, "conflict"));
    let ready = t.get(&format!("/api/v1/uploads/{id}")).api_key(&ann.api_key).send().await;
    assert_eq!(ready.body["status"], "ready");
}

#[tokio::test]
async fn uploads_are_checked_and_private() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let bob = t.user("bob@example.com", Plan::Pro, false).await;

    let r = t.post("/api/v1/uploads").api_key(&ann.api_key).json(&json!({"media_type": "application/x-sh", "size_bytes": 0})).send().await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error_fields(), ["media_type", "size_bytes"]);
    let r = create(&t, &ann.api_key, "video/mp4", 600 * 1024 * 1024).await;
    assert_eq!(r.error_fields(), ["size_bytes"]);
    let r =
        t.post("/api/v1/uploads").api_key(&ann.api_key).json(&json!({"media_type": "video/mp4", "size_bytes": 5, "extra": 1})).send().await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = t.post("/api/v1/uploads").json(&json!({"media_type": "video/mp4", "size_bytes": 5})).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // Text that is not UTF-8 arrives, and is rejected with the reason.
    let bad = create(&t, &ann.api_key, "text/plain", 2).await.body;
    assert_eq!(put(&t, &bad, "text/plain", &[0xff, 0xfe]).await.status, StatusCode::OK);
    let bad_id = bad["upload_id"].as_str().unwrap();
    let status = t.get(&format!("/api/v1/uploads/{bad_id}")).api_key(&ann.api_key).send().await.body;
    assert_eq!(status["status"], "rejected");
    assert!(status["rejection"].as_str().unwrap().contains("UTF-8"), "{status}");
    assert!(status.get("download").is_none());
    let r = analyze(&t, &ann.api_key, json!({"content_type": "post", "upload_id": bad_id, "user_id": ann.user.id})).await;
    assert_eq!((r.status, r.error_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec!["upload_id".to_string()]));

    // A ready text upload is not a video.
    let text = create(&t, &ann.api_key, "text/plain", SCRIPT.len()).await.body;
    put(&t, &text, "text/plain", SCRIPT.as_bytes()).await;
    let text_id = text["upload_id"].as_str().unwrap();
    let r = analyze(&t, &ann.api_key, json!({"content_type": "video", "upload_id": text_id, "user_id": ann.user.id})).await;
    assert_eq!((r.status, r.error_fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec!["upload_id".to_string()]));

    // Another user's upload does not exist, for status and for submissions alike.
    let r = t.get(&format!("/api/v1/uploads/{text_id}")).api_key(&bob.api_key).send().await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = analyze(&t, &bob.api_key, json!({"content_type": "post", "upload_id": text_id, "user_id": bob.user.id})).await;
    assert_eq!((r.status, r.error_code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = t.get("/api/v1/uploads/not-an-id").api_key(&ann.api_key).send().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn content_swapped_after_intake_never_reaches_the_pipeline() {
    use domain::ports::BlobStore;
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let upload = create(&t, &ann.api_key, "text/plain", SCRIPT.len()).await.body;
    let id = upload["upload_id"].as_str().unwrap().to_string();
    assert_eq!(put(&t, &upload, "text/plain", SCRIPT.as_bytes()).await.status, StatusCode::OK);
    // Same length, other words: refused through the URL once the upload was received.
    let swapped: String = SCRIPT.chars().map(|c| if c.is_alphabetic() { 'x' } else { c }).collect();
    let r = put(&t, &upload, "text/plain", swapped.as_bytes()).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Even an object replaced behind the URL's back (a raced PUT) is not what the pipeline reads.
    let storage_key = format!("uploads/{}/{id}", ann.user.id);
    t.blobs.put(&storage_key, swapped.clone().into_bytes(), "text/plain").await.unwrap();

    let pipeline = t.start_pipeline(&Stages::sharing_blobs(&t));
    let post = json!({"content_type": "post", "upload_id": id, "user_id": ann.user.id});
    let job = analyze(&t, &ann.api_key, post.clone()).await.body["job_id"].as_str().unwrap().to_string();
    let done = t.finished_job(&ann.api_key, &job).await;
    assert_eq!(done["status"], "complete", "{done}");
    let features = t.blobs.get(&domain::pipeline::features_key(job.parse().unwrap())).await.unwrap().unwrap();
    let features: Value = serde_json::from_slice(&features).unwrap();
    assert_eq!(features["text"], SCRIPT.trim(), "the text taken in at intake was scored");

    // A copy that no longer matches its checksum fails the job instead of being scored.
    t.blobs.put(&format!("content/{}/{id}", ann.user.id), swapped.into_bytes(), "text/plain").await.unwrap();
    let job = analyze(&t, &ann.api_key, post).await.body["job_id"].as_str().unwrap().to_string();
    let failed = t.finished_job(&ann.api_key, &job).await;
    pipeline.stop().await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["errors"].to_string().contains("checksum"), "{failed}");
}

#[tokio::test]
async fn a_large_upload_streams_and_a_short_one_leaves_nothing() {
    use domain::ports::BlobStore;
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let size = 24 * 1024 * 1024 + 7; // larger than any buffer on the way
    let video: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let upload = create(&t, &ann.api_key, "video/mp4", size).await.body;
    assert_eq!(put(&t, &upload, "video/mp4", &video).await.status, StatusCode::OK);
    let id = upload["upload_id"].as_str().unwrap();
    let digest = t.blobs.digest(&format!("content/{}/{id}", ann.user.id)).await.unwrap().unwrap();
    assert_eq!(digest.bytes, size as u64);
    assert_eq!(digest.sha256, domain::auth::sha256_hex(&video));
    let stored = t.app.store.upload(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.sha256.as_deref(), Some(digest.sha256.as_str()));

    // A body that ends early (the client says 16 bytes, sends 10 and hangs up) stores nothing.
    let short = create(&t, &ann.api_key, "video/mp4", 16).await.body;
    let url = short["upload"]["url"].as_str().unwrap();
    let mut stream = tokio::net::TcpStream::connect(t.addr).await.unwrap();
    let request =
        format!("PUT {} HTTP/1.1\r\nHost: x\r\nContent-Type: video/mp4\r\nContent-Length: 16\r\n\r\n0123456789", local_path(&t, url));
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
    tokio::io::AsyncWriteExt::shutdown(&mut stream).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer).await;
    let short_id = short["upload_id"].as_str().unwrap();
    assert_eq!(t.blobs.get(&format!("uploads/{}/{short_id}", ann.user.id)).await.unwrap(), None, "nothing half-written");
    let status = t.get(&format!("/api/v1/uploads/{short_id}")).api_key(&ann.api_key).send().await;
    assert_eq!(status.body["status"], "pending");
    let dir = t.blob_dir().to_path_buf();
    let leftovers: Vec<_> = goviral_testkit::files_under(&dir).into_iter().filter(|p| p.to_string_lossy().contains(".tmp-")).collect();
    assert!(leftovers.is_empty(), "staging files left: {leftovers:?}");
}

/// A real (generated) video goes from upload to a complete job whose metrics carry what was
/// measured in it; bytes that are not a video end the job with a reason.
#[tokio::test]
async fn an_uploaded_video_is_measured_and_its_metrics_reported() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    // A red still (2 s), then a moving pattern (2 s), with a tone: one cut at 2 s.
    let video = goviral_testkit::media::ffmpeg_clip(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=320x240:r=30:d=2",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x240:r=30:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=f=440:r=48000:d=4",
        "-filter_complex",
        "[0:v][1:v]concat=n=2:v=1:a=0[v]",
        "-map",
        "[v]",
        "-map",
        "2:a",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-shortest",
    ]);
    let pipeline = t.start_pipeline(&Stages::sharing_blobs(&t));

    let upload = create(&t, &ann.api_key, "video/mp4", video.len()).await.body;
    assert_eq!(put(&t, &upload, "video/mp4", &video).await.status, StatusCode::OK);
    let body = json!({"content_type": "video", "upload_id": upload["upload_id"], "caption": "Watch what happens at 2 seconds", "user_id": ann.user.id});
    let job = analyze(&t, &ann.api_key, body).await.body["job_id"].as_str().unwrap().to_string();
    let done = t.finished_job(&ann.api_key, &job).await;
    assert_eq!(done["status"], "complete", "{done}");
    let media = &done["metrics"]["media"];
    assert_eq!(
        (media["width"].as_u64(), media["height"].as_u64(), media["has_audio"].as_bool()),
        (Some(320), Some(240), Some(true)),
        "{media}"
    );
    let cuts = media["scenes"]["cuts_s"].as_array().unwrap();
    assert_eq!(cuts.len(), 1, "{media}");
    assert!((cuts[0].as_f64().unwrap() - 2.0).abs() <= 0.1);
    assert!(media["audio"]["loudness_lufs"].as_f64().is_some(), "{media}");
    // Stills for the dashboard: the hook and just after the cut, stored as JPEGs.
    let thumbnails = media["thumbnails"].as_array().unwrap();
    assert_eq!(thumbnails.len(), 2, "{media}");
    let first = t.blobs.get(thumbnails[1]["key"].as_str().unwrap()).await.unwrap().expect("stored");
    assert!(first.starts_with(&[0xff, 0xd8, 0xff]), "a JPEG");
    // The client reads them through short-lived signed URLs.
    let shown = t.get(&local_path(&t, thumbnails[1]["url"].as_str().expect("a signed URL"))).send().await;
    assert_eq!((shown.status, shown.raw.as_ref()), (StatusCode::OK, first.as_slice()));

    // A file that says video/mp4 and is not one.
    let junk = vec![0x42u8; 4096];
    let upload = create(&t, &ann.api_key, "video/mp4", junk.len()).await.body;
    assert_eq!(put(&t, &upload, "video/mp4", &junk).await.status, StatusCode::OK);
    let body = json!({"content_type": "video", "upload_id": upload["upload_id"], "caption": "A caption", "user_id": ann.user.id});
    let job = analyze(&t, &ann.api_key, body).await.body["job_id"].as_str().unwrap().to_string();
    let failed = t.finished_job(&ann.api_key, &job).await;
    pipeline.stop().await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["errors"].to_string().contains("could not be analysed"), "{failed}");
}
