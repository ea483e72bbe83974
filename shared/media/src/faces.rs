//! Faces in the sampled frames (goviral-vision's CenterFace): whether the hook shows one,
//! when the first appears, how much of the video shows one, and how big it is.

use std::path::PathBuf;

use goviral_vision::{Face, FaceDetector};
use serde_json::{Value, json};

use crate::{MediaError, Result};

pub const ENGINE: &str = "centerface";

/// The detector's frame: the long side 384 px, both sides multiples of 32 (the network's
/// stride), keeping the shape of the picture as shown. A face a tenth of a landscape frame's
/// height is still ~22 px here, within what the model finds; a larger frame would cost more
/// than the rest of the frame pass (0.07 s a frame here, 0.12 s at 576 px).
pub fn frame_size(width: u32, height: u32) -> (usize, usize) {
    const LONG: f64 = 384.0;
    let (w, h) = (f64::from(width.max(1)), f64::from(height.max(1)));
    let short = |s: f64, l: f64| (((s * LONG / l) / 32.0).round() as usize).max(1) * 32;
    if w >= h { (LONG as usize, short(h, w)) } else { (short(w, h), LONG as usize) }
}

/// The faces of each picture (`fw`×`fh` raw RGB files), as shares of the frame.
pub fn find(detector: &FaceDetector, pictures: &[(f64, PathBuf)], fw: usize, fh: usize) -> Result<Vec<(f64, Vec<Face>)>> {
    let mut out = Vec::with_capacity(pictures.len());
    for (t, path) in pictures {
        let rgb = std::fs::read(path).map_err(|source| MediaError::Io { tool: "ffmpeg", source })?;
        let faces = detector.detect(&rgb, fw, fh).map_err(|e| MediaError::Unreadable(e.to_string()))?;
        let share =
            |f: Face| Face { x: f.x / fw as f32, y: f.y / fh as f32, width: f.width / fw as f32, height: f.height / fh as f32, ..f };
        out.push((*t, faces.into_iter().map(share).collect()));
    }
    Ok(out)
}

fn round(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).round() / p
}

/// `metrics.media.faces`, from each sampled frame's faces (boxes as shares of the frame).
pub fn report(frames: &[(f64, Vec<Face>)], hook_s: f64) -> Value {
    let with_face = frames.iter().filter(|(_, f)| !f.is_empty()).count();
    let hook: Vec<&(f64, Vec<Face>)> = frames.iter().filter(|(t, _)| *t < hook_s).collect();
    let largest_in_hook = hook
        .iter()
        .flat_map(|(_, f)| f)
        .map(|f| f64::from(f.width * f.height))
        .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a))));
    json!({
        "in_hook": hook.iter().any(|(_, f)| !f.is_empty()),
        "first_face_s": frames.iter().find(|(_, f)| !f.is_empty()).map(|(t, _)| *t),
        "share_of_frames": if frames.is_empty() { 0.0 } else { round(with_face as f64 / frames.len() as f64, 2) },
        "largest_in_hook": largest_in_hook.map(|a| round(a, 3)),
        "most_at_once": frames.iter().map(|(_, f)| f.len()).max().unwrap_or(0),
        "frames_checked": frames.len(),
        "engine": ENGINE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_keep_their_shape_on_the_network_grid() {
        assert_eq!(frame_size(1280, 720), (384, 224));
        assert_eq!(frame_size(1080, 1920), (224, 384));
        assert_eq!(frame_size(512, 512), (384, 384));
        assert_eq!(frame_size(4000, 10), (384, 32));
    }

    #[test]
    fn the_report_says_when_a_face_appears_and_how_big() {
        let face = |side: f32| Face { x: 0.1, y: 0.1, width: side, height: side, score: 0.9 };
        let frames = vec![(0.5, vec![]), (1.5, vec![face(0.2)]), (2.5, vec![face(0.3), face(0.1)]), (5.0, vec![])];
        let r = report(&frames, 3.0);
        assert_eq!(r["in_hook"], true);
        assert_eq!(r["first_face_s"], 1.5);
        assert_eq!(r["share_of_frames"], 0.5);
        assert_eq!(r["largest_in_hook"], 0.09);
        assert_eq!(r["most_at_once"], 2);
        let none = report(&[(0.5, vec![]), (5.0, vec![face(0.2)])], 3.0);
        assert_eq!((none["in_hook"].as_bool(), none["first_face_s"].as_f64()), (Some(false), Some(5.0)));
        assert_eq!(report(&[], 3.0)["largest_in_hook"], Value::Null);
    }
}
