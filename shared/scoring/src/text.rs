//! What the model reads: hashed character n-grams of each word (the representation that
//! ranked headlines best, see model/README.md) and a few dense signals a person can act on.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use vader_sentiment::SentimentIntensityAnalyzer;

/// Character n-grams of each space-padded, lowercased word, from `MIN_N` to `MAX_N` chars.
pub const MIN_N: usize = 2;
pub const MAX_N: usize = 5;

pub use domain::features::{CTA_PHRASES, SECOND_PERSON};
pub const FIRST_PERSON: &[&str] = &["i", "i'm", "my", "me", "we", "our", "us", "i've", "i'd", "we're"];
/// Words that open a gap the reader wants closed.
pub const CURIOSITY: &[&str] = &["this", "these", "here's", "why", "what", "how", "who", "secret", "reason", "actually", "truth"];
pub const FILLER: &[&str] = &["very", "really", "just", "actually", "basically", "literally", "totally", "quite", "simply", "so"];
pub const STORY_MARKERS: &[&str] =
    &["when", "after", "then", "until", "finally", "suddenly", "turns", "turned", "realized", "learned", "found", "before", "years", "day"];

fn vader() -> &'static SentimentIntensityAnalyzer<'static> {
    static VADER: OnceLock<SentimentIntensityAnalyzer<'static>> = OnceLock::new();
    VADER.get_or_init(SentimentIntensityAnalyzer::new)
}

fn round_to(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// One word's sentiment alone, −1 to +1.
pub fn word_valence(word: &str) -> f64 {
    round_to(vader().polarity_scores(word).get("compound").copied().unwrap_or(0.0), 4)
}

/// Words as a reader sees them: split on whitespace, outer punctuation trimmed, lowercased.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'' && c != '#' && c != '@').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// FNV-1a: stable across builds and platforms, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Counts of hashed n-grams per bucket, in bucket order (so float sums repeat exactly).
pub fn ngram_counts(text: &str, bits: u32) -> BTreeMap<u32, f32> {
    let mut counts = BTreeMap::new();
    for_each_ngram(text, bits, |_, bucket| *counts.entry(bucket).or_insert(0.0) += 1.0);
    counts
}

/// Calls `f(word_index, bucket)` for every n-gram of every word.
pub fn for_each_ngram(text: &str, bits: u32, mut f: impl FnMut(usize, u32)) {
    let mask = (1u64 << bits) - 1;
    for (i, word) in text.split_whitespace().enumerate() {
        let padded: Vec<char> = format!(" {} ", word.to_lowercase()).chars().collect();
        let mut buf = String::new();
        for n in MIN_N..=MAX_N {
            if padded.len() < n {
                break;
            }
            for start in 0..=padded.len() - n {
                buf.clear();
                buf.extend(&padded[start..start + n]);
                f(i, (fnv1a(buf.as_bytes()) & mask) as u32);
            }
            if padded.len() == n {
                break; // a short word counts once, not once per n
            }
        }
    }
}

/// Syllables by vowel groups: crude, but stable and enough for a readability estimate.
fn syllables(word: &str) -> usize {
    let mut count = 0;
    let mut prev_vowel = false;
    for c in word.chars() {
        let vowel = "aeiouy".contains(c);
        if vowel && !prev_vowel {
            count += 1;
        }
        prev_vowel = vowel;
    }
    if word.ends_with('e') && count > 1 && !word.ends_with("le") {
        count -= 1;
    }
    count.max(1)
}

/// The signals of one text that the model weighs and the insights explain.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Signals {
    pub words: Vec<String>,
    pub chars: usize,
    pub first_line: String,
    pub first_line_words: usize,
    pub sentences: Vec<String>,
    pub question: bool,
    pub numbers: Vec<String>,
    pub starts_with_number: bool,
    pub second_person: usize,
    pub first_person: usize,
    pub curiosity: Vec<String>,
    pub filler: Vec<String>,
    pub story_markers: Vec<String>,
    pub cta_phrases: Vec<String>,
    pub hashtags: Vec<String>,
    pub mentions: usize,
    pub links: usize,
    pub emoji: usize,
    pub exclamations: usize,
    pub quotes: bool,
    /// Capitalised words not at a sentence start: names, places, brands.
    pub proper_nouns: Vec<String>,
    pub uppercase_ratio: f64,
    pub sentiment_compound: f64,
    pub sentiment_pos: f64,
    pub sentiment_neg: f64,
    /// Flesch reading ease (higher is easier), clamped to 0–120.
    pub reading_ease: f64,
    pub mean_word_len: f64,
}

