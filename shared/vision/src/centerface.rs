//! CenterFace: a heat map of face centres at a quarter of the picture's resolution, with
//! each centre's box size (log scale) and sub-cell offset; boxes over the threshold are kept
//! after non-maximum suppression.

use std::path::Path;

use crate::VisionError;
use crate::net::{Map, Net};

/// A face centre's heat a detection needs. Measured at the analyzer's frame sizes: real
/// faces (the astronaut and cameraman portraits, 128–384 px frames) score 0.78–0.93; pictures
/// without people (test patterns, food, a cat, a horse) stay below 0.1, except a Mandelbrot
/// render at 0.53, which the usual 0.5 would have called a face.
pub const THRESHOLD: f32 = 0.6;
/// Boxes overlapping a stronger one by this much (intersection over union) are the same face.
const OVERLAP: f32 = 0.3;
/// The largest side accepted; detection runs on small frames (the analyzer uses 384 px).
pub const MAX_SIDE: usize = 2048;
/// The heat map's cell is 4 px.
const STRIDE: f32 = 4.0;

/// A face box in the picture's pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    pub score: f32,
}

impl Face {
    fn area(&self) -> f32 {
        self.width * self.height
    }

    fn overlap(&self, other: &Face) -> f32 {
        let w = (self.x + self.width).min(other.x + other.width) - self.x.max(other.x);
        let h = (self.y + self.height).min(other.y + other.height) - self.y.max(other.y);
        let inter = w.max(0.0) * h.max(0.0);
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

pub struct FaceDetector {
    net: Net,
}

impl FaceDetector {
    /// Loads `centerface.onnx` and checks, on a blank picture, that it yields the four maps
    /// CenterFace does (heat 1, scale 2, offset 2, landmarks 10 channels).
    pub fn load(path: &Path) -> Result<FaceDetector, VisionError> {
        let bytes = std::fs::read(path).map_err(|e| VisionError::Model(format!("{}: {e}", path.display())))?;
        let detector = FaceDetector { net: Net::new(&crate::onnx::parse(&bytes)?)? };
        let outputs = detector.net.run(Map { c: 3, h: 32, w: 32, data: vec![0.0; 3 * 32 * 32] })?;
        let channels: Vec<usize> = outputs.iter().map(|m| m.c).collect();
        if channels != [1, 2, 2, 10] || outputs.iter().any(|m| (m.h, m.w) != (8, 8)) {
            return Err(VisionError::Model(format!("{} is not CenterFace (outputs of {channels:?} channels)", path.display())));
        }
        Ok(detector)
    }

    /// The faces in an RGB picture (`width`×`height`×3 bytes, both sides multiples of 32 and
    /// at most `MAX_SIDE`), strongest first.
    pub fn detect(&self, rgb: &[u8], width: usize, height: usize) -> Result<Vec<Face>, VisionError> {
        if width == 0 || height == 0 || !width.is_multiple_of(32) || !height.is_multiple_of(32) || width.max(height) > MAX_SIDE {
            return Err(VisionError::Shape(format!("{width}×{height}: sides must be multiples of 32, at most {MAX_SIDE}")));
        }
        if rgb.len() != width * height * 3 {
            return Err(VisionError::Shape(format!("{} bytes for a {width}×{height} RGB picture", rgb.len())));
        }
        // Planar RGB, 0–255: the model's training input, with no normalisation.
        let plane = width * height;
        let mut data = vec![0.0f32; 3 * plane];
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * plane + i] = f32::from(px[c]);
            }
        }
        let out = self.net.run(Map { c: 3, h: height, w: width, data })?;
        Ok(decode(&out[0], &out[1], &out[2], width as f32, height as f32))
    }
}

fn decode(heat: &Map, scale: &Map, offset: &Map, width: f32, height: f32) -> Vec<Face> {
    let mut found = Vec::new();
    for i in 0..heat.h {
        for j in 0..heat.w {
            let at = i * heat.w + j;
            let score = heat.data[at];
            if score <= THRESHOLD {
                continue;
            }
            let (h, w) = (scale.channel(0)[at].exp() * STRIDE, scale.channel(1)[at].exp() * STRIDE);
            let (dy, dx) = (offset.channel(0)[at], offset.channel(1)[at]);
            let x = ((j as f32 + dx + 0.5) * STRIDE - w / 2.0).clamp(0.0, width);
            let y = ((i as f32 + dy + 0.5) * STRIDE - h / 2.0).clamp(0.0, height);
            found.push(Face { x, y, width: w.min(width - x), height: h.min(height - y), score });
        }
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::new();
    for face in found {
        if kept.iter().all(|k| k.overlap(&face) < OVERLAP) {
            kept.push(face);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(cells: &[(usize, usize, f32)]) -> (Map, Map, Map) {
        let (h, w) = (8, 8);
        let mut heat = Map { c: 1, h, w, data: vec![0.0; h * w] };
        for (i, j, s) in cells {
            heat.data[i * w + j] = *s;
        }
        // Boxes of exp(2)·4 ≈ 29.6 px, centred on their cells.
        let scale = Map { c: 2, h, w, data: vec![2.0; 2 * h * w] };
        let offset = Map { c: 2, h, w, data: vec![0.0; 2 * h * w] };
        (heat, scale, offset)
    }

    #[test]
    fn neighbouring_centres_of_one_face_are_one_detection() {
        let (heat, scale, offset) = maps(&[(4, 4, 0.9), (4, 5, 0.7), (1, 1, 0.4)]);
        let faces = decode(&heat, &scale, &offset, 32.0, 32.0);
        assert_eq!(faces.len(), 1, "{faces:?}");
        assert_eq!(faces[0].score, 0.9);
        // Centre at (4.5 cells × 4 px) = 18 px; clipped to the picture.
        assert!((faces[0].x - (18.0 - 2f32.exp() * 2.0)).abs() < 1e-4);
        assert!(faces[0].x + faces[0].width <= 32.0);
    }

    #[test]
    fn distant_faces_are_each_kept_strongest_first() {
        let (heat, scale, offset) = maps(&[(1, 1, 0.7), (6, 6, 0.8)]);
        let mut scale = scale;
        scale.data.iter_mut().for_each(|v| *v = 0.5); // 6.6 px boxes: no overlap
        let faces = decode(&heat, &scale, &offset, 32.0, 32.0);
        assert_eq!(faces.iter().map(|f| f.score).collect::<Vec<_>>(), [0.8, 0.7]);
    }
}
