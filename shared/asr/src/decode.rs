//! Greedy decoding of 30 s windows with Whisper's timestamp rules, and the walk over a whole
//! recording by seeking to the last complete segment, as OpenAI's `transcribe` does.
//! Without the timestamp rules the model often closes a window after a few words and whole
//! stretches of real speech are silently lost; without no-speech gating it invents words
//! over music and tones.

use crate::mel::{HOP, SAMPLE_RATE, WINDOW_FRAMES};
use crate::model::{Whisper, log_softmax};
use crate::{AsrError, Segment, Tokens};

/// Seconds per timestamp token.
const TIME_PRECISION: f64 = 0.02;
/// The first timestamp of a window may be at most 1 s in.
const MAX_INITIAL_TIMESTAMP_INDEX: u32 = 50;
/// At most this many tokens per window (half the text context, as the reference does).
const MAX_TOKENS: usize = 224;
/// A window is silence when the model says so and is unsure of what it would write.
const NO_SPEECH_THRESHOLD: f32 = 0.6;
const LOGPROB_THRESHOLD: f32 = -1.0;
/// Below this mean log-probability a window's text is dropped whatever the no-speech score:
/// on a pure tone the model writes a confident-looking "A" at −2.1, real speech reads −0.2…−0.6.
const UNRELIABLE_LOGPROB: f32 = -1.5;
/// A window whose text is mostly one pattern over and over is a hallucination (on a short tone
/// the model writes "Aaaaaaaa…" to the token limit, confidently): Whisper's reference drops a
/// window whose text compresses more than 2.4×; here, one with fewer than a quarter of its
/// token trigrams distinct, over at least 24 tokens (speech repeats words, not whole windows).
const REPETITION_MIN_TOKENS: usize = 24;
const REPETITION_MIN_DISTINCT: f64 = 0.25;

/// Whether the text tokens of `tokens` are one short pattern repeated (see above).
fn repetitive(tokens: &[u32], text_end: u32) -> bool {
    let text: Vec<u32> = tokens.iter().copied().filter(|&id| id < text_end).collect();
    if text.len() < REPETITION_MIN_TOKENS {
        return false;
    }
    let trigrams: std::collections::HashSet<&[u32]> = text.windows(3).collect();
    (trigrams.len() as f64) < REPETITION_MIN_DISTINCT * (text.len() - 2) as f64
}

pub struct WindowResult {
    /// Sampled tokens, text and timestamps, without the end token.
    pub tokens: Vec<u32>,
    pub avg_logprob: f32,
    pub no_speech_prob: f32,
}

/// The rules that keep the sampled sequence a well-formed list of timestamped segments.
fn apply_rules(logits: &mut [f32], sampled: &[u32], t: &Tokens, suppress: &[u32]) {
    let ts = t.timestamp_begin as usize;
    for &id in suppress {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
    logits[t.no_timestamps as usize] = f32::NEG_INFINITY;
    if sampled.is_empty() {
        // Blank output at the start is never right.
        logits[t.eot as usize] = f32::NEG_INFINITY;
        logits[220] = f32::NEG_INFINITY;
    }
    let is_ts = |id: u32| id >= t.timestamp_begin;
    let last_was_ts = sampled.last().is_some_and(|&id| is_ts(id));
    let penultimate_was_ts = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
    if last_was_ts {
        if penultimate_was_ts {
            // A segment just closed: text (or the end) must follow.
            logits[ts..].fill(f32::NEG_INFINITY);
        } else {
            // Text was closed by a timestamp: another timestamp, or the end.
            logits[..t.eot as usize].fill(f32::NEG_INFINITY);
        }
    }
    // Timestamps never go backwards.
    if let Some(&last_ts) = sampled.iter().rev().find(|&&id| is_ts(id)) {
        let floor = if last_was_ts && !penultimate_was_ts { last_ts } else { last_ts + 1 };
        let end = (floor as usize).min(logits.len());
        logits[ts..end].fill(f32::NEG_INFINITY);
    }
    if sampled.is_empty() {
        // A window opens with a timestamp, within its first second.
        logits[..ts].fill(f32::NEG_INFINITY);
        let last_allowed = ts + MAX_INITIAL_TIMESTAMP_INDEX as usize;
        if last_allowed + 1 < logits.len() {
            logits[last_allowed + 1..].fill(f32::NEG_INFINITY);
        }
    }
    // When a timestamp is likelier than any single text token, write a timestamp.
    let mut logprobs = logits.to_vec();
    log_softmax(&mut logprobs);
    let ts_mass = log_sum_exp(&logprobs[ts..]);
    let best_text = logprobs[..ts].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if ts_mass > best_text {
        logits[..ts].fill(f32::NEG_INFINITY);
    }
}

fn log_sum_exp(xs: &[f32]) -> f32 {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + xs.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
}

fn argmax(xs: &[f32]) -> u32 {
    xs.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (i, &x)| if x > best.1 { (i, x) } else { best }).0 as u32
}

