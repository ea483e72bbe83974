//! BERT-style uncased WordPiece: the vocabulary of all-MiniLM-L6-v2, so the model can use that
//! network's token embeddings. Text is lowercased, accents stripped, punctuation split off,
//! and each word cut into the longest pieces the vocabulary knows ("##" marks a continuation).

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

const MAX_WORD_CHARS: usize = 100;

#[derive(Debug, Clone)]
pub struct WordPiece {
    ids: HashMap<String, u32>,
    unk: u32,
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || (!c.is_alphanumeric() && !c.is_whitespace() && !c.is_control() && (c as u32) < 0x2E80 && !is_symbol(c))
}

/// Emoji and pictographs stay inside words (BERT does not split symbols).
fn is_symbol(c: char) -> bool {
    matches!(c as u32, 0x2190..=0x2BFF | 0x1F000..=0x1FAFF)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

impl WordPiece {
    /// One token per line, ids by line number (the `vocab.txt` layout).
    pub fn from_lines<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<WordPiece, String> {
        let ids: HashMap<String, u32> = tokens.into_iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
        let unk = *ids.get("[UNK]").ok_or("the vocabulary has no [UNK] token")?;
        Ok(WordPiece { ids, unk })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn words(text: &str) -> Vec<String> {
        let mut spaced = String::with_capacity(text.len() + 8);
        for c in text.nfd() {
            if unicode_normalization::char::is_combining_mark(c) || c == '\u{FFFD}' || (c.is_control() && !c.is_whitespace()) {
                continue;
            }
            if is_punctuation(c) || is_cjk(c) {
                spaced.push(' ');
                spaced.push(c);
                spaced.push(' ');
            } else {
                spaced.extend(c.to_lowercase());
            }
        }
        spaced.split_whitespace().map(String::from).collect()
    }

    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for word in Self::words(text) {
            let chars: Vec<char> = word.chars().collect();
            if chars.len() > MAX_WORD_CHARS {
                out.push(self.unk);
                continue;
            }
            let mut pieces = Vec::new();
            let mut start = 0;
            while start < chars.len() {
                let piece = (start + 1..=chars.len()).rev().find_map(|end| {
                    let s: String = chars[start..end].iter().collect();
                    let key = if start > 0 { format!("##{s}") } else { s };
                    self.ids.get(&key).map(|id| (*id, end))
                });
                match piece {
                    Some((id, end)) => {
                        pieces.push(id);
                        start = end;
                    }
                    None => {
                        pieces = vec![self.unk];
                        break;
                    }
                }
            }
            out.extend(pieces);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_into_known_pieces() {
        let wp = WordPiece::from_lines(["[PAD]", "[UNK]", "the", "un", "##aff", "##able", "cafe", "!", "'", "s", "dad"]).unwrap();
        assert_eq!(wp.tokenize("The unaffable CAFÉ!"), [2, 3, 4, 5, 6, 7]);
        assert_eq!(wp.tokenize("Dad's"), [10, 8, 9]);
        assert_eq!(wp.tokenize("zzz"), [1], "an unknown word is one [UNK]");
        assert!(wp.tokenize("  ").is_empty());
    }
}
