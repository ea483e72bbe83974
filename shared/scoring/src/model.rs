//! The trained model: a linear utility over TF-IDF-weighted hashed character n-grams and
//! standardised dense signals. Utility differences rank variants; a fitted temperature turns
//! them into calibrated probabilities; training-set quantiles turn a utility into a 0–100 score.
//!
//! A third, optional part scores WordPiece tokens: the mean of the tokens' scores, each the
//! fitted weight vector applied to that token's all-MiniLM-L6-v2 input embedding. Because the
//! utility is linear in the mean embedding, one scalar per token carries it exactly, and the
//! embedding table itself is not needed at run time.
//!
//! Artifact format (little-endian): b"GVNMODL1", u32 header length, the JSON header, then
//! `2^bits` f32 IDF weights, `2^bits` f32 n-gram weights, and one f32 per vocabulary token.

use serde::{Deserialize, Serialize};

use crate::text::{self, DENSE_FEATURES, Signals};

const MAGIC: &[u8; 8] = b"GVNMODL1";

/// Pseudo-tokens of neutral score pooled with every text's tokens (see `utility`).
pub const TOKEN_PRIOR: f64 = 4.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    pub bits: u32,
    pub dense_names: Vec<String>,
    pub dense_mean: Vec<f64>,
    pub dense_std: Vec<f64>,
    pub dense_weights: Vec<f64>,
    /// P(a beats b) = sigmoid(temperature × (u_a − u_b)).
    pub temperature: f64,
    /// Utilities of the training headlines at 0%, 1%, …, 100%.
    pub quantiles: Vec<f64>,
    pub training: serde_json::Value,
    pub attribution: String,
    /// The WordPiece vocabulary, one token per line; empty when the model has no token part.
    #[serde(default)]
    pub vocabulary: String,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub header: Header,
    pub idf: Vec<f32>,
    pub weights: Vec<f32>,
    pub wordpiece: Option<crate::wordpiece::WordPiece>,
    pub token_scores: Vec<f32>,
}

/// A text as the model sees it: the sparse TF-IDF vector (L2-normalised) and the
/// standardised dense signals.
#[derive(Debug, Clone)]
pub struct Encoded {
    pub sparse: Vec<(u32, f32)>,
    pub dense: Vec<f64>,
    /// WordPiece ids (empty when the model has no token part).
    pub tokens: Vec<u32>,
}

