//! Clips made by ffmpeg (lavfi sources, so nothing is committed) and a media server on
//! loopback that serves one, for tests of videos by URL.

use axum::body::Bytes;
use axum::routing::get;

/// Runs ffmpeg with `args` (errors only, overwriting), asserts it succeeded, and returns
/// what it wrote to stdout.
pub fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs (scripts/test installs it)");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Runs ffmpeg with `args` into a temp MP4 file and returns the file's bytes.
pub fn ffmpeg_clip(args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("clip.mp4");
    let mut args = args.to_vec();
    args.push(file.to_str().expect("a UTF-8 temp path"));
    ffmpeg(&args);
    std::fs::read(file).expect("the clip")
}

/// 2 s of a moving test pattern at 320×240, with no sound track and nothing to read.
pub fn mute_clip() -> Vec<u8> {
    ffmpeg_clip(&["-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=2", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
}

/// Serves `bytes` at `/clip.mp4` on 127.0.0.1 and returns its URL.
pub async fn serve_clip(bytes: Vec<u8>) -> String {
    let bytes = Bytes::from(bytes);
    let app = axum::Router::new().route("/clip.mp4", get(move || async move { bytes.clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let url = format!("http://{}/clip.mp4", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("media server") });
    url
}
