//! Proof of training: six checks over an ordered chain of checkpoints
//! C₀ … Cₙ that together say "Cₙ was trained, round by round, from the
//! declared initialization through the committed checkpoints".
//!
//! | # | check | value (passes when `value ≤ threshold`) |
//! |---|---|---|
//! | 1 | [`ACCURACY_MONOTONIC`] | largest drop of test accuracy below the best earlier checkpoint |
//! | 2 | [`PARAMETER_CONTINUITY`] | largest per-layer `‖C_{i+1} − C_i‖ / ‖C_i‖` |
//! | 3 | [`INITIAL_DISTRIBUTION`] | with the seed: share of θ₀'s values that differ from `init(seed)`; without: largest per-layer Kolmogorov–Smirnov λ against Uniform(±1/√fan_in) |
//! | 4 | [`INITIAL_INDEPENDENCE`] | largest \|z\| of θ₀'s sampled correlations (lagged elements, row pairs, column pairs) |
//! | 5 | [`DISTANCE_TO_FINAL`] | largest rise of `‖C_i − C_n‖` above its earlier minimum, relative to `‖C₀ − C_n‖` |
//! | 6 | [`INIT_TO_FINAL`] | `‖C_n − C₀‖ / ‖C_n − fresh init‖` |
//!
//! Thresholds live in [`ProofConfig`]; `docs/proof-of-training.md` gives
//! the reasoning and the margins measured on honest and forged chains.
//!
//! - [`checks`]: the six checks, each usable on its own.
//! - [`stats`]: normal and Kolmogorov distributions, the KS test, correlations.
//! - [`simulate`]: an honest federated run (mean of shard deltas), the
//!   reference the thresholds are measured on.
//! - [`error`]: what stops a chain from being checked ([`ProofError`]).

pub mod checks;
pub mod error;
pub mod simulate;
pub mod stats;

use funetun_core::TensorSet;
use funetun_ml::{Compute, Dataset, Model};
use serde::Serialize;

pub use error::{ProofError, Result};
/// Downloaded checkpoint bytes against their on-chain hashes, compared
/// before any check runs (`funetun_client::anchored`).
pub use funetun_client::anchored::{AnchorProblem, check_anchors};
use funetun_ml::Architecture as _;

/// Name of check 1.
pub const ACCURACY_MONOTONIC: &str = "accuracy_monotonic";
/// Check 1 for text models: validation loss never rises far above its best.
pub const VAL_LOSS_MONOTONIC: &str = "val_loss_monotonic";
/// Name of check 2.
pub const PARAMETER_CONTINUITY: &str = "parameter_continuity";
/// Name of check 3.
pub const INITIAL_DISTRIBUTION: &str = "initial_distribution";
/// Name of check 4.
pub const INITIAL_INDEPENDENCE: &str = "initial_independence";
/// Name of check 5.
pub const DISTANCE_TO_FINAL: &str = "distance_to_final_decreasing";
/// Name of check 6.
pub const INIT_TO_FINAL: &str = "init_to_final_distance";
/// Check 3 of a fine-tune: C₀ is the owner's checkpoint named in the spec.
pub const INITIAL_COMMITTED: &str = "initial_committed";

/// The thresholds and sampling settings of the six checks.
///
/// The defaults and the measurements behind them are in
/// `docs/proof-of-training.md`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProofConfig {
    /// Check 1: largest accepted drop of test accuracy (a fraction, 0.03 =
    /// three points) below the best earlier checkpoint.
    pub accuracy_tolerance: f64,
    /// Check 1 for text models: largest accepted rise of validation loss
    /// (nats per token) above the best earlier checkpoint.
    pub loss_tolerance: f64,
    /// Check 1: test samples (text: context windows) evaluated per
    /// checkpoint, spread evenly over the test split (0 or more than the
    /// split: all of it).
    pub eval_samples: usize,
    /// Check 2: largest accepted per-layer relative distance δ between
    /// adjacent checkpoints.
    pub continuity_delta: f64,
    /// Checks 3 (without a seed) and 4: family-wise false-alarm rate of the
    /// statistical tests on an honest θ₀; split evenly (Bonferroni) over the
    /// layers and tests, which sets the KS and z thresholds.
    pub alpha: f64,
    /// Check 4: seed of the random row and column pairings.
    pub pairing_seed: u64,
    /// Check 5: largest accepted rise of `‖C_i − C_n‖` above its earlier
    /// minimum, as a fraction of `‖C₀ − C_n‖`.
    pub distance_tolerance: f64,
    /// Check 6: largest accepted ratio `‖C_n − C₀‖ / ‖C_n − fresh init‖`.
    pub init_final_ratio: f64,
    /// Check 6: seed of the fresh initialization (moved by one when it
    /// equals the declared seed).
    pub fresh_seed: u64,
}

impl Default for ProofConfig {
    fn default() -> Self {
        Self {
            accuracy_tolerance: 0.03,
            loss_tolerance: 0.1,
            eval_samples: 10_000,
            continuity_delta: 1.0,
            alpha: 1e-3,
            pairing_seed: 0,
            distance_tolerance: 0.05,
            init_final_ratio: 0.9,
            fresh_seed: 0x5eed_f8e5,
        }
    }
}

impl ProofConfig {
    /// Checks that every threshold is a usable number.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, detail: String| Err(ProofError::Config { field, detail });
        for (field, v) in [
            ("accuracy_tolerance", self.accuracy_tolerance),
            ("loss_tolerance", self.loss_tolerance),
            ("continuity_delta", self.continuity_delta),
            ("distance_tolerance", self.distance_tolerance),
            ("init_final_ratio", self.init_final_ratio),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(field, format!("is {v}; use a finite number ≥ 0"));
            }
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return bad(
                "alpha",
                format!("is {}; use a probability in (0, 1)", self.alpha),
            );
        }
        Ok(())
    }
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckResult {
    /// The check's name, one of the constants of this module.
    pub name: &'static str,
    /// Whether the chain passes it (`value ≤ threshold`).
    pub passed: bool,
    /// What was measured.
    pub value: f64,
    /// The largest passing value.
    pub threshold: f64,
    /// Where the value comes from (worst round, layer, test), for people.
    pub detail: String,
}

