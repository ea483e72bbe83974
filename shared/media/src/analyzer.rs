//! The domain's `MediaAnalyzer` port on ffmpeg: the `metrics.media` document of a video.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use domain::ports::MediaAnalyzer;
use serde_json::{Value, json};

use crate::{MediaError, Tools};

/// Probe and signals on the installed tools, refusing files over `max_seconds` before decoding
/// them (so a long file costs one probe, not a full decode).
pub struct MediaAnalysis {
    tools: Tools,
    max_seconds: f64,
}

impl MediaAnalysis {
    pub const DEFAULT_MAX_SECONDS: f64 = 180.0;

    /// On the Debian tools found on `PATH`; each run may take `timeout`.
    pub fn on_path(timeout: Duration, max_seconds: f64) -> Result<MediaAnalysis, MediaError> {
        Ok(MediaAnalysis { tools: Tools::on_path(timeout)?, max_seconds })
    }
}

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
        let s = self.tools.signals(file, &probe).await.map_err(domain_error)?;
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
            },
            "hook": {"seconds": 3, "motion": s.hook_motion},
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
