//! The six checks. Each takes what it needs (a chain, or only θ₀) and
//! returns a [`CheckResult`] that passes when `value ≤ threshold`.

use funetun_core::{Tensor, TensorSet};
use funetun_ml::rng::Rng;
use funetun_ml::{Compute, Dataset, Model, evaluate};

use super::stats::{self, KsTest};
use super::{
    ACCURACY_MONOTONIC, Chain, CheckResult, DISTANCE_TO_FINAL, INIT_TO_FINAL, INITIAL_DISTRIBUTION,
    INITIAL_INDEPENDENCE, PARAMETER_CONTINUITY, ProofConfig, Result, VAL_LOSS_MONOTONIC,
};
use funetun_ml::Architecture as _;
use funetun_ml::model::transformer::{InitRule, init_rule};

/// Fewest element pairs (or row/column pairs) a correlation test uses.
const MIN_PAIRS: usize = 30;

/// Test accuracy of every checkpoint on `eval_samples` test samples spread
/// evenly over the test split (all of it for 0 or more than the split).
pub fn test_accuracies(
    chain: &Chain,
    data: &Dataset,
    compute: &Compute,
    eval_samples: usize,
) -> Result<Vec<f64>> {
    let len = data.test.len();
    let indices: Vec<u32> = if eval_samples == 0 || eval_samples >= len {
        (0..len as u32).collect()
    } else {
        (0..eval_samples)
            .map(|i| (i * len / eval_samples) as u32)
            .collect()
    };
    Ok(test_metrics(chain, data, compute, &indices)?
        .iter()
        .map(|e| e.accuracy)
        .collect())
}

/// Validation loss of every checkpoint of a text model on `eval_samples`
/// non-overlapping context windows spread evenly over the validation split
/// (all of them for 0 or more than there are).
pub fn validation_losses(
    chain: &Chain,
    data: &Dataset,
    compute: &Compute,
    eval_samples: usize,
) -> Result<Vec<f64>> {
    let context = chain.model().transformer().map_or(1, |c| c.context);
    let windows = funetun_ml::data::text::windows(data.test.len(), context) / context;
    let starts: Vec<u32> = if eval_samples == 0 || eval_samples >= windows {
        (0..windows).map(|w| (w * context) as u32).collect()
    } else {
        (0..eval_samples)
            .map(|i| ((i * windows / eval_samples) * context) as u32)
            .collect()
    };
    Ok(test_metrics(chain, data, compute, &starts)?
        .iter()
        .map(|e| e.loss)
        .collect())
}

/// Every checkpoint of `chain` evaluated on the samples `indices` of the
/// test split.
fn test_metrics(
    chain: &Chain,
    data: &Dataset,
    compute: &Compute,
    indices: &[u32],
) -> Result<Vec<funetun_ml::Evaluation>> {
    chain
        .checkpoints()
        .iter()
        .map(|c| {
            Ok(evaluate(
                chain.model(),
                &c.to_flat(),
                data,
                &data.test,
                Some(indices),
                compute,
            )?)
        })
        .collect()
}

/// Check 1 for text models: the largest rise of validation loss above the
/// best (lowest) earlier checkpoint.
pub fn val_loss_monotonic(losses: &[f64], config: &ProofConfig) -> CheckResult {
    let words = Setback {
        name: VAL_LOSS_MONOTONIC,
        moved: "rise",
        relation: "above",
        never: "never rises",
        series: "validation loss",
    };
    let negated: Vec<f64> = losses.iter().map(|l| -l).collect();
    largest_setback(&negated, losses, config.loss_tolerance, &words)
}

/// Check 1: the largest drop of accuracy below the best earlier checkpoint.
pub fn accuracy_monotonic(accuracies: &[f64], config: &ProofConfig) -> CheckResult {
    let words = Setback {
        name: ACCURACY_MONOTONIC,
        moved: "drop",
        relation: "below",
        never: "never drops",
        series: "accuracy",
    };
    largest_setback(accuracies, accuracies, config.accuracy_tolerance, &words)
}

