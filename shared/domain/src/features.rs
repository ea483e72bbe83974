//! Text features computed at extraction: what the scorer and the insights work from.

use serde::{Deserialize, Serialize};

use crate::model::Platform;

/// Phrases that ask the audience to act.
pub const CTA_PHRASES: &[&str] = &[
    "follow",
    "subscribe",
    "comment",
    "share",
    "like this",
    "link in bio",
    "tap",
    "click",
    "sign up",
    "join",
    "save this",
    "let me know",
    "tell me",
    "dm me",
    "check out",
    "watch till",
    "watch until",
    "don't miss",
    "download",
    "try it",
    "tag",
];
pub const SECOND_PERSON: &[&str] = &["you", "your", "you're", "yours", "yourself", "you'll", "you've", "you'd"];

/// The CTA phrases in a text, matched on whole words ("tap" is not in "tape").
pub fn cta_phrases_in(text: &str) -> Vec<String> {
    let words: Vec<String> =
        text.to_lowercase().split(|c: char| !c.is_alphanumeric() && c != '\'').filter(|w| !w.is_empty()).map(String::from).collect();
    let padded = format!(" {} ", words.join(" "));
    CTA_PHRASES.iter().filter(|p| padded.contains(&format!(" {p} "))).map(|p| p.to_string()).collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextFeatures {
    pub chars: usize,
    pub words: usize,
    pub sentences: usize,
    /// The opening line: what a viewer reads before deciding to stay.
    pub first_line: String,
    pub first_line_words: usize,
    pub first_line_is_question: bool,
    pub first_line_has_number: bool,
    pub second_person: usize,
    pub hashtags: Vec<String>,
    pub mentions: usize,
    pub links: usize,
    pub emoji: usize,
    pub exclamations: usize,
    pub questions: usize,
    /// Share of letters in capitals, 0–1.
    pub uppercase_ratio: f64,
    /// CTA phrases found, as written in the text.
    pub cta_phrases: Vec<String>,
    /// Length relative to the platform's sweet spot (1.0 = on target).
    pub length_vs_platform: f64,
}

/// Caption length that performs best per platform (characters), a widely used rule of thumb.
fn platform_target_chars(platform: Option<Platform>) -> f64 {
    match platform {
        Some(Platform::X) => 100.0,
        Some(Platform::Tiktok) => 150.0,
        Some(Platform::Instagram) => 200.0,
        Some(Platform::Youtube) => 300.0,
        None => 150.0,
    }
}

/// Emoji and pictographs, by code point block.
pub fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F300..=0x1FAFF | 0x2600..=0x27BF | 0x1F000..=0x1F2FF)
}

pub fn extract(text: &str, platform: Option<Platform>) -> TextFeatures {
    let text = text.trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    let first_line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default().to_string();
    let letters: Vec<char> = text.chars().filter(|c| c.is_alphabetic()).collect();
    let upper = letters.iter().filter(|c| c.is_uppercase()).count();
    let bare = |w: &str| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'').to_lowercase();
    TextFeatures {
        chars: text.chars().count(),
        words: words.len(),
        sentences: text.split(['.', '!', '?', '\n']).filter(|s| s.split_whitespace().next().is_some()).count(),
        first_line_words: first_line.split_whitespace().count(),
        first_line_is_question: first_line.trim_end().ends_with('?'),
        first_line_has_number: first_line.chars().any(|c| c.is_ascii_digit()),
        first_line,
        second_person: words.iter().filter(|w| SECOND_PERSON.contains(&bare(w).as_str())).count(),
        hashtags: words.iter().filter(|w| w.starts_with('#') && w.len() > 1).map(|w| w.to_string()).collect(),
        mentions: words.iter().filter(|w| w.starts_with('@') && w.len() > 1).count(),
        links: words.iter().filter(|w| w.starts_with("http://") || w.starts_with("https://") || w.starts_with("www.")).count(),
        emoji: text.chars().filter(|c| is_emoji(*c)).count(),
        exclamations: text.matches('!').count(),
        questions: text.matches('?').count(),
        uppercase_ratio: if letters.is_empty() { 0.0 } else { upper as f64 / letters.len() as f64 },
        cta_phrases: cta_phrases_in(text),
        length_vs_platform: text.chars().count() as f64 / platform_target_chars(platform),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_of_a_caption() {
        let f = extract(
            "Did you know 3 habits change your mornings?\nFollow for more! #morning #habits @coach https://x.co 🚀",
            Some(Platform::Tiktok),
        );
        assert_eq!(f.first_line, "Did you know 3 habits change your mornings?");
        assert!(f.first_line_is_question && f.first_line_has_number);
        assert_eq!((f.second_person, f.mentions, f.links, f.emoji, f.exclamations), (2, 1, 1, 1, 1));
        assert_eq!(f.hashtags, ["#morning", "#habits"]);
        assert_eq!(f.cta_phrases, ["follow"]);
        assert!(f.length_vs_platform > 0.5);
        assert_eq!(extract("", None).words, 0);
    }
}