/// Decodes one window of mel frames.
pub fn decode_window(model: &Whisper, mel: &[f32]) -> Result<WindowResult, AsrError> {
    let t = &model.config.tokens;
    let suppress = model.config.suppressed();
    let mut session = model.start(mel)?;
    let mut logits = model.step(&mut session, t.sot)?;
    let no_speech_prob = {
        let mut p = logits.clone();
        log_softmax(&mut p);
        p[t.no_speech as usize].exp()
    };
    let (mut sampled, mut sum_logprob) = (Vec::new(), 0f32);
    for _ in 0..MAX_TOKENS {
        apply_rules(&mut logits, &sampled, t, &suppress);
        let mut logprobs = logits.clone();
        log_softmax(&mut logprobs);
        let next = argmax(&logprobs);
        sum_logprob += logprobs[next as usize];
        if next == t.eot {
            break;
        }
        sampled.push(next);
        logits = model.step(&mut session, next)?;
    }
    let avg_logprob = sum_logprob / (sampled.len() + 1) as f32;
    Ok(WindowResult { tokens: sampled, avg_logprob, no_speech_prob })
}

/// Transcribes `frames` mel frames (of `mel`, `n_mels` rows of `stride` frames each, padded
/// with 30 s of silence) window by window.
pub fn transcribe(
    model: &Whisper,
    mel: &[f32],
    stride: usize,
    frames: usize,
    decode_text: &dyn Fn(&[u32]) -> String,
) -> Result<Vec<Segment>, AsrError> {
    let n_mels = model.config.n_mels;
    let t = &model.config.tokens;
    let mut segments = Vec::new();
    let mut seek = 0usize;
    let frame_s = HOP as f64 / SAMPLE_RATE as f64;
    let mut window = vec![0f32; n_mels * WINDOW_FRAMES];
    while seek < frames {
        let segment_size = WINDOW_FRAMES.min(frames - seek);
        for m in 0..n_mels {
            let row = &mel[m * stride + seek..m * stride + seek + WINDOW_FRAMES];
            window[m * WINDOW_FRAMES..(m + 1) * WINDOW_FRAMES].copy_from_slice(row);
        }
        let result = decode_window(model, &window)?;
        let offset_s = seek as f64 * frame_s;
        let silent = result.no_speech_prob > NO_SPEECH_THRESHOLD && result.avg_logprob < LOGPROB_THRESHOLD;
        if silent || result.avg_logprob < UNRELIABLE_LOGPROB || repetitive(&result.tokens, t.eot) {
            seek += segment_size; // silence, music or tones: nothing is written
            continue;
        }
        let tokens = &result.tokens;
        let is_ts: Vec<bool> = tokens.iter().map(|&id| id >= t.timestamp_begin).collect();
        let time = |id: u32| (id - t.timestamp_begin) as f64 * TIME_PRECISION;
        let single_timestamp_ending = is_ts.len() >= 2 && !is_ts[is_ts.len() - 2] && is_ts[is_ts.len() - 1];
        let mut cuts: Vec<usize> = (1..tokens.len()).filter(|&i| is_ts[i] && is_ts[i - 1]).collect();
        let mut push = |start: f64, end: f64, ids: &[u32]| {
            let text_ids: Vec<u32> = ids.iter().copied().filter(|&id| id < t.eot).collect();
            let text = decode_text(&text_ids).trim().to_string();
            if !text.is_empty() {
                segments.push(Segment { start_s: offset_s + start, end_s: offset_s + end, text, avg_logprob: result.avg_logprob });
            }
        };
        if !cuts.is_empty() {
            if single_timestamp_ending {
                cuts.push(tokens.len());
            }
            let mut from = 0;
            for &to in &cuts {
                let slice = &tokens[from..to];
                let (start, end) = (slice.first().copied(), slice.last().copied());
                if let (Some(s), Some(e)) = (start.filter(|&s| s >= t.timestamp_begin), end.filter(|&e| e >= t.timestamp_begin)) {
                    push(time(s), time(e), slice);
                }
                from = to;
            }
            if single_timestamp_ending {
                seek += segment_size;
            } else {
                // Resume at the last complete segment's end: what followed was cut off.
                let last_ts = tokens[from - 1];
                seek += ((time(last_ts) / frame_s).round() as usize).max(1);
            }
        } else {
            let mut duration = segment_size as f64 * frame_s;
            if let Some(&last) = tokens.iter().rev().find(|&&id| id >= t.timestamp_begin)
                && last != t.timestamp_begin
            {
                duration = time(last);
            }
            let start = tokens.first().filter(|&&id| id >= t.timestamp_begin).map_or(0.0, |&id| time(id));
            push(start, duration, tokens);
            seek += segment_size;
        }
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_of_one_pattern_repeated_is_not_speech() {
        let eot = 50_256;
        let looping: Vec<u32> = std::iter::once(317).chain(std::iter::repeat_n(24794, 200)).collect();
        assert!(repetitive(&looping, eot));
        let two_step: Vec<u32> = (0..120).flat_map(|_| [318, 64]).collect();
        assert!(repetitive(&two_step, eot));
        // Ordinary text (distinct tokens), short repeats and timestamps are not.
        let speech: Vec<u32> = (1000..1060).collect();
        assert!(!repetitive(&speech, eot));
        assert!(!repetitive(&[645, 645, 645, 645, 645, 645], eot));
        let stamps: Vec<u32> = std::iter::repeat_n(eot + 10, 100).collect();
        assert!(!repetitive(&stamps, eot));
    }
}
