//! The Whisper network on candle, written for decoding one token at a time: the decoder
//! keeps each layer's self-attention keys and values (a KV cache) and the cross-attention
//! keys and values of the current window, so a step costs one token's work instead of
//! re-running the whole prefix. Weights are the converted CTranslate2 tensors (fused
//! q/k/v projections are used fused).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module};

use crate::{AsrError, ModelConfig};

type Result<T> = std::result::Result<T, AsrError>;

struct Weights(HashMap<String, Tensor>);

impl Weights {
    fn get(&self, name: &str) -> Result<Tensor> {
        let t = self.0.get(name).ok_or_else(|| AsrError::Model(format!("the weights have no {name}")))?;
        Ok(t.to_dtype(DType::F32)?)
    }
    fn linear(&self, prefix: &str) -> Result<Linear> {
        let bias = match self.0.contains_key(&format!("{prefix}.bias")) {
            true => Some(self.get(&format!("{prefix}.bias"))?),
            false => None,
        };
        Ok(Linear::new(self.get(&format!("{prefix}.weight"))?, bias))
    }
    fn norm(&self, prefix: &str) -> Result<Norm> {
        Ok(Norm { gamma: self.get(&format!("{prefix}.gamma"))?, beta: self.get(&format!("{prefix}.beta"))? })
    }
}

struct Norm {
    gamma: Tensor,
    beta: Tensor,
}

impl Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm(x, &self.gamma, &self.beta, 1e-5)?)
    }
}

struct Mlp {
    norm: Norm,
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn load(w: &Weights, prefix: &str) -> Result<Mlp> {
        Ok(Mlp {
            norm: w.norm(&format!("{prefix}.layer_norm"))?,
            fc1: w.linear(&format!("{prefix}.linear_0"))?,
            fc2: w.linear(&format!("{prefix}.linear_1"))?,
        })
    }
    /// `x + fc2(gelu(fc1(norm(x))))`.
    fn residual(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(&self.norm.forward(x)?)?.gelu_erf()?;
        Ok((x + self.fc2.forward(&h)?)?)
    }
}

/// `[T, d]` → `[heads, T, d/heads]`.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (t, d) = x.dims2()?;
    Ok(x.reshape((t, heads, d / heads))?.transpose(0, 1)?.contiguous()?)
}

/// Scaled dot-product attention of `q` `[h, T, dh]` over `k`, `v` `[h, S, dh]`; with
/// `causal_offset`, query i (at position offset + i) sees keys up to its own position.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, causal_offset: Option<usize>) -> Result<Tensor> {
    let (heads, t, dh) = q.dims3()?;
    let mut scores = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?;
    if let Some(offset) = causal_offset.filter(|_| t > 1) {
        let s = k.dim(1)?;
        let mask: Vec<f32> = (0..t).flat_map(|i| (0..s).map(move |j| if j > offset + i { f32::NEG_INFINITY } else { 0.0 })).collect();
        let mask = Tensor::from_vec(mask, (t, s), q.device())?;
        scores = scores.broadcast_add(&mask)?;
    }
    let weights = candle_nn::ops::softmax_last_dim(&scores)?;
    let out = weights.matmul(v)?; // [h, T, dh]
    Ok(out.transpose(0, 1)?.reshape((t, heads * dh))?)
}

struct SelfAttention {
    norm: Norm,
    qkv: Linear,
    out: Linear,
    heads: usize,
}

impl SelfAttention {
    fn load(w: &Weights, prefix: &str, heads: usize) -> Result<SelfAttention> {
        Ok(SelfAttention {
            norm: w.norm(&format!("{prefix}.layer_norm"))?,
            qkv: w.linear(&format!("{prefix}.linear_0"))?,
            out: w.linear(&format!("{prefix}.linear_1"))?,
            heads,
        })
    }

    /// `x + attention(norm(x))`; with a cache, the new keys and values are appended to it and
    /// attention is causal.
    fn residual(&self, x: &Tensor, cache: Option<&mut Option<(Tensor, Tensor)>>) -> Result<Tensor> {
        let d = x.dim(1)?;
        let qkv = self.qkv.forward(&self.norm.forward(x)?)?;
        let q = split_heads(&qkv.narrow(1, 0, d)?, self.heads)?;
        let mut k = split_heads(&qkv.narrow(1, d, d)?, self.heads)?;
        let mut v = split_heads(&qkv.narrow(1, 2 * d, d)?, self.heads)?;
        let causal = match cache {
            None => None,
            Some(slot) => {
                let offset = slot.as_ref().map_or(0, |(k, _)| k.dim(1).unwrap_or(0));
                if let Some((pk, pv)) = slot.as_ref() {
                    k = Tensor::cat(&[pk, &k], 1)?;
                    v = Tensor::cat(&[pv, &v], 1)?;
                }
                *slot = Some((k.clone(), v.clone()));
                Some(offset)
            }
        };
        let h = attend(&q, &k, &v, causal)?;
        Ok((x + self.out.forward(&h)?)?)
    }
}

struct CrossAttention {
    norm: Norm,
    q: Linear,
    kv: Linear,
    out: Linear,
    heads: usize,
}

impl CrossAttention {
    fn load(w: &Weights, prefix: &str, heads: usize) -> Result<CrossAttention> {
        Ok(CrossAttention {
            norm: w.norm(&format!("{prefix}.layer_norm"))?,
            q: w.linear(&format!("{prefix}.linear_0"))?,
            kv: w.linear(&format!("{prefix}.linear_1"))?,
            out: w.linear(&format!("{prefix}.linear_2"))?,
            heads,
        })
    }

