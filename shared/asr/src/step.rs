//! One decoder step in plain Rust: a single token through the decoder is a chain of
//! matrix-vector products, where a general tensor library spends more time dispatching small
//! operations than computing (about 21 ms a token, against about 3 here). The encoder, which
//! is large matrix products, stays on candle.

use crate::AsrError;

/// A dense layer: `out` rows of `inp` weights, row-major, and a bias per row.
pub(crate) struct Dense {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub inp: usize,
}

impl Dense {
    pub fn new(w: Vec<f32>, b: Vec<f32>, inp: usize) -> Result<Dense, AsrError> {
        if inp == 0 || w.len() != b.len() * inp {
            return Err(AsrError::Model(format!("a {}-row layer has {} weights for {inp} inputs", b.len(), w.len())));
        }
        Ok(Dense { w, b, inp })
    }

    fn apply(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.w.chunks_exact(self.inp).zip(&self.b).map(|(row, b)| dot(row, x) + b));
    }
}

/// A dot product the compiler vectorises: eight independent partial sums.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

pub(crate) struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

impl Norm {
    fn apply(&self, x: &[f32], out: &mut Vec<f32>) {
        let n = x.len() as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + 1e-5).sqrt();
        out.clear();
        out.extend(x.iter().zip(self.gamma.iter().zip(&self.beta)).map(|(v, (g, b))| (v - mean) * inv * g + b));
    }
}

/// The error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7), for exact GELU.
fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0 - (((((1.061_405_4 * t - 1.453_152_1) * t) + 1.421_413_7) * t - 0.284_496_74) * t + 0.254_829_6) * t * (-x * x).exp();
    if x >= 0.0 { y } else { -y }
}

pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

pub(crate) struct Layer {
    pub self_norm: Norm,
    pub qkv: Dense,
    pub self_out: Dense,
    pub cross_norm: Norm,
    pub cross_q: Dense,
    pub cross_out: Dense,
    pub mlp_norm: Norm,
    pub fc1: Dense,
    pub fc2: Dense,
}

pub(crate) struct Decoder {
    pub layers: Vec<Layer>,
    pub norm: Norm,
    /// Token embedding, `vocab` rows of `d`; also the output projection.
    pub embed: Vec<f32>,
    /// Learned positions, `text_ctx` rows of `d`.
    pub positions: Vec<f32>,
    pub d: usize,
    pub heads: usize,
}

/// A window's keys and values for one layer: `len` rows of `d` each (heads side by side).
#[derive(Default, Clone)]
pub(crate) struct Keys {
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

/// `out[h]` = softmax(q_h · k_h / √dh) · v_h for every head, over `keys`.
fn attend(q: &[f32], keys: &Keys, d: usize, heads: usize, scores: &mut Vec<f32>, out: &mut Vec<f32>) {
    let dh = d / heads;
    let len = keys.k.len() / d;
    let scale = 1.0 / (dh as f32).sqrt();
    out.clear();
    out.resize(d, 0.0);
    for h in 0..heads {
        let qh = &q[h * dh..(h + 1) * dh];
        scores.clear();
        scores.extend((0..len).map(|j| dot(qh, &keys.k[j * d + h * dh..j * d + (h + 1) * dh]) * scale));
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for s in scores.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        let oh = &mut out[h * dh..(h + 1) * dh];
        for (j, w) in scores.iter().enumerate() {
            let vj = &keys.v[j * d + h * dh..j * d + (h + 1) * dh];
            let w = w / sum;
            for (o, v) in oh.iter_mut().zip(vj) {
                *o += w * v;
            }
        }
    }
}

impl Decoder {
    /// Runs `token` at `position` through every layer, appending to the self-attention
    /// caches, and returns the logits of the next token.
    pub fn step(&self, token: u32, position: usize, cross: &[Keys], cache: &mut [Keys]) -> Result<Vec<f32>, AsrError> {
        let d = self.d;
        let (t, p) = (token as usize, position);
        if (t + 1) * d > self.embed.len() || (p + 1) * d > self.positions.len() {
            return Err(AsrError::Model(format!("token {token} at {position} is outside the model")));
        }
        let mut x: Vec<f32> = self.embed[t * d..(t + 1) * d].iter().zip(&self.positions[p * d..(p + 1) * d]).map(|(e, q)| e + q).collect();
        let (mut h, mut y, mut a, mut scores) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, l) in self.layers.iter().enumerate() {
            l.self_norm.apply(&x, &mut h);
            l.qkv.apply(&h, &mut y);
            cache[i].k.extend_from_slice(&y[d..2 * d]);
            cache[i].v.extend_from_slice(&y[2 * d..3 * d]);
            attend(&y[..d], &cache[i], d, self.heads, &mut scores, &mut a);
            l.self_out.apply(&a, &mut y);
            x.iter_mut().zip(&y).for_each(|(x, y)| *x += y);

            l.cross_norm.apply(&x, &mut h);
            l.cross_q.apply(&h, &mut y);
            attend(&y, &cross[i], d, self.heads, &mut scores, &mut a);
            l.cross_out.apply(&a, &mut y);
            x.iter_mut().zip(&y).for_each(|(x, y)| *x += y);

            l.mlp_norm.apply(&x, &mut h);
            l.fc1.apply(&h, &mut y);
            y.iter_mut().for_each(|v| *v = gelu(*v));
            l.fc2.apply(&y, &mut a);
            x.iter_mut().zip(&a).for_each(|(x, a)| *x += a);
        }
        self.norm.apply(&x, &mut h);
        Ok(self.logits(&h))
    }

    /// `embed · h` over the whole vocabulary, split across the cores (the largest product
    /// of a step, 20 M multiply-adds).
    fn logits(&self, h: &[f32]) -> Vec<f32> {
        let d = self.d;
        let vocab = self.embed.len() / d;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        let rows = vocab.div_ceil(threads);
        let mut out = vec![0f32; vocab];
        std::thread::scope(|s| {
            for (chunk, dst) in self.embed.chunks(rows * d).zip(out.chunks_mut(rows)) {
                s.spawn(move || {
                    for (row, o) in chunk.chunks_exact(d).zip(dst.iter_mut()) {
                        *o = dot(row, h);
                    }
                });
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_and_dot_are_accurate() {
        for (x, want) in [(0.0f32, 0.0f32), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (-2.0, -0.995_322_3)] {
            assert!((erf(x) - want).abs() < 1e-6, "erf({x}) = {}", erf(x));
        }
        let a: Vec<f32> = (0..19).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..19).map(|i| (i * i) as f32).sum::<f32>());
    }
}