/// How check 1's detail reads for one metric.
struct Setback {
    name: &'static str,
    moved: &'static str,
    relation: &'static str,
    never: &'static str,
    series: &'static str,
}

/// The largest fall of `scores` (higher is better) below the best earlier
/// one, as a check against `tolerance`; `shown` are the values as printed.
fn largest_setback(scores: &[f64], shown: &[f64], tolerance: f64, w: &Setback) -> CheckResult {
    let mut best = (0usize, f64::NEG_INFINITY);
    let mut worst = (0.0f64, 0usize, 0usize);
    for (i, &a) in scores.iter().enumerate() {
        if i > 0 && best.1 - a > worst.0 {
            worst = (best.1 - a, i, best.0);
        }
        if a > best.1 {
            best = (i, a);
        }
    }
    let list = shown
        .iter()
        .map(|a| format!("{a:.4}"))
        .collect::<Vec<_>>()
        .join(" ");
    let detail = if worst.0 > 0.0 {
        format!(
            "largest {} at round {} ({:.4}) {} round {} ({:.4}); {} by round: {list}",
            w.moved, worst.1, shown[worst.1], w.relation, worst.2, shown[worst.2], w.series
        )
    } else {
        format!("{}; {} by round: {list}", w.never, w.series)
    };
    CheckResult::new(w.name, worst.0, tolerance, detail)
}

fn norm(data: &[f32]) -> f64 {
    data.iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt()
}

fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = f64::from(x) - f64::from(y);
            d * d
        })
        .sum::<f64>()
        .sqrt()
}

