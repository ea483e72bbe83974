//! What was said: OpenAI's transcription when it is configured, else (and whenever it fails)
//! the on-device Whisper model over the video's sound, one on-device transcription at a time
//! per process (each uses every core; queued ones wait rather than thrash), and the measures
//! read from it: words, speaking rate and when speech starts.

use std::sync::Arc;

use goviral_asr::{Segment, Transcriber, Transcript};
use goviral_llm::OpenAiTranscriber;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

pub const ENGINE: &str = "whisper-tiny.en (on-device)";
pub const OPENAI_ENGINE: &str = "openai (whisper-1)";

/// The speech engines of a process.
pub struct Speech {
    on_device: Option<Arc<Transcriber>>,
    openai: Option<Arc<OpenAiTranscriber>>,
    one_at_a_time: Semaphore,
}

/// A transcript and who made it; `fallback` says why OpenAI's was not used when it was asked.
pub struct Heard {
    pub transcript: Transcript,
    pub engine: &'static str,
    pub fallback: Option<String>,
}

impl Speech {
    /// Either engine may be missing, not both.
    pub fn new(on_device: Option<Arc<Transcriber>>, openai: Option<Arc<OpenAiTranscriber>>) -> Result<Speech, String> {
        if on_device.is_none() && openai.is_none() {
            return Err("no speech engine".into());
        }
        Ok(Speech { on_device, openai, one_at_a_time: Semaphore::new(1) })
    }

    pub async fn transcribe(&self, pcm: Vec<f32>) -> Result<Heard, String> {
        let mut fallback = None;
        if let Some(openai) = &self.openai {
            match openai.transcribe(goviral_llm::transcribe::wav_16k(&pcm)).await {
                Ok(heard) => {
                    let segments = heard
                        .segments
                        .into_iter()
                        .filter(|(_, _, text)| !text.is_empty())
                        .map(|(start_s, end_s, text)| Segment { start_s, end_s, text, avg_logprob: 0.0 })
                        .collect();
                    let transcript = Transcript { segments, language: language_code(&heard.language) };
                    return Ok(Heard { transcript, engine: OPENAI_ENGINE, fallback: None });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "OpenAI transcription failed; transcribing on-device");
                    fallback = Some(format!("OpenAI transcription failed ({e}); transcribed on-device"));
                }
            }
        }
        let Some(model) = self.on_device.clone() else {
            return Err(fallback.unwrap_or_else(|| "no on-device speech model".into()));
        };
        let _permit = self.one_at_a_time.acquire().await.map_err(|_| "the speech model is shutting down".to_string())?;
        let transcript = tokio::task::spawn_blocking(move || model.transcribe(&pcm))
            .await
            .map_err(|e| format!("transcription stopped: {e}"))?
            .map_err(|e| e.to_string())?;
        Ok(Heard { transcript, engine: ENGINE, fallback })
    }
}

/// OpenAI names the language ("english"); the report uses ISO 639-1 codes like the model.
fn language_code(name: &str) -> String {
    const CODES: &[(&str, &str)] = &[
        ("english", "en"),
        ("spanish", "es"),
        ("french", "fr"),
        ("german", "de"),
        ("portuguese", "pt"),
        ("italian", "it"),
        ("dutch", "nl"),
        ("japanese", "ja"),
        ("korean", "ko"),
        ("chinese", "zh"),
        ("hindi", "hi"),
        ("arabic", "ar"),
        ("russian", "ru"),
    ];
    let lower = name.trim().to_lowercase();
    CODES.iter().find(|(n, _)| *n == lower).map_or(lower, |(_, code)| code.to_string())
}

/// Seconds spoken: the union of the segments, within the recording and from the onset on.
fn speaking_seconds(t: &Transcript, duration_s: f64, onset_s: Option<f64>) -> f64 {
    let from = onset_s.unwrap_or(0.0);
    let mut spans: Vec<(f64, f64)> = t.segments.iter().map(|s| (s.start_s.max(from).min(duration_s), s.end_s.min(duration_s))).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut total, mut reach) = (0.0, f64::NEG_INFINITY);
    for (start, end) in spans {
        let start = start.max(reach);
        if end > start {
            total += end - start;
        }
        reach = reach.max(end);
    }
    total
}

