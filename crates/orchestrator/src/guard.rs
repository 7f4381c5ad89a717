//! Guards: cheap screens run on every reported delta before its challenge
//! window closes, so that a flagged update goes to validators with
//! probability 1 instead of the random draw (docs/security.md).
//!
//! - **Known hash.** A hash already committed in the job for another task
//!   (another round or another shard) is a copied or stale delta. Honest
//!   deltas of different tasks never collide; validators vote it invalid
//!   without replaying anything.
//! - **Norm.** A zero delta; an L2 norm more than [`NORM_FACTOR`] times
//!   above the median of the reference norms (this round's and the previous
//!   round's unflagged updates) — scaled work; or more than [`NORM_FACTOR`]
//!   times below the median of this round's alone — zeroed or truncated
//!   work. Deltas shrink as a job converges (from round 0 to round 1 the
//!   median fell 2.2× for the demo's MLP and 3.2× for its CNN), so a delta
//!   smaller than the previous round's is expected and only its own round's
//!   peers, trained from the same checkpoint, bound it from below.
//! - **Loss.** base + Δ must not raise the loss of a probe batch of
//!   [`PROBE_SAMPLES`] samples of the task's own shard (the data it
//!   trained on) by more than [`LOSS_TOLERANCE`]; gross damage (sign
//!   flipped, noise, overshooting) is flagged. Held-out data would not do: a single
//!   honest delta trained on a quarter of the data often raises the
//!   held-out loss after the first round, although the average helps.
//!
//! A guard only decides *whether* an update is replayed, never its verdict:
//! a false flag costs one replay, not a trainer's stake.

use funetun_core::TensorSet;
use funetun_core::api::CheckReason;
use funetun_ml::data::sampler::eval_sample;
use funetun_ml::train::shard_pool;
use funetun_ml::{Compute, Dataset, Space, Start};

use crate::error::Result;

/// How far (as a factor) a norm may stray from the reference median.
pub const NORM_FACTOR: f64 = 3.0;

/// Samples of the loss probe.
pub const PROBE_SAMPLES: usize = 512;
/// Context windows probed for a text model.
pub const PROBE_WINDOWS: usize = 32;

/// How much a delta may raise the probe loss (nats) before it is flagged.
/// Near convergence an honest delta's gain is noise around 0: over 520
/// honest MNIST updates of 20-round runs the lowest was −0.028; sign-flip
/// in the first rounds gives −8.8 to −0.1 (docs/security.md).
pub const LOSS_TOLERANCE: f64 = 0.05;

/// Mixed into the task seed so the probe is not the trainer's own
/// evaluation sample.
const PROBE_SALT: u64 = 0x7072_6f62_6520_6775;

/// What the guards measured on one delta.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measured {
    /// ‖Δ‖₂.
    pub norm: f64,
    /// Probe loss of the base minus probe loss of base + Δ (positive: Δ
    /// helps); `None` when the orchestrator has no copy of the data set.
    pub probe_gain: Option<f64>,
}

/// Norms of the unflagged updates a new one is compared with.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReferenceNorms {
    /// Updates of the same round (trained from the same checkpoint).
    pub same_round: Vec<f64>,
    /// Updates of the round before.
    pub previous_round: Vec<f64>,
}

/// Where a task trained: its shard of the training split and its seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeTask {
    /// The shard.
    pub shard: u32,
    /// Shards in the job.
    pub shards: u32,
    /// The task's seed (picks the probe samples).
    pub seed: u64,
}

/// Measures `delta` applied to `base`, probing on `task`'s shard (a LoRA
/// job's adapters are merged into its frozen model for the probe).
pub fn measure(
    space: &Space,
    base: &Start,
    delta: &TensorSet,
    data: Option<&Dataset>,
    task: ProbeTask,
    compute: &Compute,
) -> Result<Measured> {
    let model = space.model();
    let norm = delta.l2_norm();
    let probe_gain = match data {
        Some(data) if norm.is_finite() => {
            let pool = shard_pool(model, data, task.shard as usize, task.shards as usize)?;
            let samples = if model.is_text() {
                PROBE_WINDOWS
            } else {
                PROBE_SAMPLES
            };
            let probe = eval_sample(&pool, samples, task.seed ^ PROBE_SALT);
            let (before, after) = base.before_and_after(space, delta)?;
            let before =
                funetun_ml::evaluate(model, &before, data, &data.train, Some(&probe), compute)?;
            let after =
                funetun_ml::evaluate(model, &after, data, &data.train, Some(&probe), compute)?;
            Some(before.loss - after.loss)
        }
        _ => None,
    };
    Ok(Measured { norm, probe_gain })
}