impl CheckResult {
    pub(crate) fn new(name: &'static str, value: f64, threshold: f64, detail: String) -> Self {
        Self {
            name,
            passed: value <= threshold,
            value,
            threshold,
            detail,
        }
    }
}

/// All six checks of a chain.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// True when every check passed.
    pub passed: bool,
    /// The checks, in the order 1–6.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// A report of `checks`, passed when all of them are.
    pub fn new(checks: Vec<CheckResult>) -> Self {
        Self {
            passed: checks.iter().all(|c| c.passed),
            checks,
        }
    }

    /// The check called `name`.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// An ordered chain of checkpoints of one model: C₀ (θ₀) first, then one
/// per round, each with the model's names and shapes and finite values.
#[derive(Clone, Debug)]
pub struct Chain {
    model: Model,
    checkpoints: Vec<TensorSet>,
}

impl Chain {
    /// Checks the layout of every checkpoint; needs at least two.
    pub fn new(model: Model, checkpoints: Vec<TensorSet>) -> Result<Self> {
        if checkpoints.len() < 2 {
            return Err(ProofError::TooShort(checkpoints.len()));
        }
        let layout = model.zeros();
        for (index, c) in checkpoints.iter().enumerate() {
            layout
                .check_same_layout(c)
                .and_then(|()| c.check_finite())
                .map_err(|source| ProofError::Checkpoint { index, source })?;
        }
        Ok(Self { model, checkpoints })
    }

    /// The model.
    pub fn model(&self) -> Model {
        self.model
    }

    /// The checkpoints, C₀ first.
    pub fn checkpoints(&self) -> &[TensorSet] {
        &self.checkpoints
    }

    /// C₀.
    pub fn initial(&self) -> &TensorSet {
        &self.checkpoints[0]
    }

    /// Cₙ.
    pub fn last(&self) -> &TensorSet {
        &self.checkpoints[self.checkpoints.len() - 1]
    }
}

/// Decodes one checkpoint file of `model` (canonical safetensors), refusing
/// anything larger than the model or of another layout.
pub fn decode_checkpoint(
    model: Model,
    bytes: &[u8],
) -> std::result::Result<TensorSet, funetun_core::Error> {
    model.decode(bytes)
}

/// Runs the six checks on `chain`. `init_seed` is the declared seed of θ₀
/// when known; the accuracies are measured on `data`'s test split.
pub fn verify(
    chain: &Chain,
    init_seed: Option<u64>,
    data: &Dataset,
    compute: &Compute,
    config: &ProofConfig,
) -> Result<Report> {
    config.validate()?;
    let first = first_check(chain, data, compute, config)?;
    Ok(Report::new(vec![
        first,
        checks::parameter_continuity(chain, config),
        checks::initial_distribution(chain.model(), chain.initial(), init_seed, config),
        checks::initial_independence(chain.model(), chain.initial(), config),
        checks::distance_to_final(chain, config),
        checks::init_to_final(chain, init_seed, config),
    ]))
}

/// Check 1: validation loss (text) or test accuracy (images) over the chain.
fn first_check(
    chain: &Chain,
    data: &Dataset,
    compute: &Compute,
    config: &ProofConfig,
) -> Result<CheckResult> {
    Ok(if chain.model().is_text() {
        let losses = checks::validation_losses(chain, data, compute, config.eval_samples)?;
        checks::val_loss_monotonic(&losses, config)
    } else {
        let accuracies = checks::test_accuracies(chain, data, compute, config.eval_samples)?;
        checks::accuracy_monotonic(&accuracies, config)
    })
}

/// The checks of a chain that starts from an owner's checkpoint (a
/// fine-tune, `init` in the spec) rather than from a seeded θ₀.
///
/// Checks 3 and 4 test that θ₀ was drawn from the declared initializer
/// and not crafted; a pretrained checkpoint is neither, so they are
/// replaced by one rule: C₀ must hash to `committed`, the checkpoint the
/// spec names — and the spec's hash was on-chain (`createJob`) before any
/// round was trained, which is what check 4 protected (a C₀ chosen after
/// seeing the result). Checks 1, 2, 5 and 6 apply unchanged; check 6
/// still compares with a fresh random initialization, from which a
/// fine-tune stays far. `docs/proof-of-training.md` has the reasoning.
pub fn verify_fine_tune(
    chain: &Chain,
    committed: funetun_core::Hash,
    data: &Dataset,
    compute: &Compute,
    config: &ProofConfig,
) -> Result<Report> {
    config.validate()?;
    let first = first_check(chain, data, compute, config)?;
    let actual = funetun_core::keccak256(funetun_core::encode(chain.initial()));
    let initial = CheckResult::new(
        INITIAL_COMMITTED,
        if actual == committed { 0.0 } else { 1.0 },
        0.0,
        if actual == committed {
            format!("C₀ is the committed initial checkpoint {committed}")
        } else {
            format!(
                "C₀ hashes to {actual}, but the spec commits the initial checkpoint {committed}"
            )
        },
    );
    Ok(Report::new(vec![
        first,
        checks::parameter_continuity(chain, config),
        initial,
        checks::distance_to_final(chain, config),
        checks::init_to_final(chain, None, config),
    ]))
}

#[cfg(test)]
mod tests;
