//! On-device speech recognition against ground truth: real read speech (LibriVox, from
//! Debian's pocketsphinx-testdata, with its reference transcript) for the word error rate,
//! generated speech after a known silence for the onset, and a pure tone, which must produce
//! no words at all. The model is the one scripts/test set up (GOVIRAL_WHISPER_DIR).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use domain::ports::MediaAnalyzer;
use goviral_media::speech::Speech;
use goviral_media::{MediaAnalysis, Tools};
use goviral_testkit::media::ffmpeg;
use serde_json::{Value, json};

const LIBRIVOX: &str = "/usr/share/pocketsphinx/test/data/librivox";

fn model_dir() -> PathBuf {
    PathBuf::from(std::env::var("GOVIRAL_WHISPER_DIR").expect("GOVIRAL_WHISPER_DIR: run the suite through scripts/test"))
}

fn transcriber() -> goviral_asr::Transcriber {
    goviral_asr::Transcriber::load(&model_dir()).expect("the converted model loads")
}

/// Lowercase words without punctuation; hyphenated words split, "mr." spelled out as the
/// reference spells it.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace("mr.", "mister")
        .replace('-', " ")
        .split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric() || *c == '\'').collect::<String>())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate: word-level edit distance over the reference length.
fn wer(reference: &[String], hypothesis: &[String]) -> f64 {
    let mut row: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let cost = if r == h { prev } else { prev + 1 };
            prev = row[j + 1];
            row[j + 1] = cost.min(row[j] + 1).min(prev + 1);
        }
    }
    row[hypothesis.len()] as f64 / reference.len() as f64
}

/// The five LibriVox utterances, in order, and their reference text.
fn librivox() -> (Vec<PathBuf>, String) {
    let reference = std::fs::read_to_string(Path::new(LIBRIVOX).join("transcription")).expect("pocketsphinx-testdata is installed");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(LIBRIVOX).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "wav")).collect();
    files.sort();
    let text =
        reference.lines().map(|l| l.replace("<s>", "").split("</s>").next().unwrap_or_default().trim().to_string()).collect::<Vec<_>>();
    (files, text.join(" "))
}

#[tokio::test]
async fn real_read_speech_is_transcribed_within_ten_percent_word_error() {
    let (files, reference) = librivox();
    assert_eq!(files.len(), 5);
    let dir = tempfile::tempdir().unwrap();
    let joined = dir.path().join("librivox.wav");
    let mut args: Vec<String> = Vec::new();
    for f in &files {
        args.extend(["-i".into(), f.display().to_string()]);
    }
    args.extend(["-filter_complex".into(), format!("concat=n={}:v=0:a=1", files.len()), joined.display().to_string()]);
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let pcm = Tools::on_path(Duration::from_secs(60)).unwrap().pcm_16k(&joined, 180.0).await.unwrap();
    assert!((pcm.len() as f64 / 16_000.0 - 24.7).abs() < 0.5, "{} samples", pcm.len());

    let transcript = transcriber().transcribe(&pcm).unwrap();
    let (r, h) = (words(&reference), words(&transcript.text()));
    let rate = wer(&r, &h);
    eprintln!("LibriVox (24.7 s, {} reference words): WER {rate:.3}", r.len());
    assert!(rate <= 0.10, "WER {rate:.3}\nreference:  {}\ntranscript: {}", r.join(" "), h.join(" "));
    // Segments are in order and inside the recording.
    let segments = &transcript.segments;
    assert!(segments.windows(2).all(|w| w[0].start_s <= w[1].start_s), "{segments:?}");
    assert!(segments.last().unwrap().end_s <= 25.5, "{segments:?}");
}

/// A 320×240 clip of `seconds` with the given sound (a WAV file) from `audio_at_s` on.
fn video_with(dir: &Path, audio: &Path, audio_at_s: f64, seconds: f64) -> PathBuf {
    let out = dir.join("talk.mp4");
    let delay_ms = (audio_at_s * 1000.0).round() as u64;
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=s=320x240:r=30:d={seconds}"),
        "-i",
        audio.to_str().unwrap(),
        "-filter_complex",
        &format!("[1:a]adelay={delay_ms}:all=1,apad,atrim=0:{seconds}[a]"),
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-t",
        &seconds.to_string(),
        out.to_str().unwrap(),
    ]);
    out
}

fn analysis() -> MediaAnalysis {
    let speech = Arc::new(Speech::new(Some(Arc::new(transcriber())), None).unwrap());
    MediaAnalysis::on_path(Duration::from_secs(120), 180.0, Ok(speech), None).unwrap()
}

