//! The Whisper network: the encoder on candle (large matrix products), the decoder one
//! token at a time in plain Rust (`step`), keeping each layer's self-attention keys and
//! values (a KV cache) and the cross-attention keys and values of the current window, so a
//! step costs one token's work instead of re-running the whole prefix. Weights are the
//! converted CTranslate2 tensors (fused q/k/v projections are used fused).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module};

use crate::step::{self, Dense, Keys};
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
    fn vec(&self, name: &str) -> Result<Vec<f32>> {
        Ok(self.get(name)?.flatten_all()?.to_vec1::<f32>()?)
    }
    fn dense(&self, prefix: &str) -> Result<Dense> {
        let w = self.get(&format!("{prefix}.weight"))?;
        let inp = w.dim(1)?;
        Dense::new(w.flatten_all()?.to_vec1::<f32>()?, self.vec(&format!("{prefix}.bias"))?, inp)
    }
    fn plain_norm(&self, prefix: &str) -> Result<step::Norm> {
        Ok(step::Norm { gamma: self.vec(&format!("{prefix}.gamma"))?, beta: self.vec(&format!("{prefix}.beta"))? })
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
        let h = gelu(&self.fc1.forward(&self.norm.forward(x)?)?)?;
        Ok((x + self.fc2.forward(&h)?)?)
    }
}

/// Exact GELU over a large activation, split across the cores (candle's own runs one
/// element at a time and took half the encoder's MLP time).
fn gelu(x: &Tensor) -> Result<Tensor> {
    let shape = x.shape().clone();
    let mut values = x.flatten_all()?.to_vec1::<f32>()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let chunk = values.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for part in values.chunks_mut(chunk) {
            s.spawn(move || part.iter_mut().for_each(|v| *v = step::gelu(*v)));
        }
    });
    Ok(Tensor::from_vec(values, shape, x.device())?)
}

/// `[T, d]` → `[heads, T, d/heads]`.
fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (t, d) = x.dims2()?;
    Ok(x.reshape((t, heads, d / heads))?.transpose(0, 1)?.contiguous()?)
}

/// Scaled dot-product attention of `q` `[h, T, dh]` over `k`, `v` `[h, S, dh]`.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let (heads, t, dh) = q.dims3()?;
    // Scaled before the product: a pass over q, not over the T×S scores.
    let scores = (q * (1.0 / (dh as f64).sqrt()))?.matmul(&k.t()?)?;
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

    /// `x + attention(norm(x))` over the whole sequence (the encoder's).
    fn residual(&self, x: &Tensor) -> Result<Tensor> {
        let d = x.dim(1)?;
        let qkv = self.qkv.forward(&self.norm.forward(x)?)?;
        let q = split_heads(&qkv.narrow(1, 0, d)?, self.heads)?;
        let k = split_heads(&qkv.narrow(1, d, d)?, self.heads)?;
        let v = split_heads(&qkv.narrow(1, 2 * d, d)?, self.heads)?;
        let h = attend(&q, &k, &v)?;
        Ok((x + self.out.forward(&h)?)?)
    }
}

/// The cross-attention keys and values of one decoder layer, projected from a window's
/// audio features (a large product, so on candle).
struct CrossKeys {
    kv: Linear,
}

impl CrossKeys {
    fn keys(&self, audio: &Tensor) -> Result<Keys> {
        let d = audio.dim(1)?;
        let kv = self.kv.forward(audio)?;
        let flat = |t: Tensor| -> Result<Vec<f32>> { Ok(t.contiguous()?.flatten_all()?.to_vec1::<f32>()?) };
        Ok(Keys { k: flat(kv.narrow(1, 0, d)?)?, v: flat(kv.narrow(1, d, d)?)? })
    }
}

struct EncoderLayer {
    attn: SelfAttention,
    mlp: Mlp,
}

pub struct Whisper {
    conv1: (Tensor, Tensor),
    conv2: (Tensor, Tensor),
    audio_pos: Tensor,
    encoder: Vec<EncoderLayer>,
    encoder_norm: Norm,
    cross_keys: Vec<CrossKeys>,
    decoder: step::Decoder,
    pub config: ModelConfig,
}

/// One window's decoding state: the audio's cross-attention keys and values per layer and
/// the self-attention cache of the tokens so far.
pub struct Session {
    cross: Vec<Keys>,
    cache: Vec<Keys>,
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
        let mut layers = Vec::new();
        let mut cross_keys = Vec::new();
        for i in 0..config.decoder_layers {
            let p = format!("decoder.layer_{i}");
            layers.push(step::Layer {
                self_norm: w.plain_norm(&format!("{p}.self_attention.layer_norm"))?,
                qkv: w.dense(&format!("{p}.self_attention.linear_0"))?,
                self_out: w.dense(&format!("{p}.self_attention.linear_1"))?,
                cross_norm: w.plain_norm(&format!("{p}.attention.layer_norm"))?,
                cross_q: w.dense(&format!("{p}.attention.linear_0"))?,
                cross_out: w.dense(&format!("{p}.attention.linear_2"))?,
                mlp_norm: w.plain_norm(&format!("{p}.ffn.layer_norm"))?,
                fc1: w.dense(&format!("{p}.ffn.linear_0"))?,
                fc2: w.dense(&format!("{p}.ffn.linear_1"))?,
            });
            cross_keys.push(CrossKeys { kv: w.linear(&format!("{p}.attention.linear_1"))? });
        }
        let decoder = step::Decoder {
            layers,
            norm: w.plain_norm("decoder.layer_norm")?,
            embed: w.vec("decoder.embeddings.weight")?,
            positions: w.vec("decoder.position_encodings.encodings")?,
            d: config.d_model,
            heads: config.decoder_heads,
        };
        Ok(Whisper {
            conv1: conv("encoder.conv1")?,
            conv2: conv("encoder.conv2")?,
            audio_pos: w.get("encoder.position_encodings.encodings")?,
            encoder,
            encoder_norm: w.norm("encoder.layer_norm")?,
            cross_keys,
            decoder,
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
            x = layer.attn.residual(&x)?;
            x = layer.mlp.residual(&x)?;
        }
        let audio = self.encoder_norm.forward(&x)?;
        let cross = self.cross_keys.iter().map(|c| c.keys(&audio)).collect::<Result<Vec<_>>>()?;
        Ok(Session { cross, cache: vec![Keys::default(); self.cross_keys.len()], position: 0 })
    }

    /// Feeds one token (the prompt's, then each sampled one) and returns the logits of the
    /// token that follows.
    pub fn step(&self, session: &mut Session, token: u32) -> Result<Vec<f32>> {
        if session.position >= self.config.text_ctx {
            return Err(AsrError::Model("the window's text is longer than the model's context".into()));
        }
        let logits = self.decoder.step(token, session.position, &session.cross, &mut session.cache)?;
        session.position += 1;
        Ok(logits)
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
