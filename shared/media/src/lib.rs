//! Media analysis with Debian's `ffmpeg` and `ffprobe`, spawned as child processes with
//! arguments (never a shell), each under a time limit and killed if dropped or late.
//! [`Tools::probe`] reads the container; [`Tools::signals`] gets every signal from one decode
//! pass: scene cuts, black and static shares, EBU R128 loudness, silences and speech onset,
//! and motion over the hook. [`speech`] transcribes the sound on-device (goviral-asr);
//! [`Tools::look`] reads burned-in text with tesseract and finds faces (goviral-vision) in
//! sampled frames.

mod analyzer;
pub mod faces;
mod look;
mod ocr;
mod signals;
pub mod speech;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;

pub use analyzer::{MAX_SIDE_PX, MediaAnalysis, NoMediaTools, analyses_at_once};
pub use look::Look;
pub use ocr::ScreenText;
pub use signals::Signals;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// ffmpeg or ffprobe is not installed where it was looked for.
    #[error("{0} is not installed (Debian package `ffmpeg`)")]
    Missing(&'static str),
    /// The tool ran past its time limit and was killed.
    #[error("{tool} took longer than {secs} s and was stopped")]
    TimedOut { tool: &'static str, secs: u64 },
    /// The file is not media ffmpeg can read, or has no stream we can use.
    #[error("{0}")]
    Unreadable(String),
    #[error("{tool} could not be run: {source}")]
    Io {
        tool: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, MediaError>;

/// Where the tools are, and how long one run of either may take.
#[derive(Debug, Clone)]
pub struct Tools {
    ffmpeg: PathBuf,
    ffprobe: PathBuf,
    /// On-screen text is read where tesseract is installed (Debian `tesseract-ocr`).
    tesseract: Option<PathBuf>,
    timeout: Duration,
}

/// What the container says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub duration_s: f64,
    /// As displayed: a phone video's rotation is applied (a 1280×720 stream rotated 90° is 720 wide).
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// Degrees, from the stream's display matrix (0 when none).
    pub rotation: i32,
    pub has_video: bool,
    pub has_audio: bool,
    pub format: String,
}

impl Tools {
    /// The Debian binaries on `PATH`, with a time limit per run.
    pub fn on_path(timeout: Duration) -> Result<Tools> {
        Ok(Tools { ffmpeg: find("ffmpeg")?, ffprobe: find("ffprobe")?, tesseract: find("tesseract").ok(), timeout })
    }

    pub async fn probe(&self, file: &Path) -> Result<Probe> {
        let args: Vec<std::ffi::OsString> = vec![
            "-v".into(),
            "error".into(),
            "-show_entries".into(),
            "format=duration,format_name:stream=codec_type,width,height,avg_frame_rate:stream_side_data=rotation".into(),
            "-of".into(),
            "json".into(),
            file.into(),
        ];
        let out = self.run("ffprobe", &self.ffprobe, &args).await?;
        parse_probe(&out)
    }

    /// Runs a tool to completion; stdout on success, the tool's own complaint otherwise.
    async fn run(&self, tool: &'static str, program: &Path, args: &[std::ffi::OsString]) -> Result<Vec<u8>> {
        let child = tokio::process::Command::new(program)
            .args(args)
            // One thread each (tesseract would start one per core): runs are parallel already.
            .env("OMP_THREAD_LIMIT", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| MediaError::Io { tool, source })?;
        let secs = self.timeout.as_secs();
        let out = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| MediaError::TimedOut { tool, secs })?
            .map_err(|source| MediaError::Io { tool, source })?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let first = said.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no message");
            return Err(MediaError::Unreadable(format!("{tool} could not read the file: {}", first.chars().take(300).collect::<String>())));
        }
        Ok(out.stdout)
    }
}