/// The guard that flags `m`, given the norms of the reference updates.
pub fn judge(m: &Measured, reference: &ReferenceNorms) -> Option<CheckReason> {
    if !m.norm.is_finite() || m.norm == 0.0 {
        return Some(CheckReason::Norm);
    }
    if let Some(gain) = m.probe_gain
        && (gain.is_nan() || gain < -LOSS_TOLERANCE)
    {
        return Some(CheckReason::Loss);
    }
    let all: Vec<f64> = reference
        .same_round
        .iter()
        .chain(&reference.previous_round)
        .copied()
        .collect();
    let median = |norms: &[f64]| {
        (!norms.is_empty())
            .then(|| funetun_aggregate::guard::median_f64(norms))
            .filter(|m| *m > 0.0)
    };
    let too_large = median(&all).is_some_and(|med| m.norm > NORM_FACTOR * med);
    let too_small = median(&reference.same_round).is_some_and(|med| m.norm * NORM_FACTOR < med);
    (too_large || too_small).then_some(CheckReason::Norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(norms: &[f64]) -> ReferenceNorms {
        ReferenceNorms {
            same_round: norms.to_vec(),
            previous_round: Vec::new(),
        }
    }

    fn m(norm: f64, gain: Option<f64>) -> Measured {
        Measured {
            norm,
            probe_gain: gain,
        }
    }

    #[test]
    fn an_honest_looking_delta_passes() {
        assert_eq!(judge(&m(1.0, Some(0.01)), &same(&[0.9, 1.1, 1.0])), None);
        assert_eq!(judge(&m(1.0, None), &ReferenceNorms::default()), None);
    }

    #[test]
    fn a_delta_that_raises_the_probe_loss_is_flagged() {
        assert_eq!(
            judge(&m(1.0, Some(-0.2)), &same(&[1.0])),
            Some(CheckReason::Loss)
        );
        assert_eq!(
            judge(&m(1.0, Some(f64::NAN)), &same(&[1.0])),
            Some(CheckReason::Loss)
        );
        // Noise around zero is what honest deltas near convergence give.
        assert_eq!(judge(&m(1.0, Some(-0.03)), &same(&[1.0])), None);
        // A zero delta has no gain, and its norm gives it away, even with
        // nothing to compare it with.
        assert_eq!(
            judge(&m(0.0, Some(0.0)), &same(&[1.0])),
            Some(CheckReason::Norm)
        );
        assert_eq!(
            judge(&m(0.0, Some(0.0)), &ReferenceNorms::default()),
            Some(CheckReason::Norm)
        );
    }

    #[test]
    fn norms_far_from_the_median_are_flagged_both_ways() {
        let reference = same(&[1.0, 1.2, 0.8]);
        assert_eq!(
            judge(&m(3.5, Some(0.1)), &reference),
            Some(CheckReason::Norm)
        );
        assert_eq!(
            judge(&m(0.3, Some(0.1)), &reference),
            Some(CheckReason::Norm)
        );
        assert_eq!(judge(&m(2.9, Some(0.1)), &reference), None);
        assert_eq!(
            judge(&m(f64::NAN, None), &reference),
            Some(CheckReason::Norm)
        );
    }

    #[test]
    fn the_previous_round_bounds_a_norm_from_above_only() {
        // Round 1 of the demo's CNN: the round-0 deltas (from the random
        // initial checkpoint) were 3.2× larger than the honest round-1 ones.
        let first_of_round_one = ReferenceNorms {
            same_round: Vec::new(),
            previous_round: vec![4.57, 4.96, 4.46, 4.71],
        };
        assert_eq!(judge(&m(1.44, Some(0.06)), &first_of_round_one), None);
        // Scaled work is still caught against the previous round.
        assert_eq!(
            judge(&m(15.0, Some(0.06)), &first_of_round_one),
            Some(CheckReason::Norm)
        );
        // Against its own round's peers a truncated delta is caught.
        let later = ReferenceNorms {
            same_round: vec![1.44, 1.39, 1.79],
            previous_round: vec![4.57, 4.96, 4.46, 4.71],
        };
        assert_eq!(judge(&m(1.2, Some(0.02)), &later), None);
        assert_eq!(judge(&m(0.4, Some(0.02)), &later), Some(CheckReason::Norm));
    }
}