impl Model {
    pub fn from_bytes(bytes: &[u8]) -> Result<Model, String> {
        let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or("not a GoViralNow model (bad magic)")?;
        let len = u32::from_le_bytes(rest.get(..4).ok_or("truncated header")?.try_into().unwrap()) as usize;
        let header: Header = serde_json::from_slice(rest.get(4..4 + len).ok_or("truncated header")?).map_err(|e| e.to_string())?;
        let size = 1usize << header.bits;
        let floats = &rest[4 + len..];
        let tokens: Vec<&str> = if header.vocabulary.is_empty() { Vec::new() } else { header.vocabulary.split('\n').collect() };
        if floats.len() != (size * 2 + tokens.len()) * 4 {
            return Err(format!("expected {} weight bytes, found {}", (size * 2 + tokens.len()) * 4, floats.len()));
        }
        if header.dense_names != DENSE_FEATURES {
            return Err("the model's dense features differ from this build's".into());
        }
        let read = |chunk: &[u8]| chunk.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<f32>>();
        let wordpiece = if tokens.is_empty() { None } else { Some(crate::wordpiece::WordPiece::from_lines(tokens.iter().copied())?) };
        Ok(Model {
            idf: read(&floats[..size * 4]),
            weights: read(&floats[size * 4..size * 8]),
            token_scores: read(&floats[size * 8..]),
            wordpiece,
            header,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Keys sorted: serde_json keeps insertion order when another crate in the build turns
        // on `preserve_order`, and the same model must give the same bytes in every build.
        let header = serde_json::to_vec(&sorted_keys(serde_json::to_value(&self.header).expect("header serialises"))).unwrap();
        let mut out = Vec::with_capacity(12 + header.len() + self.idf.len() * 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for x in self.idf.iter().chain(&self.weights).chain(&self.token_scores) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    pub fn encode(&self, text: &str, signals: &Signals) -> Encoded {
        let mut e = encode(text, signals, self.header.bits, &self.idf, &self.header.dense_mean, &self.header.dense_std);
        if let Some(wp) = &self.wordpiece {
            e.tokens = wp.tokenize(text);
        }
        e
    }

    pub fn utility(&self, e: &Encoded) -> f64 {
        let sparse: f64 = e.sparse.iter().map(|(i, v)| f64::from(self.weights[*i as usize] * v)).sum();
        let tokens =
            e.tokens.iter().map(|t| f64::from(self.token_scores[*t as usize])).sum::<f64>() / (e.tokens.len() as f64 + TOKEN_PRIOR);
        sparse + tokens + e.dense.iter().zip(&self.header.dense_weights).map(|(x, w)| x * w).sum::<f64>()
    }

    /// Calibrated probability that the first text outperforms the second.
    pub fn p_better(&self, utility_a: f64, utility_b: f64) -> f64 {
        sigmoid(self.header.temperature * (utility_a - utility_b))
    }

    /// The range of scores (percentiles) whose utilities the model would rank against
    /// `utility` with a probability between 25% and 75%: how precisely a score is known.
    pub fn score_band(&self, utility: f64) -> [f64; 2] {
        // logit(0.75) = ln 3: the utility gap at which p_better reaches 75%.
        let gap = 3f64.ln() / self.header.temperature.max(f64::EPSILON);
        let round1 = |x: f64| (x * 10.0).round() / 10.0;
        [round1(self.percentile(utility - gap)), round1(self.percentile(utility + gap))]
    }

    /// Where a utility falls among the training headlines, 0–100.
    pub fn percentile(&self, utility: f64) -> f64 {
        percentile(&self.header.quantiles, utility)
    }

    /// The training set's median utility: the "typical alternative" a single text is held against.
    pub fn median(&self) -> f64 {
        self.header.quantiles[self.header.quantiles.len() / 2]
    }

    /// How much each word moved the utility: its n-grams' share of the sparse part.
    pub fn word_contributions(&self, text: &str) -> Vec<(String, f64)> {
        let raw: Vec<&str> = text.split_whitespace().collect();
        let counts = text::ngram_counts(text, self.header.bits);
        let norm = tfidf_norm(&counts, &self.idf);
        let mut per_word = vec![0.0f64; raw.len()];
        text::for_each_ngram(text, self.header.bits, |w, b| {
            let tf = counts[&b];
            // A bucket's weight is shared among its occurrences.
            let value = (1.0 + tf.ln()) * self.idf[b as usize] / norm / tf;
            per_word[w] += f64::from(self.weights[b as usize] * value);
        });
        if let Some(wp) = &self.wordpiece {
            let per_raw: Vec<Vec<u32>> = raw.iter().map(|w| wp.tokenize(w)).collect();
            let total = per_raw.iter().map(Vec::len).sum::<usize>() as f64 + TOKEN_PRIOR;
            for (w, ids) in per_raw.iter().enumerate() {
                per_word[w] += ids.iter().map(|t| f64::from(self.token_scores[*t as usize])).sum::<f64>() / total;
            }
        }
        raw.iter().map(|w| w.to_string()).zip(per_word).collect()
    }
}

fn sorted_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted_keys).collect()),
        other => other,
    }
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn tfidf_norm(counts: &std::collections::BTreeMap<u32, f32>, idf: &[f32]) -> f32 {
    counts.iter().map(|(b, tf)| ((1.0 + tf.ln()) * idf[*b as usize]).powi(2)).sum::<f32>().sqrt().max(1e-6)
}

pub fn encode(text: &str, signals: &Signals, bits: u32, idf: &[f32], mean: &[f64], std: &[f64]) -> Encoded {
    let counts = text::ngram_counts(text, bits);
    let norm = tfidf_norm(&counts, idf);
    let sparse: Vec<(u32, f32)> = counts.iter().map(|(b, tf)| (*b, (1.0 + tf.ln()) * idf[*b as usize] / norm)).collect();
    let dense = signals.dense().iter().zip(mean).zip(std).map(|((x, m), s)| (x - m) / s).collect();
    Encoded { sparse, dense, tokens: Vec::new() }
}

pub fn percentile(quantiles: &[f64], u: f64) -> f64 {
    let last = quantiles.len() - 1;
    if u <= quantiles[0] {
        return 0.0;
    }
    if u >= quantiles[last] {
        return 100.0;
    }
    let i = quantiles.partition_point(|q| *q <= u).clamp(1, last);
    let (lo, hi) = (quantiles[i - 1], quantiles[i]);
    let frac = if hi > lo { (u - lo) / (hi - lo) } else { 0.5 };
    100.0 * ((i - 1) as f64 + frac) / last as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_and_clamp() {
        let q: Vec<f64> = (0..=100).map(|i| i as f64 / 10.0).collect();
        assert_eq!(percentile(&q, -1.0), 0.0);
        assert_eq!(percentile(&q, 11.0), 100.0);
        assert!((percentile(&q, 5.05) - 50.5).abs() < 1e-9);
    }
}
