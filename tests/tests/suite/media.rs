//! Media probing and signals (goviral-media) on clips ffmpeg generates here: shots with known
//! cuts, black and static stretches, a silence then a tone; the measured values must match
//! what was generated, and loudness what ffmpeg's own ebur128 summary says.

use std::path::{Path, PathBuf};
use std::time::Duration;

use goviral_media::{MediaError, Tools};
use goviral_testkit::media::ffmpeg;

fn tools() -> Tools {
    Tools::on_path(Duration::from_secs(60)).expect("ffmpeg and ffprobe are installed by scripts/test")
}

/// 5 s at 320×240, 30 fps: red 0–2 s (a static shot), moving test pattern 2–4 s, black 4–5 s;
/// with `audio`, silence 0–1 s then a 440 Hz tone.
fn clip(dir: &Path, audio: bool) -> PathBuf {
    let out = dir.join(if audio { "clip.mp4" } else { "mute.mp4" });
    let mut args = vec![
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
        "color=c=black:s=320x240:r=30:d=1",
    ];
    if audio {
        args.extend(["-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono:d=1", "-f", "lavfi", "-i", "sine=f=440:r=48000:d=4"]);
        args.extend([
            "-filter_complex",
            "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v];[3:a][4:a]concat=n=2:v=0:a=1[a]",
            "-map",
            "[v]",
            "-map",
            "[a]",
        ]);
        args.extend(["-c:a", "aac"]);
    } else {
        args.extend(["-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]", "-map", "[v]"]);
    }
    args.extend(["-c:v", "libx264", "-pix_fmt", "yuv420p", out.to_str().unwrap()]);
    ffmpeg(&args);
    out
}

/// ffmpeg's own integrated loudness of `file` (the `ebur128` summary on stderr).
fn reference_lufs(file: &Path) -> f64 {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostats", "-i", file.to_str().unwrap(), "-filter_complex", "ebur128", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = text.rsplit("Summary:").next().unwrap();
    let line = summary.lines().find(|l| l.trim_start().starts_with("I:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn one_pass_measures_what_the_clip_was_made_of() {
    let dir = tempfile::tempdir().unwrap();
    let file = clip(dir.path(), true);
    let t = tools();
    let probe = t.probe(&file).await.unwrap();
    assert_eq!((probe.width, probe.height, probe.has_video, probe.has_audio), (320, 240, true, true));
    assert!((probe.duration_s - 5.0).abs() < 0.1, "{probe:?}");
    assert!((probe.fps - 30.0).abs() < 0.01);
    let s = t.signals(&file, &probe).await.unwrap();
    assert_eq!(s.cuts_s.len(), 2, "{s:?}");
    for (got, want) in s.cuts_s.iter().zip([2.0, 4.0]) {
        assert!((got - want).abs() <= 0.1, "cut at {got}, made at {want}");
    }
    assert_eq!(s.first_cut_s, Some(s.cuts_s[0]));
    assert!((s.cuts_per_minute - 24.0).abs() < 1.0, "{}", s.cuts_per_minute);
    assert!((s.black_ratio - 0.2).abs() < 0.03, "black {}", s.black_ratio);
    assert!((s.static_ratio - 0.4).abs() < 0.05, "static {}", s.static_ratio);
    assert!(s.hook_motion.is_some_and(|m| m > 0.0), "the hook moves from 2 s on");
    assert!(s.sound_onset_s.is_some_and(|o| (o - 1.0).abs() <= 0.1), "onset {:?}", s.sound_onset_s);
    assert!(s.silence_ratio.is_some_and(|r| (r - 0.2).abs() < 0.03), "silence {:?}", s.silence_ratio);
    let reference = reference_lufs(&file);
    let lufs = s.loudness_lufs.expect("the tone has a loudness");
    assert!((lufs - reference).abs() <= 0.5, "{lufs} LUFS against ffmpeg's {reference}");
    assert!(s.true_peak_dbtp.is_some_and(|p| p < 0.0 && p > -40.0), "{:?}", s.true_peak_dbtp);
}

#[tokio::test]
async fn a_video_without_sound_has_no_audio_signals() {
    let dir = tempfile::tempdir().unwrap();
    let file = clip(dir.path(), false);
    let t = tools();
    let probe = t.probe(&file).await.unwrap();
    assert!(!probe.has_audio);
    let s = t.signals(&file, &probe).await.unwrap();
    assert_eq!((s.loudness_lufs, s.silence_ratio, s.sound_onset_s), (None, None, None));
    assert_eq!(s.cuts_s.len(), 2);
}

#[tokio::test]
async fn a_rotated_phone_video_is_measured_as_shown() {
    let dir = tempfile::tempdir().unwrap();
    let plain = clip(dir.path(), false);
    let rotated = dir.path().join("rotated.mp4");
    ffmpeg(&["-i", plain.to_str().unwrap(), "-c", "copy", "-metadata:s:v:0", "rotate=90", rotated.to_str().unwrap()]);
    let probe = tools().probe(&rotated).await.unwrap();
    assert_eq!((probe.width, probe.height), (240, 320), "{probe:?}");
    assert_eq!(probe.rotation.rem_euclid(180), 90);
}

#[tokio::test]
async fn what_is_not_media_is_refused_with_a_reason_and_slow_tools_are_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("not-a-video.mp4");
    std::fs::write(&fake, "<html>this is a web page</html>").unwrap();
    match tools().probe(&fake).await {
        Err(MediaError::Unreadable(why)) => assert!(why.contains("ffprobe"), "{why}"),
        other => panic!("{other:?}"),
    }
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(tools().probe(&empty).await, Err(MediaError::Unreadable(_))));
    let file = clip(dir.path(), true);
    let hurried = Tools::on_path(Duration::from_millis(1)).unwrap();
    assert!(matches!(hurried.probe(&file).await, Err(MediaError::TimedOut { tool: "ffprobe", .. })));
}

