//! The domain's `MediaAnalyzer` port on ffmpeg: the `metrics.media` document of a video.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::ports::MediaAnalyzer;
use goviral_vision::FaceDetector;
use serde_json::{Value, json};

use crate::speech::Heard;
use crate::speech::{self, Speech};
use crate::{MediaError, Tools};

/// The largest picture analysed, on its longer side (4K is 3840).
pub const MAX_SIDE_PX: u32 = 4096;

/// Probe, signals and speech on the installed tools, refusing files over `max_seconds` or
/// larger than 4096 px before decoding them (so such a file costs one probe, not a decode).
pub struct MediaAnalysis {
    tools: Tools,
    max_seconds: f64,
    /// The speech model, or why there is none.
    speech: Result<Arc<Speech>, String>,
    /// The face detector; None where it is not installed (faces are then not looked for).
    faces: Option<Arc<FaceDetector>>,
    /// Analyses at once: each keeps two cores busy and holds a decoder's memory, so more
    /// would only thrash; the others wait their turn.
    at_once: tokio::sync::Semaphore,
}

impl MediaAnalysis {
    pub const DEFAULT_MAX_SECONDS: f64 = 180.0;

    /// On the Debian tools found on `PATH`; each run may take `timeout`. `speech` is the
    /// model transcriptions run on, or why there is none; `faces` the face detector, if any
    /// (the rest is measured regardless).
    pub fn on_path(
        timeout: Duration,
        max_seconds: f64,
        speech: Result<Arc<Speech>, String>,
        faces: Option<Arc<FaceDetector>>,
    ) -> Result<MediaAnalysis, MediaError> {
        let at_once = tokio::sync::Semaphore::new(analyses_at_once());
        Ok(MediaAnalysis { tools: Tools::on_path(timeout)?, max_seconds, speech, faces, at_once })
    }

    /// The transcript, or why there is none (`Err((engine, reason))`).
    async fn transcribe(&self, file: &Path, has_audio: bool) -> Result<(Heard, f64), (&'static str, String)> {
        if !has_audio {
            return Err((speech::ENGINE, "the video has no sound track".into()));
        }
        let model = self.speech.as_ref().map_err(|why| ("unavailable", why.clone()))?;
        let pcm = self.tools.pcm_16k(file, self.max_seconds).await.map_err(|e| ("unavailable", e.to_string()))?;
        let duration = pcm.len() as f64 / 16_000.0;
        match model.transcribe(pcm).await {
            Ok(t) => Ok((t, duration)),
            Err(e) => {
                tracing::warn!(error = %e, "transcription failed; the video is measured without its speech");
                Err(("unavailable", e))
            }
        }
    }
}

/// How many videos are analysed at once here: each keeps two cores busy.
pub fn analyses_at_once() -> usize {
    (std::thread::available_parallelism().map_or(1, |n| n.get()) / 2).max(1)
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
    async fn frames(&self, file: &Path, times_s: &[f64], dir: &Path) -> domain::Result<Vec<(f64, std::path::PathBuf)>> {
        self.tools.frames(file, times_s, dir).await.map_err(domain_error)
    }

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
        let _turn = self.at_once.acquire().await.map_err(|_| domain::Error::Unavailable("media analysis is shutting down".into()))?;
        // The signal pass, the transcription and the frames (text, faces) run side by side:
        // each is bound by a different tool, and together they keep both cores busy.
        let (signals, heard, look) = tokio::join!(
            self.tools.signals(file, &probe),
            self.transcribe(file, probe.has_audio),
            self.tools.look(file, &probe, self.faces.clone(), HOOK_SECS),
        );
        let s = signals.map_err(domain_error)?;
        // On-screen text and faces are advice and context: failing to read them does not
        // fail the job (they are then null, as where their tools are not installed).
        let (screen, faces) = match look {
            Ok(look) => (look.screen_text, look.faces),
            Err(e) => {
                tracing::warn!(error = %e, "the sampled frames could not be read");
                (None, None)
            }
        };
        let (speech, transcript) = match heard {
            Ok((heard, duration)) => {
                let onset = speech::speech_onset(&heard.transcript, &s.sound_onsets_s);
                (speech::report(&heard, duration, onset), Some(heard.transcript))
            }
            Err((engine, why)) => (speech::absent(engine, &why), None),
        };
        let hook_text: Vec<&str> = screen.iter().flatten().filter(|f| f.t_s < HOOK_SECS).map(|f| f.text.as_str()).collect();
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
            // null where tesseract is not installed; else what was read, frame by frame.
            "on_screen_text": screen,
            // null where the face detector is not installed.
            "faces": faces,
            "hook": {
                "seconds": HOOK_SECS,
                "motion": s.hook_motion,
                "cut_in_hook": s.first_cut_s.is_some_and(|t| t < HOOK_SECS),
                "speech_onset_s": speech_onset_s,
                "spoken": spoken_hook.join(" "),
                "on_screen_text": screen.as_ref().map(|_| hook_text.join(" ")),
                "face": faces.as_ref().map(|f| f["in_hook"].clone()),
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