fn set_distance(a: &TensorSet, b: &TensorSet) -> f64 {
    a.iter()
        .zip(b.iter())
        .map(|((_, x), (_, y))| distance(&x.data, &y.data).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Infinite ratios (a zero denominator) as the largest finite number, so
/// they stay numbers in JSON.
fn finite(v: f64) -> f64 {
    if v.is_nan() {
        f64::MAX
    } else {
        v.min(f64::MAX)
    }
}

/// The layer a parameter belongs to: its name up to the last dot
/// (`fc1.weight` and `fc1.bias` are layer `fc1`).
pub fn layer_of(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(layer, _)| layer)
}

/// Per-layer `(layer, ‖b^L − a^L‖, ‖a^L‖, ‖b^L‖)`, layers in name order.
fn layer_steps(a: &TensorSet, b: &TensorSet) -> Vec<(String, f64, f64, f64)> {
    let mut out: Vec<(String, f64, f64, f64)> = Vec::new();
    for ((name, x), (_, y)) in a.iter().zip(b.iter()) {
        let layer = layer_of(name);
        if out.last().is_none_or(|l| l.0 != layer) {
            out.push((layer.to_string(), 0.0, 0.0, 0.0));
        }
        if let Some(l) = out.last_mut() {
            l.1 += distance(&x.data, &y.data).powi(2);
            l.2 += norm(&x.data).powi(2);
            l.3 += norm(&y.data).powi(2);
        }
    }
    for l in &mut out {
        (l.1, l.2, l.3) = (l.1.sqrt(), l.2.sqrt(), l.3.sqrt());
    }
    out
}

/// Check 2: the largest per-layer `‖C_{i+1}^L − C_i^L‖ / max(‖C_i^L‖,
/// ‖C_{i+1}^L‖)` over adjacent checkpoints and layers L (a layer's weight
/// and bias together).
///
/// Relative to the larger of the two norms, an honest step stays below 1
/// even when a layer grows from a small initialization, while a checkpoint
/// of an unrelated run sits at about √2 (two independent vectors of similar
/// norm).
pub fn parameter_continuity(chain: &Chain, config: &ProofConfig) -> CheckResult {
    let mut worst = (0.0f64, 0usize, String::new());
    for (i, pair) in chain.checkpoints().windows(2).enumerate() {
        for (layer, d, na, nb) in layer_steps(&pair[0], &pair[1]) {
            let rel = if d == 0.0 {
                0.0
            } else {
                finite(d / na.max(nb))
            };
            if rel > worst.0 || worst.2.is_empty() {
                worst = (rel, i, layer);
            }
        }
    }
    let detail = format!(
        "largest step: layer `{}` from round {} to {}",
        worst.2,
        worst.1,
        worst.1 + 1
    );
    CheckResult::new(
        PARAMETER_CONTINUITY,
        worst.0,
        config.continuity_delta,
        detail,
    )
}

/// Per-layer KS tests of θ₀ against its initializer, in name order: image
/// models' Uniform(±1/√fan_in); transformers' N(0, σ) of each weight
/// (nanoGPT's rule; norm gains and biases start constant and are not
/// fitted).
pub fn initial_fit(model: Model, theta0: &TensorSet) -> Vec<(String, KsTest)> {
    theta0
        .iter()
        .filter_map(|(name, t)| {
            let ks = match model.transformer() {
                None => {
                    let bound = 1.0 / (model.fan_in(name) as f64).sqrt();
                    stats::ks_uniform(&t.data, bound)
                }
                Some(c) => match init_rule(name, c.n_layer) {
                    InitRule::Normal(std) => stats::ks_normal(&t.data, f64::from(std)),
                    InitRule::Constant(_) => None,
                },
            };
            ks.map(|ks| (name.to_string(), ks))
        })
        .collect()
}

/// Check 3: θ₀ against the declared initializer.
///
/// With `init_seed`, θ₀ must be bit-identical to `model.init(seed)`; the
/// value is the share of values that differ (threshold 0), and the per-layer
/// goodness of fit is reported alongside. Without a seed, the value is the
/// largest per-layer Kolmogorov–Smirnov λ against Uniform(±1/√fan_in) and the
/// threshold the λ whose p-value is `alpha / layers`.
pub fn initial_distribution(
    model: Model,
    theta0: &TensorSet,
    init_seed: Option<u64>,
    config: &ProofConfig,
) -> CheckResult {
    let fits = initial_fit(model, theta0);
    let critical = stats::kolmogorov_quantile(config.alpha / fits.len().max(1) as f64);
    let fit_text = fits
        .iter()
        .map(|(name, ks)| format!("{name} λ={:.2}", ks.lambda))
        .collect::<Vec<_>>()
        .join(", ");
    match init_seed {
        Some(seed) => {
            let expected = model.init(seed);
            let total = expected.num_params().max(1);
            let differing: usize = expected
                .iter()
                .zip(theta0.iter())
                .map(|((_, e), (_, t))| {
                    e.data
                        .iter()
                        .zip(&t.data)
                        .filter(|(x, y)| x.to_bits() != y.to_bits())
                        .count()
                })
                .sum();
            let head = if differing == 0 {
                format!("θ₀ is bit-identical to {model} init(seed {seed})")
            } else {
                format!("{differing} of {total} values of θ₀ differ from {model} init(seed {seed})")
            };
            CheckResult::new(
                INITIAL_DISTRIBUTION,
                differing as f64 / total as f64,
                0.0,
                format!("{head}; KS fit to the initializer: {fit_text} (critical {critical:.2})"),
            )
        }
        None => {
            let worst = fits.iter().max_by(|a, b| a.1.lambda.total_cmp(&b.1.lambda));
            let (value, head) = match worst {
                Some((name, ks)) => (
                    ks.lambda,
                    format!(
                        "no seed declared, goodness of fit only; worst `{name}` p={:.2e}",
                        ks.p
                    ),
                ),
                None => (0.0, "no seed declared and nothing to fit".to_string()),
            };
            CheckResult::new(
                INITIAL_DISTRIBUTION,
                value,
                critical,
                format!("{head}; KS λ per layer: {fit_text}"),
            )
        }
    }
}

/// One correlation test of check 4, as a standard normal deviate under
/// independence.
#[derive(Clone, Debug, PartialEq)]
pub struct IndependenceTest {
    /// The tensor.
    pub tensor: String,
    /// Which pairs: `lag-1 along rows`, `lag-1 down columns`, `row pairs`,
    /// `column pairs`.
    pub pairing: &'static str,
    /// The deviate: Fisher's `atanh(r)·√(N−3)` for a pooled lag correlation,
    /// or the Wilson–Hilferty deviate of `Σ z_k²` over disjoint random pairs.
    pub z: f64,
}

fn fisher_z(r: f64, n: usize) -> f64 {
    r.clamp(-0.999_999_999, 0.999_999_999).atanh() * ((n as f64) - 3.0).sqrt()
}

/// Pooled correlation of the pairs `(x[a], x[b])`.
fn pooled(x: &[f32], pairs: impl Iterator<Item = (usize, usize)>) -> Option<f64> {
    let (r, n) = stats::pearson(pairs.map(|(a, b)| (f64::from(x[a]), f64::from(x[b]))))?;
    (n >= MIN_PAIRS).then(|| fisher_z(r, n))
}

/// χ² over disjoint random pairs of lines (rows or columns): each pair's
/// correlation as a Fisher z, squared and summed, as a normal deviate.
fn paired_lines(lines: usize, line: impl Fn(usize) -> Vec<f64>, rng: &mut Rng) -> Option<f64> {
    let mut order: Vec<usize> = (0..lines).collect();
    rng.shuffle(&mut order);
    let (mut chi2, mut k) = (0.0, 0usize);
    for pair in order.chunks_exact(2) {
        let (a, b) = (line(pair[0]), line(pair[1]));
        if let Some((r, n)) = stats::pearson(a.into_iter().zip(b)) {
            chi2 += fisher_z(r, n).powi(2);
            k += 1;
        }
    }
    (k >= 2).then(|| stats::chi_square_to_z(chi2, k))
}

/// The correlation tests of one tensor, viewed as a matrix `[shape[0], rest]`
/// (a vector is one row).
pub fn independence_tests(name: &str, t: &Tensor, rng: &mut Rng) -> Vec<IndependenceTest> {
    let x = &t.data;
    let rows = if t.shape.len() >= 2 {
        t.shape[0].max(1)
    } else {
        1
    };
    let cols = x.len() / rows;
    let mut out = Vec::new();
    let mut push = |pairing, z: Option<f64>| {
        if let Some(z) = z {
            out.push(IndependenceTest {
                tensor: name.to_string(),
                pairing,
                z,
            });
        }
    };
    if cols >= 2 {
        let pairs =
            (0..rows).flat_map(|i| (0..cols - 1).map(move |c| (i * cols + c, i * cols + c + 1)));
        push("lag-1 along rows", pooled(x, pairs));
    }
    if rows >= 2 {
        let pairs =
            (0..rows - 1).flat_map(|i| (0..cols).map(move |c| (i * cols + c, (i + 1) * cols + c)));
        push("lag-1 down columns", pooled(x, pairs));
    }
    if rows >= 4 && cols >= 8 {
        let row = |i: usize| {
            x[i * cols..(i + 1) * cols]
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        };
        push("row pairs", paired_lines(rows, row, rng));
    }
    if cols >= 4 && rows >= 8 {
        let col = |c: usize| (0..rows).map(|i| f64::from(x[i * cols + c])).collect();
        push("column pairs", paired_lines(cols, col, rng));
    }
    out
}

/// Check 4: θ₀'s sampled correlations against 0. Every tensor is tested for
/// correlation between neighbours along rows and down columns (pooled) and
/// between disjoint random pairs of rows and of columns (one χ² each); the
/// value is the largest |z|, the threshold the two-sided normal quantile of
/// `alpha / tests`.
pub fn initial_independence(
    _model: Model,
    theta0: &TensorSet,
    config: &ProofConfig,
) -> CheckResult {
    let mut rng = Rng::derived(config.pairing_seed, "proof-pairing");
    let tests: Vec<IndependenceTest> = theta0
        .iter()
        .flat_map(|(name, t)| independence_tests(name, t, &mut rng))
        .collect();
    let critical = stats::normal_two_sided_quantile(config.alpha / tests.len().max(1) as f64);
    match tests.iter().max_by(|a, b| a.z.abs().total_cmp(&b.z.abs())) {
        Some(w) => CheckResult::new(
            INITIAL_INDEPENDENCE,
            finite(w.z.abs()),
            critical,
            format!(
                "{} correlation tests; largest |z| from {} of `{}` (z={:.2})",
                tests.len(),
                w.pairing,
                w.tensor,
                w.z
            ),
        ),
        None => CheckResult::new(
            INITIAL_INDEPENDENCE,
            0.0,
            critical,
            "no tensor is large enough to test".into(),
        ),
    }
}

/// `‖C_i − C_n‖` for every checkpoint.
pub fn distances_to_final(chain: &Chain) -> Vec<f64> {
    let last = chain.last();
    chain
        .checkpoints()
        .iter()
        .map(|c| set_distance(c, last))
        .collect()
}

/// Check 5: the largest rise of `‖C_i − C_n‖` above its minimum over the
/// earlier checkpoints, relative to `‖C₀ − C_n‖`.
pub fn distance_to_final(chain: &Chain, config: &ProofConfig) -> CheckResult {
    let d = distances_to_final(chain);
    let scale = if d[0] > 0.0 {
        d[0]
    } else {
        d.iter().copied().fold(0.0, f64::max)
    };
    let mut min = (0usize, d[0]);
    let mut worst = (0.0f64, 0usize, 0usize);
    for (i, &di) in d.iter().enumerate().skip(1) {
        let rise = if scale > 0.0 {
            (di - min.1) / scale
        } else {
            0.0
        };
        if rise > worst.0 {
            worst = (rise, i, min.0);
        }
        if di < min.1 {
            min = (i, di);
        }
    }
    let list = d
        .iter()
        .map(|v| format!("{v:.3}"))
        .collect::<Vec<_>>()
        .join(" ");
    let detail = if worst.0 > 0.0 {
        format!(
            "largest rise at round {} above round {}; ‖C_i − C_n‖ by round: {list}",
            worst.1, worst.2
        )
    } else {
        format!("never rises; ‖C_i − C_n‖ by round: {list}")
    };
    CheckResult::new(
        DISTANCE_TO_FINAL,
        worst.0,
        config.distance_tolerance,
        detail,
    )
}

/// The seed of check 6's fresh initialization: `config.fresh_seed`, moved
/// by one when it equals the declared seed.
pub fn fresh_seed(init_seed: Option<u64>, config: &ProofConfig) -> u64 {
    if init_seed == Some(config.fresh_seed) {
        config.fresh_seed.wrapping_add(1)
    } else {
        config.fresh_seed
    }
}

/// Check 6: `‖C_n − C₀‖ / ‖C_n − fresh init‖`.
pub fn init_to_final(chain: &Chain, init_seed: Option<u64>, config: &ProofConfig) -> CheckResult {
    let seed = fresh_seed(init_seed, config);
    let fresh = chain.model().init(seed);
    let travelled = set_distance(chain.last(), chain.initial());
    let to_fresh = set_distance(chain.last(), &fresh);
    let ratio = if travelled == 0.0 {
        0.0
    } else {
        finite(travelled / to_fresh)
    };
    CheckResult::new(
        INIT_TO_FINAL,
        ratio,
        config.init_final_ratio,
        format!("‖C_n − C₀‖ = {travelled:.3}, ‖C_n − init(seed {seed})‖ = {to_fresh:.3}"),
    )
}