/// Burned-in captions are read where they are: one in the hook, others later on, in both of
/// the usual styles.
#[tokio::test]
async fn burned_in_captions_are_read_with_their_times() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("captions.mp4");
    let font = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";
    let caption = |text: &str, from: u32, to: u32| {
        format!(
            "drawtext=fontfile={font}:text='{text}':fontsize=72:fontcolor=white:borderw=4:bordercolor=black:x=(w-text_w)/2:y=h*0.7:enable='between(t,{from},{to})'"
        )
    };
    // The usual two styles: white outlined text, and dark text on a light box.
    let boxed = format!(
        "drawtext=fontfile={font}:text='LINK IN BIO':fontsize=64:fontcolor=black:box=1:boxcolor=white:boxborderw=16:x=(w-text_w)/2:y=h*0.2:enable='between(t,9,12)'"
    );
    let graph = format!("{},{},{boxed}", caption("STOP SCROLLING", 0, 3), caption("FOLLOW FOR PART TWO", 4, 8));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=1280x720:r=30:d=16",
        "-vf",
        &graph,
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        out.to_str().unwrap(),
    ]);
    let probe = tools().probe(&out).await.unwrap();
    let look = tools().look(&out, &probe, None, 3.0).await.unwrap();
    assert!(look.faces.is_none(), "no detector was given");
    let read = look.screen_text.expect("tesseract is installed by scripts/test");
    let at = |t: f64| read.iter().find(|r| (r.t_s - t).abs() < 0.01).map(|r| r.text.clone()).unwrap_or_default();
    assert_eq!(at(0.5), "STOP SCROLLING", "{read:?}");
    // The same caption on the next hook frames is not repeated.
    assert!(read.iter().filter(|r| r.text == "STOP SCROLLING").count() == 1, "{read:?}");
    assert!(read.iter().any(|r| r.text.contains("FOLLOW") && r.text.contains("PART") && r.t_s >= 4.0), "{read:?}");
    assert!(read.iter().any(|r| r.text == "LINK IN BIO" && r.t_s == 10.0), "{read:?}");
    // Nothing is read at 15 s, where there is no text.
    assert_eq!(read.len(), 3, "{read:?}");
}

