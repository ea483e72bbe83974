//! Videos by URL: a `source_url` is fetched by extraction from a media server on loopback
//! (allowed by the test configuration only), stored once, measured and scored; a platform's
//! page is refused at submission; and every bad URL ends the job `failed` with a reason.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{Redirect, Response};
use axum::routing::get;
use domain::model::Plan;
use domain::ports::BlobStore;
use goviral_testkit::pipeline::Stages;
use goviral_testkit::{Backend, TestApp};
use http::{StatusCode, header};
use serde_json::{Value, json};

/// 4 s at 320×240 with a hard cut at 2 s and a tone.
fn clip() -> Vec<u8> {
    goviral_testkit::media::ffmpeg_clip(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=blue:s=320x240:r=30:d=2",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x240:r=30:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=f=300:r=48000:d=4",
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
    ])
}

/// A media server on 127.0.0.1 with one route per case; returns its base URL.
async fn media_server(video: Vec<u8>) -> String {
    let video = Bytes::from(video);
    let mp4 = video.clone();
    let head = video.slice(..64);
    let big = head.clone();
    let big2 = head.clone();
    let app = axum::Router::new()
        // The extension says nothing: the type comes from the bytes.
        .route("/v/clip", get(move || async move { ([(header::CONTENT_TYPE, "application/octet-stream")], mp4.clone()) }))
        .route("/v/moved", get(|| async { Redirect::temporary("/v/clip") }))
        .route(
            "/v/page.mp4",
            get(|| async { ([(header::CONTENT_TYPE, "video/mp4")], "<!DOCTYPE html><html><body>Watch on our app</body></html>") }),
        )
        .route("/v/gone.mp4", get(|| async { StatusCode::NOT_FOUND }))
        .route("/v/private.mp4", get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data/clip.mp4") }))
        .route("/v/empty.mp4", get(|| async { ([(header::CONTENT_TYPE, "video/mp4")], Bytes::new()) }))
        // 2 MiB, over the test's 1 MiB cap: said up front, or only found out while reading.
        .route(
            "/v/huge.mp4",
            get(move || async move { ([(header::CONTENT_LENGTH, "2097152")], Body::from_stream(mib_stream(big.clone()))) }),
        )
        .route("/v/huge-unsized.mp4", get(move || async move { Body::from_stream(mib_stream(big2.clone())) }))
        .route(
            "/v/endless.mp4",
            get(move || async move {
                // A real MP4 header, then a byte every 100 ms, forever.
                let first = futures_util::stream::iter([Ok::<_, std::io::Error>(head.clone())]);
                let drip = futures_util::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((Ok(Bytes::from_static(b"\0")), ()))
                });
                Response::new(Body::from_stream(futures_util::StreamExt::chain(first, drip)))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// 2 MiB of an MP4's first bytes and zeros, sent a chunk at a time.
fn mib_stream(head: Bytes) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let mut first = vec![0u8; 1024 * 1024];
    first[..head.len()].copy_from_slice(&head);
    futures_util::stream::iter([Ok(Bytes::from(first)), Ok(Bytes::from(vec![0u8; 1024 * 1024]))])
}

async fn submit(t: &TestApp, api_key: &str, user_id: &str, url: &str) -> (StatusCode, Value) {
    let body = json!({"content_type": "video", "source_url": url, "caption": "Wait for the cut", "user_id": user_id});
    let r = t.post("/api/v1/analyze").api_key(api_key).json(&body).send().await;
    (r.status, r.body)
}

#[tokio::test]
async fn a_video_url_is_fetched_once_measured_and_scored() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let user = ann.user.id.to_string();
    let video = clip();
    let base = media_server(video.clone()).await;
    let pipeline = t.start_pipeline(&Stages::sharing_blobs(&t));

    // Through a redirect to a path with no extension and a generic content type.
    let (status, body) = submit(&t, &ann.api_key, &user, &format!("{base}/v/moved")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let job = body["job_id"].as_str().unwrap();
    let done = t.finished_job(&ann.api_key, job).await;
    assert_eq!(done["status"], "complete", "{done}");
    let media = &done["metrics"]["media"];
    assert_eq!((media["width"].as_u64(), media["height"].as_u64()), (Some(320), Some(240)), "{media}");
    let cuts = media["scenes"]["cuts_s"].as_array().unwrap();
    assert!(cuts.len() == 1 && (cuts[0].as_f64().unwrap() - 2.0).abs() <= 0.1, "{media}");
    // The one immutable copy every later stage reads.
    let stored = t.blobs.get(&domain::media::fetched_key(job.parse().unwrap())).await.unwrap().expect("the fetched copy is stored");
    assert!(stored == video, "the stored copy is the served file, byte for byte");
    // The job's live stream told each media step as extraction did it.
    let events = t.app.store.job_events(job.parse().unwrap(), 0, 100).await.unwrap();
    let told: Vec<(&str, Value)> = events.iter().map(|e| (e.kind.as_str(), e.data.clone())).collect();
    let kinds: Vec<&str> = told.iter().map(|e| e.0).collect();
    assert_eq!(kinds, ["queued", "moderation", "extraction", "progress", "progress", "progress", "inference", "complete"], "{told:?}");
    let steps: Vec<(&str, u64, u64)> =
        told[3..6].iter().map(|(_, d)| (d["step"].as_str().unwrap(), d["done"].as_u64().unwrap(), d["of"].as_u64().unwrap())).collect();
    assert_eq!(steps, [("received", 1, 3), ("measured", 2, 3), ("thumbnails", 3, 3)]);
    assert_eq!(told[3].1["bytes"].as_u64(), Some(video.len() as u64));
    assert_eq!(told[4].1["cuts"].as_u64(), Some(1));
    pipeline.stop().await;
}

#[tokio::test]
async fn a_platform_page_is_refused_at_submission_with_what_to_do() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let user = ann.user.id.to_string();
    for page in ["https://www.tiktok.com/@creator/video/7301234567890123456", "https://www.youtube.com/watch?v=dQw4w9WgXcQ"] {
        let (status, body) = submit(&t, &ann.api_key, &user, page).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["details"]["fields"][0]["field"], "source_url", "{body}");
        let message = body["error"]["details"]["fields"][0]["message"].as_str().unwrap();
        assert!(message.contains("upload") && message.contains("direct"), "{message}");
    }
    // A private address is refused before anything is fetched.
    let (status, _) = submit(&t, &ann.api_key, &user, "https://169.254.169.254/latest/meta-data").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn every_bad_url_ends_the_job_failed_with_a_reason() {
    let mut t = TestApp::spawn(Backend::Sqlite).await;
    t.config.media.fetch_max_bytes = 1024 * 1024;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let user = ann.user.id.to_string();
    let base = media_server(clip()).await;
    let pipeline = t.start_pipeline(&Stages::sharing_blobs(&t));

    let cases = [
        ("/v/page.mp4", "web page"),
        ("/v/gone.mp4", "404"),
        ("/v/private.mp4", "169.254.169.254"),
        ("/v/empty.mp4", "empty"),
        ("/v/huge.mp4", "over 1 MiB"),
        ("/v/huge-unsized.mp4", "over 1 MiB"),
        ("/v/endless.mp4", "did not finish within 3 s"),
    ];
    let mut jobs = Vec::new();
    for (path, _) in &cases {
        let (status, body) = submit(&t, &ann.api_key, &user, &format!("{base}{path}")).await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
        jobs.push(body["job_id"].as_str().unwrap().to_string());
    }
    for ((path, expected), job) in cases.iter().zip(&jobs) {
        let done = t.finished_job(&ann.api_key, job).await;
        assert_eq!(done["status"], "failed", "{path}: {done}");
        let reason = done["errors"][0]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(expected), "{path}: expected {expected:?} in {reason:?}");
        // Nothing half-written: no copy is kept of what was refused.
        assert!(t.blobs.get(&domain::media::fetched_key(job.parse().unwrap())).await.unwrap().is_none(), "{path}");
    }
    pipeline.stop().await;
}
