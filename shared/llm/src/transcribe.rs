//! Speech to text by OpenAI (`audio.transcriptions`, verbose JSON with segment timestamps),
//! under the same timeout, retries with jittered backoff and circuit breaker as the rewrites.
//! The caller falls back to the on-device model when this fails.

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::audio::{AudioInput, AudioResponseFormat, CreateTranscriptionRequest, TimestampGranularity};

use crate::openai::{Breaker, LlmError, OpenAiSettings, classify, client, with_retries};

/// The model OpenAI transcribes with.
pub const TRANSCRIPTION_MODEL: &str = "whisper-1";

#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    pub language: String,
    /// (start s, end s, text) per segment.
    pub segments: Vec<(f64, f64, String)>,
    pub attempts: u32,
}

pub struct OpenAiTranscriber {
    client: Client<OpenAIConfig>,
    settings: OpenAiSettings,
    breaker: Breaker,
}

impl OpenAiTranscriber {
    /// Uses `settings` with a longer per-attempt timeout: audio takes longer than text.
    pub fn new(mut settings: OpenAiSettings) -> OpenAiTranscriber {
        settings.timeout = settings.timeout.max(std::time::Duration::from_secs(60));
        OpenAiTranscriber { client: client(&settings), breaker: Breaker::new(&settings), settings }
    }

    /// Transcribes a WAV file's bytes.
    pub async fn transcribe(&self, wav: Vec<u8>) -> Result<Heard, LlmError> {
        if !self.breaker.admit() {
            return Err(LlmError::CircuitOpen);
        }
        let request = CreateTranscriptionRequest {
            file: AudioInput::from_vec_u8("audio.wav".into(), wav),
            model: TRANSCRIPTION_MODEL.into(),
            response_format: Some(AudioResponseFormat::VerboseJson),
            timestamp_granularities: Some(vec![TimestampGranularity::Segment]),
            temperature: Some(0.0),
            ..Default::default()
        };
        let (result, attempts) = with_retries(&self.settings, || async {
            let response = self.client.audio().transcription().create_verbose_json(request.clone()).await.map_err(classify)?;
            let segments: Vec<(f64, f64, String)> = match response.segments {
                Some(segments) => segments.into_iter().map(|s| (s.start as f64, s.end as f64, s.text.trim().to_string())).collect(),
                None if !response.text.trim().is_empty() => vec![(0.0, response.duration as f64, response.text.trim().to_string())],
                None => Vec::new(),
            };
            if segments.iter().any(|(start, end, _)| !(start.is_finite() && end.is_finite() && start <= end)) {
                return Err(LlmError::Malformed("a segment's times are not in order".into()));
            }
            Ok(Heard { language: response.language, segments, attempts: 0 })
        })
        .await;
        self.breaker.record(result.is_ok());
        result.map(|h| Heard { attempts, ..h })
    }
}

/// 16 kHz mono samples in −1…1 as a 16-bit PCM WAV file (what the API takes; 180 s is 5.8 MB,
/// under its 25 MB limit).
pub fn wav_16k(pcm: &[f32]) -> Vec<u8> {
    let data_len = (pcm.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&16_000u32.to_le_bytes());
    out.extend_from_slice(&32_000u32.to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        out.extend_from_slice(&((s.clamp(-1.0, 1.0) * i16::MAX as f32) as i16).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_become_a_wav_file() {
        let wav = wav_16k(&[0.0, 1.0, -1.0, 2.0]);
        assert_eq!(wav.len(), 44 + 8);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(&wav[8..16], b"WAVEfmt ");
        assert_eq!(i16::from_le_bytes([wav[46], wav[47]]), i16::MAX);
        assert_eq!(i16::from_le_bytes([wav[50], wav[51]]), i16::MAX, "clamped");
    }
}