/// The analyzer as extraction calls it (without speech: what is checked here is the video).
fn analyzer(max_seconds: f64) -> goviral_media::MediaAnalysis {
    goviral_media::MediaAnalysis::on_path(Duration::from_secs(60), max_seconds, Err("not needed here".into()), None).unwrap()
}

async fn refusal(file: &Path, max_seconds: f64) -> String {
    use domain::ports::MediaAnalyzer;
    match analyzer(max_seconds).analyze(file).await {
        Err(domain::Error::Validation(fields)) => fields.iter().map(|f| f.message.clone()).collect::<Vec<_>>().join("; "),
        other => panic!("{} was not refused: {other:?}", file.display()),
    }
}

/// Every bad input ends with a reason a user can act on; unusual but valid ones are measured.
#[tokio::test]
async fn bad_and_unusual_inputs() {
    use domain::ports::MediaAnalyzer;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let good = clip(dir.path(), true);

    // Truncated: the first half of a real MP4 (its index is at the end).
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(path("truncated.mp4"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(refusal(&path("truncated.mp4"), 180.0).await.contains("could not read"));
    // A text file named .mp4, and zero bytes.
    std::fs::write(path("text.mp4"), "just some words\n").unwrap();
    assert!(refusal(&path("text.mp4"), 180.0).await.contains("could not read"));
    std::fs::write(path("zero.mp4"), b"").unwrap();
    assert!(!refusal(&path("zero.mp4"), 180.0).await.is_empty());
    // Sound only.
    ffmpeg(&["-f", "lavfi", "-i", "sine=f=440:d=2", "-c:a", "aac", path("audio.m4a").to_str().unwrap()]);
    assert!(refusal(&path("audio.m4a"), 180.0).await.contains("no video stream"));
    // Longer than the cap: refused from the probe, before any decoding.
    ffmpeg(&["-f", "lavfi", "-i", "color=c=gray:s=64x64:r=1:d=12", "-c:v", "libx264", path("long.mp4").to_str().unwrap()]);
    let started = std::time::Instant::now();
    assert!(refusal(&path("long.mp4"), 10.0).await.contains("12 s long; at most 10 s"));
    assert!(started.elapsed() < Duration::from_secs(2));
    // Larger than 4096 px on a side.
    ffmpeg(&["-f", "lavfi", "-i", "color=c=gray:s=4112x64:r=5:d=1", "-c:v", "libx264", path("wide.mp4").to_str().unwrap()]);
    assert!(refusal(&path("wide.mp4"), 180.0).await.contains("4112×64; at most 4096 px"));

    // 10-bit HEVC and variable frame rate are measured like any video.
    ffmpeg(&[
        "-i",
        good.to_str().unwrap(),
        "-c:v",
        "libx265",
        "-pix_fmt",
        "yuv420p10le",
        "-x265-params",
        "log-level=error",
        "-c:a",
        "copy",
        "-tag:v",
        "hvc1",
        path("hevc10.mp4").to_str().unwrap(),
    ]);
    let media = analyzer(180.0).analyze(&path("hevc10.mp4")).await.unwrap();
    assert_eq!((media["width"].as_u64(), media["scenes"]["cuts_s"].as_array().map(Vec::len)), (Some(320), Some(2)), "{media}");
    // Frames at irregular times: the first 2 s at 30 fps, the rest at 10 fps.
    ffmpeg(&[
        "-i",
        good.to_str().unwrap(),
        "-vf",
        "select='lt(t,2)+not(mod(n,3))'",
        "-fps_mode",
        "vfr",
        "-an",
        path("vfr.mp4").to_str().unwrap(),
    ]);
    let media = analyzer(180.0).analyze(&path("vfr.mp4")).await.unwrap();
    assert!(media["duration_s"].as_f64().unwrap() > 0.0 && media["fps"].as_f64().unwrap() > 0.0, "{media}");
    assert_eq!(media["speech"]["reason"], "the video has no sound track", "{media}");
}