#[tokio::test]
async fn speech_onset_rate_and_spoken_hook_are_measured_in_a_video() {
    let dir = tempfile::tempdir().unwrap();
    let voice = dir.path().join("voice.wav");
    let said = "Stop scrolling. Here are three mistakes everyone makes when they bake bread at home.";
    let out =
        std::process::Command::new("espeak-ng").args(["-v", "en-us", "-s", "160", "-w", voice.to_str().unwrap(), said]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // espeak-ng starts speaking within a few milliseconds of its file's start.
    let video = video_with(dir.path(), &voice, 2.0, 9.0);

    let media = analysis().analyze(&video).await.unwrap();
    let onset = media["audio"]["speech_onset_s"].as_f64().expect("speech onset");
    assert!((onset - 2.0).abs() <= 0.3, "speech onset {onset}: {media}");
    let speech = &media["speech"];
    assert_eq!(speech["engine"], "whisper-tiny.en (on-device)", "{speech}");
    let heard = words(speech["transcript"].as_str().unwrap());
    let rate = wer(&words(said), &heard);
    assert!(rate <= 0.25, "synthetic speech WER {rate:.2}: {heard:?}");
    let wpm = speech["words_per_minute"].as_f64().unwrap();
    assert!((100.0..=260.0).contains(&wpm), "{wpm} words per minute");
    assert_eq!(media["hook"]["speech_onset_s"], media["audio"]["speech_onset_s"]);
    assert!(media["hook"]["spoken"].as_str().unwrap().to_lowercase().contains("stop"), "{}", media["hook"]);
}

#[tokio::test]
async fn a_tone_is_not_speech_and_no_words_are_invented() {
    // A long tone, and a short one at 44.1 kHz (on which the model loops "Aaaa…" to its token
    // limit, confidently).
    for (seconds, rate) in [(12.0, 16_000), (4.0, 44_100)] {
        let dir = tempfile::tempdir().unwrap();
        let tone = dir.path().join("tone.wav");
        ffmpeg(&["-f", "lavfi", "-i", &format!("sine=f=440:r={rate}:d={seconds}"), tone.to_str().unwrap()]);
        let video = video_with(dir.path(), &tone, 0.0, seconds);
        let media = analysis().analyze(&video).await.unwrap();
        assert_eq!(media["speech"]["words"], 0, "{seconds} s: {}", media["speech"]);
        assert_eq!(media["audio"]["speech_onset_s"], Value::Null);
    }
}

/// Whether `value` is what `schema` (of the OpenAPI document `doc`) describes: types,
/// required members, and every documented member of the value, recursively.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        if !target.is_object() {
            return Err(format!("{at}: the document has no schema {name}"));
        }
        return conforms(doc, target, value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            return match options.iter().any(|o| conforms(doc, o, value, at).is_ok()) {
                true => Ok(()),
                false => Err(format!("{at}: {value} matches none of {key}")),
            };
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        return all.iter().try_for_each(|o| conforms(doc, o, value, at));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let ok = types.is_empty() || types.contains(&kind) || (kind == "integer" && types.contains(&"number"));
    if !ok {
        return Err(format!("{at} is {kind} ({value}), the document says {types:?}"));
    }
    if let (Some(props), Value::Object(members)) = (schema["properties"].as_object(), value) {
        for required in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !members.contains_key(required) {
                return Err(format!("{at}.{required} is required and missing"));
            }
        }
        for (name, sub) in props {
            if let Some(v) = members.get(name) {
                conforms(doc, sub, v, &format!("{at}.{name}"))?;
            }
        }
    }
    if let (Some(items), Value::Array(list)) = (schema.get("items"), value) {
        for (i, v) in list.iter().enumerate() {
            conforms(doc, items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// A talking head: espeak-ng saying `said` from 0.5 s over NASA's astronaut portrait (the face
/// tests' picture, scripts/test-media), 6 s at 320×320.
fn talking_clip(said: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let voice = dir.path().join("voice.wav");
    let out =
        std::process::Command::new("espeak-ng").args(["-v", "en-us", "-s", "150", "-w", voice.to_str().unwrap(), said]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let picture = Path::new(&std::env::var("GOVIRAL_TEST_MEDIA_DIR").expect("GOVIRAL_TEST_MEDIA_DIR: run through scripts/test"))
        .join("astronaut.png");
    let clip = dir.path().join("talk.mp4");
    ffmpeg(&[
        "-loop",
        "1",
        "-framerate",
        "30",
        "-t",
        "6",
        "-i",
        picture.to_str().unwrap(),
        "-i",
        voice.to_str().unwrap(),
        "-filter_complex",
        "[0:v]scale=320:320,format=yuv420p[v];[1:a]adelay=500:all=1,apad,atrim=0:6[a]",
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        "-t",
        "6",
        clip.to_str().unwrap(),
    ]);
    std::fs::read(clip).unwrap()
}

/// Through the real app: a video with no caption is scored from what is said in it, the
/// metrics carry the transcript and the hook; speech that moderation flags fails the job.
#[tokio::test]
async fn a_video_is_scored_from_its_speech_and_flagged_speech_is_stopped() {
    use domain::model::Plan;
    use goviral_testkit::pipeline::Stages;
    use goviral_testkit::{Backend, TestApp};

    let t = TestApp::spawn(Backend::Sqlite).await;
    let ann = t.user("ann@example.com", Plan::Pro, false).await;
    let pipeline = t.start_pipeline(&Stages::sharing_blobs(&t));
    let submit = |url: String| {
        let body = json!({"content_type": "video", "source_url": url, "user_id": ann.user.id});
        let t = &t;
        let key = ann.api_key.clone();
        async move { t.post("/api/v1/analyze").api_key(&key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string() }
    };

    let good =
        submit(goviral_testkit::media::serve_clip(talking_clip("Stop scrolling. This one trick saves you an hour every day.")).await).await;
    let flagged = submit(goviral_testkit::media::serve_clip(talking_clip("Listen to me. I will kill you.")).await).await;

    let done = t.finished_job(&ann.api_key, &good).await;
    assert_eq!(done["status"], "complete", "{done}");
    let speech = &done["metrics"]["media"]["speech"];
    assert!(speech["transcript"].as_str().unwrap().to_lowercase().contains("scrolling"), "{speech}");
    assert!(done["metrics"]["hook"]["spoken"].as_str().unwrap().to_lowercase().contains("stop"), "{}", done["metrics"]["hook"]);
    // The speaker is on camera from the first frame.
    let faces = &done["metrics"]["media"]["faces"];
    assert_eq!((faces["in_hook"].as_bool(), faces["first_face_s"].as_f64()), (Some(true), Some(0.5)), "{faces}");
    assert!(done["score"].as_f64().is_some());
    // Advice from what was measured, marked as heuristic, and the confidence says what the
    // text cannot see.
    let findings = done["metrics"]["media_findings"].as_array().expect("media_findings");
    assert!(findings.iter().all(|f| f["basis"].as_str().unwrap().starts_with("heuristic")), "{findings:?}");
    assert!(done["confidence"].as_f64().unwrap() <= 0.8, "{}", done["confidence"]);
    // The metrics are what the served OpenAPI document says they are.
    let doc = t.get("/api/v1/openapi.json").send().await.body;
    if let Err(why) = conforms(&doc, &json!({"$ref": "#/components/schemas/JobMetrics"}), &done["metrics"], "metrics") {
        panic!("metrics do not match the OpenAPI document: {why}\n{}", done["metrics"]);
    }

    let done = t.finished_job(&ann.api_key, &flagged).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["errors"][0]["error"], "content_flagged", "{done}");
    assert!(done["errors"][0]["reason"].as_str().unwrap().contains("in the video was flagged"), "{done}");
    assert!(done["score"].is_null());
    pipeline.stop().await;
}

/// The app with the OpenAI path on, against a mock OpenAI with its documented answers; a
/// customer; the pipeline running; and a talking clip served from loopback.
struct OpenAiVideos {
    mock: goviral_testkit::openai::MockOpenAi,
    t: goviral_testkit::TestApp,
    ann: domain::service::NewUserCredentials,
    pipeline: goviral_testkit::pipeline::RunningPipeline,
    clip: String,
}

impl OpenAiVideos {
    async fn start() -> OpenAiVideos {
        let mock = goviral_testkit::openai::MockOpenAi::start().await;
        let mut t = goviral_testkit::TestApp::spawn(goviral_testkit::Backend::Sqlite).await;
        let mut settings = goviral_llm::OpenAiSettings::new(&mock.base_url, "sk-test", "gpt-test");
        settings.backoff_base = Duration::from_millis(1);
        t.config.openai = Some(settings.clone());
        let ann = t.user("ann@example.com", domain::model::Plan::Pro, false).await;
        let pipeline = t.start_pipeline(&goviral_testkit::pipeline::Stages::with_openai(settings));
        let clip = goviral_testkit::media::serve_clip(talking_clip("Stop scrolling. This one trick saves you an hour every day.")).await;
        OpenAiVideos { mock, t, ann, pipeline, clip }
    }
}

/// With OpenAI configured, `audio.transcriptions` (a mock with OpenAI's documented answers on
/// loopback) transcribes; when it keeps failing, the job is transcribed on-device and says so.
#[tokio::test]
async fn openai_transcribes_when_configured_and_on_device_takes_over_when_it_fails() {
    use goviral_testkit::openai::Reply;

    let OpenAiVideos { mock, t, ann, pipeline, clip } = OpenAiVideos::start().await;
    let submit = |caption: &str| {
        let body = json!({"content_type": "video", "source_url": clip, "caption": caption, "user_id": ann.user.id});
        let (t, key) = (&t, ann.api_key.clone());
        async move { t.post("/api/v1/analyze").api_key(&key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string() }
    };

    mock.then_audio([Reply::Content("Stop scrolling. The mock heard this.".into())]);
    let done = t.finished_job(&ann.api_key, &submit("one").await).await;
    assert_eq!(done["status"], "complete", "{done}");
    let speech = &done["metrics"]["media"]["speech"];
    assert_eq!(
        (speech["engine"].as_str(), speech["transcript"].as_str()),
        (Some("openai (whisper-1)"), Some("Stop scrolling. The mock heard this.")),
        "{speech}"
    );
    assert_eq!(speech["language"], "en", "OpenAI's \"english\" as a code");
    let sent = mock.audio_requests();
    assert_eq!((sent[0].model.as_deref(), sent[0].response_format.as_deref()), (Some("whisper-1"), Some("verbose_json")));
    assert_eq!(&sent[0].file[..4], b"RIFF", "the sound goes as a WAV file");

    // Three 503s: retried, then on-device.
    mock.then_audio([Reply::Status(503), Reply::Status(503), Reply::Status(503)]);
    let done = t.finished_job(&ann.api_key, &submit("two").await).await;
    assert_eq!(done["status"], "complete", "{done}");
    let speech = &done["metrics"]["media"]["speech"];
    assert_eq!(speech["engine"], "whisper-tiny.en (on-device)", "{speech}");
    assert!(speech["fallback"].as_str().unwrap().contains("503"), "{speech}");
    assert!(speech["transcript"].as_str().unwrap().to_lowercase().contains("scrolling"), "{speech}");
    assert_eq!(mock.audio_requests().len(), 4, "one call, then three attempts");
    pipeline.stop().await;
}

/// With OpenAI configured, moderation is OpenAI's (a mock with its documented answers): the
/// caption, then what is said and shown, and the video's stills as images; a flagged still
/// fails the job with the frame's time, and a moderation outage fails it closed.
#[tokio::test]
async fn openai_moderation_sees_the_frames_and_a_flagged_frame_stops_the_job() {
    use base64::Engine;
    use goviral_testkit::openai::Reply;

    let OpenAiVideos { mock, t, ann, pipeline, clip } = OpenAiVideos::start().await;
    let submit = |caption: &str| {
        let body = json!({"content_type": "video", "source_url": clip, "caption": caption, "user_id": ann.user.id});
        let (t, key) = (&t, ann.api_key.clone());
        async move { t.post("/api/v1/analyze").api_key(&key).json(&body).send().await.body["job_id"].as_str().unwrap().to_string() }
    };

    let done = t.finished_job(&ann.api_key, &submit("my morning routine").await).await;
    assert_eq!(done["status"], "complete", "{done}");
    let sent = mock.moderation_requests();
    assert!(sent.iter().all(|r| r["model"] == "omni-moderation-latest"), "{sent:?}");
    let texts: Vec<String> =
        sent.iter().filter_map(|r| r["input"].as_array()).flatten().filter_map(|i| i.as_str().map(String::from)).collect();
    assert!(texts.iter().any(|t| t.contains("my morning routine")), "the caption is moderated: {texts:?}");
    assert!(texts.iter().any(|t| t.to_lowercase().contains("scrolling")), "so is what is said: {texts:?}");
    let images: Vec<&str> = sent
        .iter()
        .filter_map(|r| r["input"].as_array())
        .flatten()
        .filter(|p| p["type"] == "image_url")
        .filter_map(|p| p["image_url"].as_str())
        .collect();
    let stills = done["metrics"]["media"]["thumbnails"].as_array().unwrap().len();
    assert!(stills >= 1 && images.len() == stills, "every still is moderated: {} of {stills}", images.len());
    let jpeg = base64::engine::general_purpose::STANDARD.decode(images[0].strip_prefix("data:image/jpeg;base64,").unwrap()).unwrap();
    assert_eq!(&jpeg[..3], [0xff, 0xd8, 0xff], "a JPEG");

    // A still OpenAI flags fails the job before scoring, saying which frame.
    mock.flag_images("violence/graphic");
    let done = t.finished_job(&ann.api_key, &submit("my evening routine").await).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["errors"][0]["error"], "content_flagged", "{done}");
    let reason = done["errors"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("violence/graphic (0.93) in the frame at 0.5 s"), "{reason}");
    assert!(done["score"].is_null());
    mock.flag_images("");

    // Moderation down for good: the job fails closed instead of being scored unchecked.
    mock.then_moderation(std::iter::repeat_n(Reply::Status(503), 200));
    let done = t.finished_job(&ann.api_key, &submit("my afternoon routine").await).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["errors"][0]["stage"], "moderation", "{done}");
    assert!(done["errors"][0]["reason"].as_str().unwrap().contains("moderation unavailable"), "{done}");
    assert!(done["score"].is_null(), "{done}");
    pipeline.stop().await;
}