    /// The keys and values of one window's audio features, computed once per window.
    fn keys_values(&self, audio: &Tensor) -> Result<(Tensor, Tensor)> {
        let d = audio.dim(1)?;
        let kv = self.kv.forward(audio)?;
        Ok((split_heads(&kv.narrow(1, 0, d)?, self.heads)?, split_heads(&kv.narrow(1, d, d)?, self.heads)?))
    }

    fn residual(&self, x: &Tensor, kv: &(Tensor, Tensor)) -> Result<Tensor> {
        let q = split_heads(&self.q.forward(&self.norm.forward(x)?)?, self.heads)?;
        let h = attend(&q, &kv.0, &kv.1, None)?;
        Ok((x + self.out.forward(&h)?)?)
    }
}

struct EncoderLayer {
    attn: SelfAttention,
    mlp: Mlp,
}

struct DecoderLayer {
    attn: SelfAttention,
    cross: CrossAttention,
    mlp: Mlp,
}

pub struct Whisper {
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    audio_pos: Tensor,
    encoder: Vec<EncoderLayer>,
    encoder_norm: Norm,
    embed: Tensor,
    text_pos: Tensor,
    decoder: Vec<DecoderLayer>,
    decoder_norm: Norm,
    pub config: ModelConfig,
}

/// One window's decoding state: the audio's cross-attention keys and values per layer and
/// the self-attention cache of the tokens so far.
pub struct Session {
    cross: Vec<(Tensor, Tensor)>,
    cache: Vec<Option<(Tensor, Tensor)>>,
    position: usize,
}

impl Whisper {
    pub fn load(weights: HashMap<String, Tensor>, config: ModelConfig) -> Result<Whisper> {
        let w = Weights(weights);
        let conv = |p: &str| -> Result<(Tensor, Tensor)> { Ok((w.get(&format!("{p}.weight"))?, w.get(&format!("{p}.bias"))?)) };
        let encoder = (0..config.encoder_layers)
            .map(|i| {
                let p = format!("encoder.layer_{i}");
                Ok(EncoderLayer {
                    attn: SelfAttention::load(&w, &format!("{p}.self_attention"), config.encoder_heads)?,
                    mlp: Mlp::load(&w, &format!("{p}.ffn"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let decoder = (0..config.decoder_layers)
            .map(|i| {
                let p = format!("decoder.layer_{i}");
                Ok(DecoderLayer {
                    attn: SelfAttention::load(&w, &format!("{p}.self_attention"), config.decoder_heads)?,
                    cross: CrossAttention::load(&w, &format!("{p}.attention"), config.decoder_heads)?,
                    mlp: Mlp::load(&w, &format!("{p}.ffn"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Whisper {
            conv1: conv("encoder.conv1")?,
            conv2: conv("encoder.conv2")?,
            audio_pos: w.get("encoder.position_encodings.encodings")?,
            encoder,
            encoder_norm: w.norm("encoder.layer_norm")?,
            embed: w.get("decoder.embeddings.weight")?,
            text_pos: w.get("decoder.position_encodings.encodings")?,
            decoder,
            decoder_norm: w.norm("decoder.layer_norm")?,
            config,
        })
    }

    /// Encodes one window's mel frames (`n_mels` × 3000, row-major) and prepares its decoding.
    pub fn start(&self, mel: &[f32]) -> Result<Session> {
        let n_mels = self.config.n_mels;
        let frames = mel.len() / n_mels;
        let x = Tensor::from_slice(mel, (1, n_mels, frames), &Device::Cpu)?;
        let conv = |x: &Tensor, (w, b): &(Tensor, Tensor), stride: usize| -> Result<Tensor> {
            let y = x.conv1d(w, 1, stride, 1, 1)?;
            Ok(y.broadcast_add(&b.reshape((1, b.dim(0)?, 1))?)?.gelu_erf()?)
        };
        let x = conv(&conv(&x, &self.conv1, 1)?, &self.conv2, 2)?; // [1, d, 1500]
        let x = x.squeeze(0)?.t()?.contiguous()?; // [1500, d]
        let positions = x.dim(0)?;
        let mut x = (x + self.audio_pos.narrow(0, 0, positions)?)?;
        for layer in &self.encoder {
            x = layer.attn.residual(&x, None)?;
            x = layer.mlp.residual(&x)?;
        }
        let audio = self.encoder_norm.forward(&x)?;
        let cross = self.decoder.iter().map(|l| l.cross.keys_values(&audio)).collect::<Result<Vec<_>>>()?;
        Ok(Session { cross, cache: vec![None; self.decoder.len()], position: 0 })
    }

    /// Feeds `tokens` (the prompt, then one token per step) and returns the logits that
    /// follow the last of them.
    pub fn step(&self, session: &mut Session, tokens: &[u32]) -> Result<Vec<f32>> {
        if session.position + tokens.len() > self.config.text_ctx {
            return Err(AsrError::Model("the window's text is longer than the model's context".into()));
        }
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let mut x = (self.embed.index_select(&ids, 0)? + self.text_pos.narrow(0, session.position, tokens.len())?)?;
        for (i, layer) in self.decoder.iter().enumerate() {
            x = layer.attn.residual(&x, Some(&mut session.cache[i]))?;
            x = layer.cross.residual(&x, &session.cross[i])?;
            x = layer.mlp.residual(&x)?;
        }
        session.position += tokens.len();
        let last = self.decoder_norm.forward(&x.narrow(0, tokens.len() - 1, 1)?)?;
        let logits = last.matmul(&self.embed.t()?)?.squeeze(0)?;
        Ok(logits.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }
}

/// `log_softmax` of a logit row, in place.
pub fn log_softmax(logits: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    let log_sum = max + sum.ln();
    for l in logits.iter_mut() {
        *l -= log_sum;
    }
}