impl Tools {
    /// The first audio stream as 16 kHz mono samples in −1…1 (what speech recognition reads),
    /// at most `max_seconds` of it.
    pub async fn pcm_16k(&self, file: &Path, max_seconds: f64) -> Result<Vec<f32>> {
        let mut args = input_args(file);
        args.extend([
            "-map".into(),
            "0:a:0".into(),
            "-t".into(),
            format!("{max_seconds}").into(),
            "-ac".into(),
            "1".into(),
            "-ar".into(),
            "16000".into(),
            "-f".into(),
            "f32le".into(),
            "-".into(),
        ]);
        let raw = self.run("ffmpeg", &self.ffmpeg, &args).await?;
        Ok(raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

impl Tools {
    /// One JPEG per time (360 px wide, fast seek), as `frame-NN.jpg` in `dir`.
    pub async fn frames(&self, file: &Path, times_s: &[f64], dir: &Path) -> Result<Vec<(f64, PathBuf)>> {
        let mut out = Vec::new();
        for (i, t) in times_s.iter().enumerate() {
            let dest = dir.join(format!("frame-{i:02}.jpg"));
            let args: Vec<std::ffi::OsString> = vec![
                "-v".into(),
                "error".into(),
                "-nostdin".into(),
                "-ss".into(),
                format!("{t:.3}").into(),
                "-i".into(),
                file.into(),
                "-frames:v".into(),
                "1".into(),
                "-vf".into(),
                "scale=360:-2".into(),
                "-q:v".into(),
                "5".into(),
                "-y".into(),
                dest.clone().into(),
            ];
            self.run("ffmpeg", &self.ffmpeg, &args).await?;
            if dest.is_file() {
                out.push((*t, dest));
            }
        }
        Ok(out)
    }
}

/// ffmpeg's opening arguments for reading `file`: errors only, never stdin.
pub(crate) fn input_args(file: &Path) -> Vec<std::ffi::OsString> {
    vec!["-v".into(), "error".into(), "-nostdin".into(), "-i".into(), file.into()]
}

fn find(name: &'static str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file()).ok_or(MediaError::Missing(name))
}

fn parse_probe(json: &[u8]) -> Result<Probe> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| MediaError::Unreadable(format!("ffprobe answered oddly: {e}")))?;
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams.iter().find(|s| s["codec_type"] == "video");
    let has_audio = streams.iter().any(|s| s["codec_type"] == "audio");
    let duration_s = v["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok()).unwrap_or(0.0);
    let (mut width, mut height, mut fps, mut rotation) = (0u32, 0u32, 0.0, 0i32);
    if let Some(s) = video {
        width = s["width"].as_u64().unwrap_or(0) as u32;
        height = s["height"].as_u64().unwrap_or(0) as u32;
        fps = rate(s["avg_frame_rate"].as_str().unwrap_or("0/0"));
        rotation = s["side_data_list"].as_array().and_then(|l| l.iter().find_map(|d| d["rotation"].as_i64())).unwrap_or(0) as i32;
        if rotation.rem_euclid(180) == 90 {
            std::mem::swap(&mut width, &mut height);
        }
    }
    if video.is_none() && !has_audio {
        return Err(MediaError::Unreadable("the file has neither a video nor an audio stream".into()));
    }
    Ok(Probe {
        duration_s,
        width,
        height,
        fps,
        rotation,
        has_video: video.is_some(),
        has_audio,
        format: v["format"]["format_name"].as_str().unwrap_or_default().to_string(),
    })
}

/// `30000/1001` → 29.97.
fn rate(text: &str) -> f64 {
    match text.split_once('/') {
        Some((n, d)) => match (n.parse::<f64>(), d.parse::<f64>()) {
            (Ok(n), Ok(d)) if d > 0.0 => n / d,
            _ => 0.0,
        },
        None => text.parse().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_phone_video_is_as_tall_as_it_is_shown() {
        let json = br#"{"streams":[{"codec_type":"video","width":1280,"height":720,"avg_frame_rate":"30000/1001",
            "side_data_list":[{"rotation":-90}]},{"codec_type":"audio"}],"format":{"duration":"12.5","format_name":"mov,mp4"}}"#;
        let p = parse_probe(json).unwrap();
        assert_eq!((p.width, p.height, p.rotation, p.has_audio), (720, 1280, -90, true));
        assert!((p.fps - 29.97).abs() < 0.01);
        assert!(parse_probe(br#"{"streams":[],"format":{"duration":"1"}}"#).is_err());
    }
}
