//! The vocabularies text features are built from, shared by the scorer (which computes the
//! features extraction stores and inference scores) and the insights.

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

/// Emoji and pictographs, by code point block.
pub fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F300..=0x1FAFF | 0x2600..=0x27BF | 0x1F000..=0x1F2FF)
}
