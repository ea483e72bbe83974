//! Creator baselines: how a post is predicted to do against the creator's own median, from
//! what their past posts did (outcomes), and how well past predictions ranked them — the
//! question creators ask ("will this beat my usual?"), answered from their data, with the
//! sample size, and only once there is enough of it.
//!
//! A past post counts once, by its latest observation with views (the most mature reading).
//! Views are compared on a log scale; the expected change is a least-squares fit of log views
//! on score across the creator's posts, its slope shrunk towards zero while the sample is small
//! (so a handful of posts cannot promise much), with a middle-50% band from the fit's residuals.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;
use crate::model::{Job, Platform};
use crate::service::App;

/// Past posts with views a baseline needs.
pub const BASELINE_MIN_POSTS: usize = 5;
/// The most recent posts a baseline reads.
pub const BASELINE_MAX_POSTS: u32 = 500;
/// Pseudo-posts of "no relationship" the slope is shrunk with.
const SLOPE_PRIOR_POSTS: f64 = 10.0;
/// The middle 50% of a normal distribution lies within this many deviations.
const IQR_Z: f64 = 0.674_489_75;

/// One past prediction and what its post did.
#[derive(Debug, Clone, PartialEq)]
pub struct PastResult {
    pub job_id: Uuid,
    pub score: f64,
    pub views: u64,
    pub observed_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// Pairs of past posts with different scores.
    pub pairs: usize,
    /// Share of those pairs where the higher score got more views.
    pub pairwise_accuracy: Option<f64>,
    /// Spearman's rank correlation of score and views.
    pub rank_correlation: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CreatorBaseline {
    /// The platform the baseline is of (the job's `platform_hint`); null: every platform.
    pub platform: Option<Platform>,
    pub sample_size: usize,
    /// Needed before a prediction is made from the baseline.
    pub needed: usize,
    pub median_views: Option<f64>,
    /// Expected views of this post over the creator's median (1.0: in line with it).
    pub predicted_vs_median: Option<f64>,
    /// The middle 50% of what such a post of theirs did, over the median.
    pub predicted_vs_median_band: Option<[f64; 2]>,
    /// Share of their past posts this one outscores.
    pub percentile_among_past: Option<f64>,
    /// How well past scores ranked their posts.
    pub calibration: Calibration,
    pub basis: &'static str,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// Average ranks (ties share their mean rank).
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        for k in i..=j {
            ranks[order[k]] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    ranks
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

pub fn calibration(past: &[PastResult]) -> Calibration {
    let (mut pairs, mut right) = (0usize, 0.0f64);
    for (i, a) in past.iter().enumerate() {
        for b in &past[i + 1..] {
            if a.score == b.score {
                continue;
            }
            pairs += 1;
            let (hi, lo) = if a.score > b.score { (a, b) } else { (b, a) };
            right += match hi.views.cmp(&lo.views) {
                std::cmp::Ordering::Greater => 1.0,
                std::cmp::Ordering::Equal => 0.5,
                std::cmp::Ordering::Less => 0.0,
            };
        }
    }
    let scores: Vec<f64> = past.iter().map(|p| p.score).collect();
    let views: Vec<f64> = past.iter().map(|p| p.views as f64).collect();
    Calibration {
        pairs,
        pairwise_accuracy: (pairs > 0).then(|| right / pairs as f64),
        rank_correlation: if past.len() >= 3 { pearson(&ranks(&scores), &ranks(&views)) } else { None },
    }
}

/// The baseline of `past` for a post scoring `score`.
pub fn baseline(platform: Option<Platform>, score: f64, past: &[PastResult]) -> CreatorBaseline {
    let n = past.len();
    let mut out = CreatorBaseline {
        platform,
        sample_size: n,
        needed: BASELINE_MIN_POSTS,
        median_views: None,
        predicted_vs_median: None,
        predicted_vs_median_band: None,
        percentile_among_past: None,
        calibration: calibration(past),
        basis: "your past posts' latest view counts on this platform (one reading each, the most mature), compared on a log \
                scale; the change is a least-squares fit of log views on score over those posts, shrunk towards none while \
                there are few; the band is the middle 50% of how such posts of yours did",
    };
    if n < BASELINE_MIN_POSTS {
        return out;
    }
    let logs: Vec<f64> = past.iter().map(|p| (p.views as f64 + 1.0).ln()).collect();
    let scores: Vec<f64> = past.iter().map(|p| p.score).collect();
    let mut sorted = logs.clone();
    sorted.sort_by(f64::total_cmp);
    let median_log = median(&sorted);
    let (ms, my) = (scores.iter().sum::<f64>() / n as f64, logs.iter().sum::<f64>() / n as f64);
    let sxx: f64 = scores.iter().map(|s| (s - ms).powi(2)).sum();
    let sxy: f64 = scores.iter().zip(&logs).map(|(s, y)| (s - ms) * (y - my)).sum();
    let slope = if sxx > 0.0 { sxy / sxx * n as f64 / (n as f64 + SLOPE_PRIOR_POSTS) } else { 0.0 };
    let residual =
        (scores.iter().zip(&logs).map(|(s, y)| (y - my - slope * (s - ms)).powi(2)).sum::<f64>() / (n as f64 - 1.0).max(1.0)).sqrt();
    let predicted = my + slope * (score - ms) - median_log;
    let round = |x: f64| (x * 100.0).round() / 100.0;
    out.median_views = Some((median_log.exp() - 1.0).max(0.0).round());
    out.predicted_vs_median = Some(round(predicted.exp()));
    out.predicted_vs_median_band = Some([round((predicted - IQR_Z * residual).exp()), round((predicted + IQR_Z * residual).exp())]);
    out.percentile_among_past = Some(round(
        scores
            .iter()
            .map(|s| {
                if *s < score {
                    1.0
                } else if *s == score {
                    0.5
                } else {
                    0.0
                }
            })
            .sum::<f64>()
            / n as f64,
    ));
    out
}

impl App {
    /// The creator baseline for a complete job: from the owner's other jobs' outcomes on the
    /// job's platform (every platform when it named none).
    pub async fn creator_baseline(&self, job: &Job) -> Result<Option<CreatorBaseline>> {
        let Some(score) = job.score else { return Ok(None) };
        let platform = self.store.submission(job.submission_id).await?.and_then(|s| s.platform_hint);
        let past = self.store.past_results(job.user_id, platform, job.id, BASELINE_MAX_POSTS).await?;
        Ok(Some(baseline(platform, score, &past)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn past(points: &[(f64, u64)]) -> Vec<PastResult> {
        points
            .iter()
            .map(|(score, views)| PastResult { job_id: Uuid::now_v7(), score: *score, views: *views, observed_at: crate::model::now() })
            .collect()
    }

    #[test]
    fn too_few_posts_promise_nothing() {
        let b = baseline(Some(Platform::Tiktok), 80.0, &past(&[(40.0, 100), (60.0, 300)]));
        assert_eq!((b.sample_size, b.needed, b.predicted_vs_median), (2, 5, None));
        assert_eq!(b.calibration.pairs, 1);
    }

    #[test]
    fn a_creator_whose_scores_track_views_gets_a_lift_above_median() {
        let points: Vec<(f64, u64)> = (0..40).map(|i| (20.0 + i as f64 * 2.0, (200.0 * (1.04f64).powi(i * 2)) as u64)).collect();
        let b = baseline(None, 99.0, &past(&points));
        assert_eq!(b.calibration.pairwise_accuracy, Some(1.0));
        assert!(b.calibration.rank_correlation.unwrap() > 0.99);
        let lift = b.predicted_vs_median.unwrap();
        assert!(lift > 2.0, "{b:?}");
        let [lo, hi] = b.predicted_vs_median_band.unwrap();
        assert!(lo <= lift && lift <= hi);
        assert_eq!(b.percentile_among_past, Some(1.0));
        let low = baseline(None, 20.0, &past(&points)).predicted_vs_median.unwrap();
        assert!(low < 0.6, "{low}");
    }

    #[test]
    fn no_relationship_means_in_line_with_the_median() {
        let points: Vec<(f64, u64)> = (0..30).map(|i| (((i * 37) % 100) as f64, 1_000 + ((i * 53) % 7) as u64 * 10)).collect();
        let b = baseline(None, 99.0, &past(&points));
        let lift = b.predicted_vs_median.unwrap();
        assert!((0.95..=1.05).contains(&lift), "{b:?}");
    }
}