/// When speech starts. Whisper's own timestamps are coarse (often 0.0 for speech that starts
/// seconds later), so the time is a sound onset (where a silence ends): the one just before
/// the first words, or else the first inside the first segment; Whisper's time only when no
/// onset is near (music running straight into speech).
pub fn speech_onset(t: &Transcript, sound_onsets_s: &[f64]) -> Option<f64> {
    let first = t.segments.first()?;
    let before =
        sound_onsets_s.iter().copied().filter(|o| *o <= first.start_s + 0.5).fold(None::<f64>, |m, o| Some(m.map_or(o, |m| m.max(o))));
    if let Some(o) = before.filter(|o| first.start_s - o <= 1.0) {
        return Some(o);
    }
    let inside = sound_onsets_s
        .iter()
        .copied()
        .filter(|o| *o > first.start_s && *o < first.end_s)
        .fold(None::<f64>, |m, o| Some(m.map_or(o, |m| m.min(o))));
    Some(inside.unwrap_or(first.start_s))
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// The `speech` part of `metrics.media`; `onset_s` from [`speech_onset`].
pub fn report(heard: &Heard, duration_s: f64, onset_s: Option<f64>) -> Value {
    let t = &heard.transcript;
    let text = t.text();
    let words = text.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count();
    let spoken = speaking_seconds(t, duration_s, onset_s);
    json!({
        "engine": heard.engine,
        "fallback": heard.fallback,
        "language": t.language,
        "transcript": text,
        "segments": t.segments.iter().map(|s| json!({"start_s": round(s.start_s, 2), "end_s": round(s.end_s, 2), "text": s.text})).collect::<Vec<_>>(),
        "words": words,
        "speaking_s": round(spoken, 2),
        "words_per_minute": (spoken >= 1.0 && words > 0).then(|| round(words as f64 / (spoken / 60.0), 0)),
    })
}

/// The `speech` part when nothing could be heard or the model is not installed.
pub fn absent(engine: &str, reason: &str) -> Value {
    json!({"engine": engine, "fallback": null, "language": null, "transcript": "", "segments": [], "words": 0, "speaking_s": 0.0, "words_per_minute": null, "reason": reason})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcript(spans: &[(f64, f64, &str)]) -> Transcript {
        let segments = spans.iter().map(|(s, e, t)| Segment { start_s: *s, end_s: *e, text: t.to_string(), avg_logprob: -0.2 }).collect();
        Transcript { segments, language: "en".into() }
    }

    #[test]
    fn rate_and_onset_come_from_what_was_heard() {
        let t = transcript(&[(0.0, 4.0, "one two three four five six"), (3.0, 6.0, "seven eight")]);
        let heard = |t: &Transcript| Heard { transcript: t.clone(), engine: ENGINE, fallback: None };
        let r = report(&heard(&t), 10.0, None);
        assert_eq!((r["words"].as_u64(), r["speaking_s"].as_f64()), (Some(8), Some(6.0)));
        assert_eq!(r["words_per_minute"].as_f64(), Some(80.0));
        // Speech at 0.3 s that Whisper stamps 0.0: the sound onset wins.
        assert_eq!(speech_onset(&t, &[0.3]), Some(0.3));
        // Music from 0, speech from 5 with no gap: Whisper's time.
        let late = transcript(&[(5.0, 7.0, "hello")]);
        assert_eq!(speech_onset(&late, &[0.0]), Some(5.0));
        assert_eq!(speech_onset(&late, &[0.0, 4.6]), Some(4.6));
        // Speech from 2 s that Whisper stamps from 0: the onset inside its first segment.
        let stamped_early = transcript(&[(0.0, 7.0, "stop scrolling")]);
        assert_eq!(speech_onset(&stamped_early, &[2.01]), Some(2.01));
        assert_eq!(report(&heard(&stamped_early), 9.0, Some(2.0))["speaking_s"].as_f64(), Some(5.0));
        assert_eq!(speech_onset(&transcript(&[]), &[0.0]), None);
    }
}
