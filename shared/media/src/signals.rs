//! Every signal from one decode pass: the video branch (scaled down to 320 px wide, which is
//! plenty for these measures) runs scdet, blackdetect and freezedetect; the audio branch runs
//! ebur128 and silencedetect; both print their per-frame metadata to files this reads back.

use std::path::Path;

use serde::Serialize;

use crate::{MediaError, Probe, Result, Tools};

/// The first seconds a viewer decides in.
const HOOK_SECS: f64 = 3.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signals {
    /// Hard cuts, seconds from the start.
    pub cuts_s: Vec<f64>,
    pub cuts_per_minute: f64,
    pub first_cut_s: Option<f64>,
    /// Share of the duration that is black.
    pub black_ratio: f64,
    /// Share of the duration in which the picture does not change (static shots, stills).
    pub static_ratio: f64,
    /// Mean absolute difference between frames over the hook (0 = nothing moves).
    pub hook_motion: Option<f64>,
    /// EBU R128 integrated loudness; None without audio or when it is all silence.
    pub loudness_lufs: Option<f64>,
    pub loudness_range_lu: Option<f64>,
    pub true_peak_dbtp: Option<f64>,
    /// Share of the duration below −35 dBFS for at least 0.4 s.
    pub silence_ratio: Option<f64>,
    /// When the first sound above the silence threshold starts (None: silent throughout).
    pub sound_onset_s: Option<f64>,
    /// Every time sound starts: at 0 unless the file opens silent, then where each silence ends.
    pub sound_onsets_s: Vec<f64>,
}

impl Tools {
    /// Decodes `file` once and measures everything; `probe` decides which branches exist.
    pub async fn signals(&self, file: &Path, probe: &Probe) -> Result<Signals> {
        let dir = tempfile::tempdir().map_err(|source| MediaError::Io { tool: "ffmpeg", source })?;
        let (video_out, audio_out) = (dir.path().join("video.txt"), dir.path().join("audio.txt"));
        let mut graph = Vec::new();
        let mut maps: Vec<std::ffi::OsString> = Vec::new();
        if probe.has_video {
            graph.push(format!(
                "[0:v]scale=320:-2,scdet=threshold=10,blackdetect=d=0.5:pix_th=0.10,freezedetect=n=-60dB:d=2,metadata=mode=print:file={}[vo]",
                filter_path(&video_out)
            ));
            maps.extend(["-map".into(), "[vo]".into(), "-f".into(), "null".into(), "-".into()]);
        }
        if probe.has_audio {
            graph.push(format!(
                "[0:a]ebur128=metadata=1:peak=true,silencedetect=noise=-35dB:d=0.4,ametadata=mode=print:file={}[ao]",
                filter_path(&audio_out)
            ));
            maps.extend(["-map".into(), "[ao]".into(), "-f".into(), "null".into(), "-".into()]);
        }
        let mut args = crate::input_args(file);
        args.extend(["-filter_complex".into(), graph.join(";").into()]);
        args.extend(maps);
        self.run("ffmpeg", &self.ffmpeg, &args).await?;
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        Ok(measure(probe, &frames(&read(&video_out)), &frames(&read(&audio_out))))
    }
}

