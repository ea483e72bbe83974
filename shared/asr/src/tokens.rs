//! Turning Whisper's token ids back into text: the GPT-2 byte-level BPE vocabulary of
//! `tokenizer.json`, where each token is a string of stand-in characters for bytes.

use std::collections::HashMap;

use serde_json::Value;

use crate::AsrError;

pub struct Vocabulary {
    /// Token id → the bytes it stands for.
    bytes: Vec<Vec<u8>>,
}

/// GPT-2's byte ↔ character table: printable Latin-1 bytes stand for themselves, the rest
/// for the characters from U+0100 on, in byte order.
fn char_to_byte() -> HashMap<char, u8> {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut table = HashMap::new();
    let mut next = 0u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            b as char
        } else {
            next += 1;
            char::from_u32(255 + next).unwrap()
        };
        table.insert(c, b);
    }
    table
}

impl Vocabulary {
    pub fn from_tokenizer_json(json: &Value) -> Result<Vocabulary, AsrError> {
        let vocab = json["model"]["vocab"].as_object().ok_or_else(|| AsrError::Model("tokenizer.json has no model.vocab".into()))?;
        let table = char_to_byte();
        let mut bytes: Vec<Vec<u8>> = Vec::new();
        let mut put = |id: usize, piece: Vec<u8>| {
            if bytes.len() <= id {
                bytes.resize(id + 1, Vec::new());
            }
            bytes[id] = piece;
        };
        for (piece, id) in vocab {
            let id = id.as_u64().ok_or_else(|| AsrError::Model("a vocabulary id is not a number".into()))? as usize;
            put(id, piece.chars().map(|c| table.get(&c).copied().unwrap_or(b'?')).collect());
        }
        // Special tokens decode to nothing: they are markers, not text.
        for t in json["added_tokens"].as_array().into_iter().flatten() {
            if let Some(id) = t["id"].as_u64() {
                put(id as usize, Vec::new());
            }
        }
        Ok(Vocabulary { bytes })
    }

    /// The text of `ids` (ids outside the vocabulary, like timestamps, are skipped).
    pub fn decode(&self, ids: &[u32]) -> String {
        let raw: Vec<u8> = ids.iter().filter_map(|id| self.bytes.get(*id as usize)).flatten().copied().collect();
        String::from_utf8_lossy(&raw).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_pieces_decode_to_text() {
        let json = serde_json::json!({
            "model": {"vocab": {"Hello": 0, "Ġworld": 1, "Ċ": 2, "Ã©": 3}},
            "added_tokens": [{"id": 4, "content": "<|endoftext|>"}],
        });
        let v = Vocabulary::from_tokenizer_json(&json).unwrap();
        assert_eq!(v.decode(&[0, 1, 2, 4, 3, 99_999]), "Hello world\né");
    }
}
