//! What the frames show: a few frames of the hook (0.5, 1.5, 2.5 s) and one every 5 s after
//! it, taken in one ffmpeg pass that makes, for each, what each reader needs: the two
//! binarisations tesseract reads (`ocr`) and a small RGB picture for the face detector
//! (`faces`). A reader that is not installed is left out of the pass.

use std::path::Path;
use std::sync::Arc;

use goviral_vision::FaceDetector;
use serde_json::Value;

use crate::ocr::{ScreenText, readings_graph};
use crate::{MediaError, Probe, Result, Tools, faces};

/// Frames after the hook are this many seconds apart.
const EVERY_S: f64 = 5.0;

/// What was read and seen; None where the reader is not installed.
pub struct Look {
    pub screen_text: Option<Vec<ScreenText>>,
    pub faces: Option<Value>,
}

/// One reader's part of the frame pass: its filters from `input`, and the files they write.
struct Branch {
    input: &'static str,
    graph: String,
    outputs: Vec<Output>,
}

struct Output {
    label: &'static str,
    /// File name pattern in the pass's directory.
    files: &'static str,
    /// Output options (format, codec).
    format: &'static [&'static str],
}

/// The times frames are looked at, for a video of `duration` seconds.
fn sample_times(duration: f64) -> Vec<f64> {
    let mut times: Vec<f64> = [0.5, 1.5, 2.5].into_iter().filter(|t| *t < duration).collect();
    let mut t = EVERY_S;
    while t < duration {
        times.push(t);
        t += EVERY_S;
    }
    times
}

impl Tools {
    /// Reads the on-screen text and finds the faces of `file`, from one decode.
    pub async fn look(&self, file: &Path, probe: &Probe, detector: Option<Arc<FaceDetector>>, hook_s: f64) -> Result<Look> {
        let times = sample_times(probe.duration_s);
        let (text, seeing) = (self.reads_text(), detector.is_some());
        if times.is_empty() || (!text && !seeing) {
            let none = |on: bool| on.then(Vec::new);
            return Ok(Look { screen_text: none(text), faces: seeing.then(|| faces::report(&[], hook_s)) });
        }
        let dir = tempfile::tempdir().map_err(|source| MediaError::Io { tool: "ffmpeg", source })?;
        // At 2 frames a second, frame n is at n/2 s: pick the sample times' frames.
        let picks: Vec<String> = times.iter().map(|t| format!("eq(n\\,{})", (t * 2.0).round() as u64)).collect();
        let (fw, fh) = faces::frame_size(probe.width, probe.height);
        // One decode, split into a branch per reader that is installed.
        let mut branches = Vec::new();
        if text {
            let pages = vec![
                Output { label: "[ink]", files: "f%03d.png", format: &[] },
                Output { label: "[plain]", files: "g%03d.png", format: &[] },
            ];
            branches.push(Branch { input: "[txt]", graph: readings_graph("[txt]"), outputs: pages });
        }
        if seeing {
            let raw = Output { label: "[rgb]", files: "r%03d.rgb", format: &["-f", "image2", "-c:v", "rawvideo"] };
            branches.push(Branch { input: "[face]", graph: format!("[face]scale={fw}:{fh},format=rgb24[rgb]"), outputs: vec![raw] });
        }
        let inputs: String = branches.iter().map(|b| b.input).collect();
        let graphs: Vec<&str> = branches.iter().map(|b| b.graph.as_str()).collect();
        let graph = format!("[0:v:0]fps=2,select='{}',split={}{inputs};{}", picks.join("+"), branches.len(), graphs.join(";"));
        let mut args = crate::input_args(file);
        args.extend(["-filter_complex".into(), graph.into()]);
        for out in branches.iter().flat_map(|b| &b.outputs) {
            args.extend(["-map".into(), out.label.into(), "-fps_mode".into(), "passthrough".into()]);
            args.extend(out.format.iter().map(Into::into));
            args.push(dir.path().join(out.files).into());
        }
        self.run("ffmpeg", &self.ffmpeg, &args).await?;

        // Frames past the end of the stream were never written.
        let taken: Vec<(f64, usize)> = times.iter().enumerate().map(|(i, t)| (*t, i + 1)).collect();
        let pages: Vec<_> = taken
            .iter()
            .map(|(t, n)| (*t, dir.path().join(format!("f{n:03}.png")), dir.path().join(format!("g{n:03}.png"))))
            .filter(|(_, ink, plain)| ink.is_file() && plain.is_file())
            .collect();
        let pictures: Vec<_> =
            taken.iter().map(|(t, n)| (*t, dir.path().join(format!("r{n:03}.rgb")))).filter(|(_, p)| p.is_file()).collect();
        let seen = async {
            let Some(detector) = detector else { return Ok(None) };
            let found = tokio::task::spawn_blocking(move || faces::find(&detector, &pictures, fw, fh))
                .await
                .map_err(|e| MediaError::Unreadable(format!("face detection stopped: {e}")))??;
            Ok::<_, MediaError>(Some(faces::report(&found, hook_s)))
        };
        // Text and faces at once: tesseract in its own processes, the detector on a thread.
        let (screen_text, faces) = tokio::join!(self.read_text(&pages), seen);
        Ok(Look { screen_text: screen_text?, faces: faces? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_is_looked_at_closely_and_the_rest_sparsely() {
        assert_eq!(sample_times(2.0), [0.5, 1.5]);
        assert_eq!(sample_times(12.0), [0.5, 1.5, 2.5, 5.0, 10.0]);
    }
}