/// A path inside a filter graph: the characters the graph parser treats specially, escaped.
fn filter_path(p: &Path) -> String {
    let mut out = String::new();
    for c in p.display().to_string().chars() {
        if matches!(c, '\\' | ':' | '\'' | ',' | ';' | '[' | ']' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One frame of `metadata=mode=print` output: its time and its `lavfi.*` values.
struct Frame {
    t: f64,
    values: Vec<(String, String)>,
}

fn frames(text: &str) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::new();
    for line in text.lines() {
        if line.starts_with("frame:") {
            let t = line.split_whitespace().find_map(|w| w.strip_prefix("pts_time:")).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            out.push(Frame { t, values: Vec::new() });
        } else if let (Some(frame), Some((k, v))) = (out.last_mut(), line.split_once('=')) {
            frame.values.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn value(frame: &Frame, key: &str) -> Option<f64> {
    frame.values.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.parse().ok())
}

/// Total length of the `start`…`end` intervals the frames mark; one still open at the end of
/// the file is closed at the duration.
fn covered(frames: &[Frame], start: &str, end: &str, duration: f64) -> f64 {
    let (mut total, mut open) = (0.0, None);
    for f in frames {
        if let Some(s) = value(f, start) {
            open = Some(s);
        }
        if let (Some(e), Some(s)) = (value(f, end), open) {
            total += (e - s).max(0.0);
            open = None;
        }
    }
    if let Some(s) = open {
        total += (duration - s).max(0.0);
    }
    total
}

fn measure(probe: &Probe, video: &[Frame], audio: &[Frame]) -> Signals {
    let duration = probe.duration_s.max(f64::EPSILON);
    let ratio = |secs: f64| ((secs / duration).clamp(0.0, 1.0) * 1000.0).round() / 1000.0;
    let cuts_s: Vec<f64> = video.iter().filter_map(|f| value(f, "lavfi.scd.time")).map(|t| (t * 100.0).round() / 100.0).collect();
    let hook: Vec<f64> = video.iter().filter(|f| f.t < HOOK_SECS).filter_map(|f| value(f, "lavfi.scd.mafd")).collect();
    let last = audio.last();
    // ebur128 reports −70 LUFS (its gate) for silence: there is no loudness to speak of.
    let loudness_lufs = last.and_then(|f| value(f, "lavfi.r128.I")).filter(|i| i.is_finite() && *i > -70.0);
    let peak = audio.iter().filter_map(|f| value(f, "lavfi.r128.true_peak")).fold(None::<f64>, |m, p| Some(m.map_or(p, |m| m.max(p))));
    let (silence_ratio, sound_onset_s) = if probe.has_audio {
        let silent = covered(audio, "lavfi.silence_start", "lavfi.silence_end", duration);
        // Sound starts where a silence that began at 0 ends (or at 0 when none did).
        let mut onset = Some(0.0);
        let mut open_from_zero = false;
        for f in audio {
            if value(f, "lavfi.silence_start").is_some_and(|s| s <= 0.05) {
                open_from_zero = true;
                onset = None;
            }
            if open_from_zero {
                if let Some(e) = value(f, "lavfi.silence_end") {
                    onset = Some((e * 100.0).round() / 100.0);
                    break;
                }
            }
        }
        (Some(ratio(silent)), onset)
    } else {
        (None, None)
    };
    let mut sound_onsets_s: Vec<f64> = Vec::new();
    if probe.has_audio {
        let opens_silent = audio.iter().find_map(|f| value(f, "lavfi.silence_start")).is_some_and(|s| s <= 0.05);
        if !opens_silent {
            sound_onsets_s.push(0.0);
        }
        sound_onsets_s.extend(audio.iter().filter_map(|f| value(f, "lavfi.silence_end")).map(|e| (e * 100.0).round() / 100.0));
    }
    Signals {
        cuts_per_minute: ((cuts_s.len() as f64 / (duration / 60.0)) * 10.0).round() / 10.0,
        first_cut_s: cuts_s.first().copied(),
        cuts_s,
        black_ratio: ratio(covered(video, "lavfi.black_start", "lavfi.black_end", duration)),
        static_ratio: ratio(covered(video, "lavfi.freezedetect.freeze_start", "lavfi.freezedetect.freeze_end", duration)),
        hook_motion: (!hook.is_empty()).then(|| (hook.iter().sum::<f64>() / hook.len() as f64 * 1000.0).round() / 1000.0),
        loudness_lufs: loudness_lufs.map(|i| (i * 10.0).round() / 10.0),
        loudness_range_lu: last.and_then(|f| value(f, "lavfi.r128.LRA")).filter(|_| loudness_lufs.is_some()),
        // ebur128 gives the true peak as a linear amplitude.
        true_peak_dbtp: peak.filter(|p| *p > 0.0).map(|p| (20.0 * p.log10() * 10.0).round() / 10.0),
        silence_ratio,
        sound_onset_s,
        sound_onsets_s,
    }
}