impl Signals {
    pub fn of(text: &str) -> Signals {
        let words = words(text);
        let first_line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("").to_string();
        let sentences: Vec<String> = text
            .split_inclusive(['.', '!', '?', '\n'])
            .map(str::trim)
            .filter(|s| s.chars().any(char::is_alphanumeric))
            .map(String::from)
            .collect();
        let has = |list: &[&str]| words.iter().filter(|w| list.contains(&w.as_str())).cloned().collect::<Vec<_>>();
        let cta_phrases = domain::features::cta_phrases_in(text);
        let raw: Vec<&str> = text.split_whitespace().collect();
        let numbers: Vec<String> = raw
            .iter()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
            .filter(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .map(String::from)
            .collect();
        let mut proper_nouns = Vec::new();
        // In Title Case Headlines capitals say nothing about names.
        let all_caps_title = raw.iter().filter(|w| w.chars().next().is_some_and(char::is_uppercase)).count() * 2 > raw.len();
        for pair in raw.windows(2) {
            let prev_ends = pair[0].ends_with(['.', '!', '?', ':']);
            let w = pair[1].trim_matches(|c: char| !c.is_alphanumeric());
            if !prev_ends && !all_caps_title && w.chars().next().is_some_and(char::is_uppercase) && w.len() > 1 {
                proper_nouns.push(w.to_string());
            }
        }
        let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
        let upper = letters.iter().filter(|c| c.is_uppercase()).count();
        let sentiment = vader().polarity_scores(text);
        let n_words = words.len().max(1) as f64;
        let n_sentences = sentences.len().max(1) as f64;
        let syll: usize = words.iter().map(|w| syllables(w)).sum();
        let reading_ease = (206.835 - 1.015 * (n_words / n_sentences) - 84.6 * (syll as f64 / n_words)).clamp(0.0, 120.0);
        Signals {
            chars: text.chars().count(),
            first_line_words: first_line.split_whitespace().count(),
            question: first_line.contains('?'),
            starts_with_number: raw.first().is_some_and(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit())),
            second_person: has(SECOND_PERSON).len(),
            first_person: has(FIRST_PERSON).len(),
            curiosity: has(CURIOSITY),
            filler: has(FILLER),
            story_markers: has(STORY_MARKERS),
            cta_phrases,
            hashtags: raw.iter().filter(|w| w.starts_with('#') && w.len() > 1).map(|w| w.to_string()).collect(),
            mentions: raw.iter().filter(|w| w.starts_with('@') && w.len() > 1).count(),
            links: raw.iter().filter(|w| w.starts_with("http://") || w.starts_with("https://") || w.starts_with("www.")).count(),
            emoji: text.chars().filter(|c| domain::features::is_emoji(*c)).count(),
            exclamations: text.matches('!').count(),
            quotes: text.contains('"') || text.contains('“') || text.contains(" '"),
            uppercase_ratio: if letters.is_empty() { 0.0 } else { upper as f64 / letters.len() as f64 },
            // Rounded as the reference VADER reports them: the crate's sums run in hash-map
            // order, so the last bits differ between processes.
            sentiment_compound: round_to(sentiment.get("compound").copied().unwrap_or(0.0), 4),
            sentiment_pos: round_to(sentiment.get("pos").copied().unwrap_or(0.0), 3),
            sentiment_neg: round_to(sentiment.get("neg").copied().unwrap_or(0.0), 3),
            reading_ease,
            mean_word_len: words.iter().map(|w| w.chars().count()).sum::<usize>() as f64 / n_words,
            numbers,
            proper_nouns,
            first_line,
            sentences,
            words,
        }
    }

    /// The dense inputs of the model, in `DENSE_FEATURES` order.
    pub fn dense(&self) -> [f64; DENSE_FEATURES.len()] {
        let b = |x: bool| f64::from(u8::from(x));
        [
            (self.words.len() as f64).ln_1p(),
            b(self.question),
            b(!self.numbers.is_empty()),
            b(self.starts_with_number),
            b(self.second_person > 0),
            b(self.first_person > 0),
            b(!self.curiosity.is_empty()),
            self.sentiment_compound,
            self.sentiment_pos,
            self.sentiment_neg,
            b(self.exclamations > 0),
            b(self.quotes),
            (self.proper_nouns.len() as f64).ln_1p(),
            self.reading_ease / 100.0,
            self.mean_word_len,
        ]
    }
}

pub const DENSE_FEATURES: [&str; 15] = [
    "log_words",
    "question",
    "has_number",
    "starts_with_number",
    "second_person",
    "first_person",
    "curiosity_gap",
    "sentiment_compound",
    "sentiment_positive",
    "sentiment_negative",
    "exclamation",
    "quotation",
    "log_proper_nouns",
    "reading_ease",
    "mean_word_length",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_of_a_headline() {
        let s = Signals::of("5 mistakes you make with sourdough, and why Maria fixed hers in a day?");
        assert!(s.starts_with_number && s.question);
        assert_eq!(s.numbers, ["5"]);
        assert_eq!(s.second_person, 1);
        assert!(s.curiosity.contains(&"why".to_string()));
        assert_eq!(s.proper_nouns, ["Maria"]);
        assert!(s.story_markers.contains(&"day".to_string()));
    }

    #[test]
    fn ngrams_are_stable_and_bounded() {
        let a = ngram_counts("Hello World", 17);
        assert_eq!(a, ngram_counts("hello   world", 17));
        assert!(a.keys().all(|k| *k < 1 << 17));
        // " hello " has 6+5+4+3 n-grams of 2..5 chars; " world " the same.
        assert_eq!(a.values().sum::<f32>(), 36.0);
        // "a" padded is " a ": 2 bigrams and the trigram, counted once.
        assert_eq!(ngram_counts("a", 17).values().sum::<f32>(), 3.0);
    }
}
