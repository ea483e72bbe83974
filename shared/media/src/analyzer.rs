//! The domain's `MediaAnalyzer` port on ffmpeg: the `metrics.media` document of a video.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::ports::MediaAnalyzer;
use serde_json::{Value, json};

use crate::speech::{self, Speech};
use crate::{MediaError, Tools};
use goviral_asr::Transcript;

/// The largest picture analysed, on its longer side (4K is 3840).
pub const MAX_SIDE_PX: u32 = 4096;

/// Probe, signals and speech on the installed tools, refusing files over `max_seconds` or
/// larger than 4096 px before decoding them (so such a file costs one probe, not a decode).
pub struct MediaAnalysis {
    tools: Tools,
    max_seconds: f64,
    /// The speech model, or why there is none.
    speech: Result<Arc<Speech>, String>,
}

impl MediaAnalysis {
    pub const DEFAULT_MAX_SECONDS: f64 = 180.0;

    /// On the Debian tools found on `PATH`; each run may take `timeout`. `speech` is the
    /// model transcriptions run on, or why there is none (the rest is measured regardless).
    pub fn on_path(timeout: Duration, max_seconds: f64, speech: Result<Arc<Speech>, String>) -> Result<MediaAnalysis, MediaError> {
        Ok(MediaAnalysis { tools: Tools::on_path(timeout)?, max_seconds, speech })
    }

    /// The `speech` report, and the transcript when there is one; `sound_onsets_s` place
    /// where speech starts more finely than Whisper's timestamps.
    async fn speech(&self, file: &Path, has_audio: bool, sound_onsets_s: &[f64]) -> (Value, Option<Transcript>) {
        if !has_audio {
            return (speech::absent(speech::ENGINE, "the video has no sound track"), None);
        }
        let model = match &self.speech {
            Ok(model) => model,
            Err(why) => return (speech::absent("unavailable", why), None),
        };
        let pcm = match self.tools.pcm_16k(file, self.max_seconds).await {
            Ok(pcm) => pcm,
            Err(e) => return (speech::absent("unavailable", &e.to_string()), None),
        };
        let duration = pcm.len() as f64 / 16_000.0;
        match model.transcribe(pcm).await {
            Ok(t) => (speech::report(&t, duration, speech::speech_onset(&t, sound_onsets_s)), Some(t)),
            Err(e) => {
                tracing::warn!(error = %e, "transcription failed; the video is measured without its speech");
                (speech::absent("unavailable", &e), None)
            }
        }
    }
}

/// The first seconds a viewer decides in.
const HOOK_SECS: f64 = 3.0;

fn domain_error(e: MediaError) -> domain::Error {
    match e {
        MediaError::Missing(_) | MediaError::Io { .. } => domain::Error::Unavailable(e.to_string()),
        MediaError::TimedOut { .. } | MediaError::Unreadable(_) => domain::Error::validation("media", e.to_string()),
    }
}

#[async_trait]
impl MediaAnalyzer for MediaAnalysis {
    async fn analyze(&self, file: &Path) -> domain::Result<Value> {
        let probe = self.tools.probe(file).await.map_err(domain_error)?;
        if !probe.has_video {
            return Err(domain::Error::validation("media", "the file has no video stream"));
        }
        if probe.duration_s > self.max_seconds {
            return Err(domain::Error::validation(
                "media",
                format!("the video is {:.0} s long; at most {:.0} s are analysed", probe.duration_s, self.max_seconds),
            ));
        }
        if probe.width.max(probe.height) > MAX_SIDE_PX {
            return Err(domain::Error::validation(
                "media",
                format!("the video is {}×{}; at most {MAX_SIDE_PX} px on a side are analysed", probe.width, probe.height),
            ));
        }
        let s = self.tools.signals(file, &probe).await.map_err(domain_error)?;
        let (speech, transcript) = self.speech(file, probe.has_audio, &s.sound_onsets_s).await;
        let speech_onset_s = transcript.as_ref().and_then(|t| speech::speech_onset(t, &s.sound_onsets_s));
        let spoken_hook: Vec<&str> =
            transcript.iter().flat_map(|t| &t.segments).filter(|g| g.start_s < HOOK_SECS).map(|g| g.text.as_str()).collect();
        Ok(json!({
            "duration_s": probe.duration_s,
            "width": probe.width,
            "height": probe.height,
            "fps": (probe.fps * 100.0).round() / 100.0,
            "rotation": probe.rotation,
            "has_audio": probe.has_audio,
            "scenes": {
                "cuts_s": s.cuts_s,
                "cuts_per_minute": s.cuts_per_minute,
                "first_cut_s": s.first_cut_s,
                "black_ratio": s.black_ratio,
                "static_ratio": s.static_ratio,
            },
            "audio": {
                "loudness_lufs": s.loudness_lufs,
                "loudness_range_lu": s.loudness_range_lu,
                "true_peak_dbtp": s.true_peak_dbtp,
                "silence_ratio": s.silence_ratio,
                "sound_onset_s": s.sound_onset_s,
                "speech_onset_s": speech_onset_s,
            },
            "speech": speech,
            "hook": {
                "seconds": HOOK_SECS,
                "motion": s.hook_motion,
                "cut_in_hook": s.first_cut_s.is_some_and(|t| t < HOOK_SECS),
                "speech_onset_s": speech_onset_s,
                "spoken": spoken_hook.join(" "),
            },
            "engine": "ffmpeg",
        }))
    }
}

/// A deployment without the media tools (the zip-packaged Lambdas): says so, and the job is
/// scored from its text.
pub struct NoMediaTools(pub String);

#[async_trait]
impl MediaAnalyzer for NoMediaTools {
    async fn analyze(&self, _file: &Path) -> domain::Result<Value> {
        Err(domain::Error::Unavailable(self.0.clone()))
    }
}
