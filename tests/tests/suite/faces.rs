//! Faces against ground truth: NASA's portrait of Eileen Collins (the astronaut picture from
//! scikit-image, scripts/test-media) has one face at a known place; test patterns have none.
//! Clips made of the picture and a pattern tell a face in the hook from one that comes later.
//! The detector is the one scripts/test set up (GOVIRAL_FACE_MODEL).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use domain::ports::MediaAnalyzer;
use goviral_media::MediaAnalysis;
use goviral_testkit::media::ffmpeg;
use goviral_vision::FaceDetector;
use serde_json::Value;

fn detector() -> Arc<FaceDetector> {
    let model = std::env::var("GOVIRAL_FACE_MODEL").expect("GOVIRAL_FACE_MODEL: run the suite through scripts/test");
    Arc::new(FaceDetector::load(Path::new(&model)).expect("centerface.onnx loads"))
}

fn astronaut() -> PathBuf {
    let dir = std::env::var("GOVIRAL_TEST_MEDIA_DIR").expect("GOVIRAL_TEST_MEDIA_DIR: run the suite through scripts/test");
    Path::new(&dir).join("astronaut.png")
}

/// The first frame of an input (`-i` arguments) as raw RGB at `w`×`h`.
fn rgb(input: &[&str], w: usize, h: usize) -> Vec<u8> {
    let mut args = input.to_vec();
    let scale = format!("scale={w}:{h}");
    args.extend(["-frames:v", "1", "-vf", &scale, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
    let out = ffmpeg(&args);
    assert_eq!(out.len(), w * h * 3);
    out
}

#[test]
fn the_astronauts_face_is_found_where_it_is_and_test_patterns_have_none() {
    let detector = detector();
    let picture = astronaut();
    let faces = detector.detect(&rgb(&["-i", picture.to_str().unwrap()], 512, 512), 512, 512).unwrap();
    assert_eq!(faces.len(), 1, "{faces:?}");
    let f = faces[0];
    // Her face spans about x 182–270, y 58–178 of the 512×512 picture.
    let near = |a: f32, b: f32| (a - b).abs() <= 6.0;
    assert!(near(f.x, 182.0) && near(f.y, 58.0) && near(f.width, 88.0) && near(f.height, 120.0) && f.score > 0.9, "{f:?}");
    // Smaller, and squeezed into a wide frame, it is still found.
    let small = detector.detect(&rgb(&["-i", picture.to_str().unwrap()], 192, 128), 192, 128).unwrap();
    assert_eq!(small.len(), 1, "{small:?}");

    // The Mandelbrot render scores 0.53 at this size: close to a face, and under the threshold.
    for pattern in ["testsrc2=s=384x224", "smptehdbars=s=384x224", "mandelbrot=s=384x224", "color=c=orange:s=384x224"] {
        let frame = rgb(&["-f", "lavfi", "-i", pattern], 384, 224);
        assert_eq!(detector.detect(&frame, 384, 224).unwrap(), [], "{pattern}");
    }
    // Pictures the network cannot take are refused, not guessed at.
    assert!(detector.detect(&[0; 30 * 32 * 3], 30, 32).is_err());
    assert!(detector.detect(&[0; 10], 32, 32).is_err());
    assert!(detector.detect(&[], 4096, 4096).is_err());
}

/// A 1280×720 (or, `portrait`, 720×1280) clip of 10 s: the astronaut from `face_from` to
/// `face_to` seconds, a moving test pattern the rest of the time.
fn clip(dir: &Path, name: &str, face_from: u32, face_to: u32, portrait: bool) -> PathBuf {
    let out = dir.join(name);
    let (w, h) = if portrait { (720, 1280) } else { (1280, 720) };
    let picture = astronaut();
    let pattern = format!("testsrc2=s={w}x{h}:r=30:d=10");
    let graph = format!(
        "[1:v]scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=30[face];\
         [0:v][face]overlay=enable='between(t,{face_from},{face_to})'[v]"
    );
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &pattern,
        "-loop",
        "1",
        "-t",
        "10",
        "-i",
        picture.to_str().unwrap(),
        "-filter_complex",
        &graph,
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-t",
        "10",
        out.to_str().unwrap(),
    ]);
    out
}

fn analyzer(faces: Option<Arc<FaceDetector>>) -> MediaAnalysis {
    MediaAnalysis::on_path(Duration::from_secs(120), 180.0, Err("not needed here".into()), faces).unwrap()
}

#[tokio::test]
async fn a_face_in_the_hook_is_told_from_one_that_comes_later() {
    let dir = tempfile::tempdir().unwrap();
    let detector = detector();
    let seeing = analyzer(Some(detector));

    // Frames are looked at 0.5, 1.5, 2.5 and 5 s.
    let opening = seeing.analyze(&clip(dir.path(), "opening.mp4", 0, 4, false)).await.unwrap();
    let faces = &opening["faces"];
    assert_eq!((faces["in_hook"].as_bool(), faces["first_face_s"].as_f64()), (Some(true), Some(0.5)), "{faces}");
    assert_eq!((faces["frames_checked"].as_u64(), faces["share_of_frames"].as_f64()), (Some(4), Some(0.75)), "{faces}");
    assert_eq!(faces["most_at_once"], 1, "{faces}");
    // The portrait fills the frame's height; her 88×120 px face (of 512) is then about
    // 0.097 × 0.234 ≈ 2.3% of the 16:9 frame.
    let largest = faces["largest_in_hook"].as_f64().unwrap();
    assert!((0.018..0.028).contains(&largest), "{faces}");
    assert_eq!(opening["hook"]["face"], true);
    assert_eq!(faces["engine"], "centerface");

    let later = seeing.analyze(&clip(dir.path(), "later.mp4", 4, 10, true)).await.unwrap();
    let faces = &later["faces"];
    assert_eq!((faces["in_hook"].as_bool(), faces["first_face_s"].as_f64()), (Some(false), Some(5.0)), "{faces}");
    assert_eq!((faces["share_of_frames"].as_f64(), faces["largest_in_hook"].clone()), (Some(0.25), Value::Null), "{faces}");
    let advice = domain::media_insights::findings(&later, None);
    let late = advice.iter().find(|f| f.rule == "face_after_hook").expect("the late face is told");
    assert!(late.message.contains("5.0 s") && late.until_s == Some(5.0), "{late:?}");

    // Without a detector, faces are not looked for, and nothing is claimed about them.
    let unseen = analyzer(None).analyze(&clip(dir.path(), "unseen.mp4", 0, 4, false)).await.unwrap();
    assert_eq!((unseen["faces"].clone(), unseen["hook"]["face"].clone()), (Value::Null, Value::Null));
    assert!(domain::media_insights::findings(&unseen, None).iter().all(|f| !f.rule.contains("face")));
}
