//! Checking one update: exact replay (the default) or a spot-check.
//!
//! **Replay** recomputes the task from its base checkpoint and compares
//! hashes. Bitwise equality holds between like platforms; when the hashes
//! differ, the trainer's delta is fetched and compared with the replay: a
//! relative L2 difference at most [`REPLAY_TOLERANCE`] is rounding from
//! another instruction set and counts as valid, anything more is invalid.
//!
//! **Spot-check** does no training: it evaluates base + Δ on the task's own
//! evaluation sample (the same 1,024 shard samples the trainer measured) and
//! compares with the trainer's reported loss after training, and it checks
//! that base + Δ is not grossly worse than the base on held-out test data.

use std::sync::Arc;

use alloy_primitives::B256;
use funetun_core::TensorSet;
use funetun_core::api::ValidationAssignment;
use funetun_ml::{Compute, Dataset, Start, TaskSpec, evaluate};
use funetun_participant::{Computed, compute_delta};

use crate::error::{Error, Result};

/// Largest relative L2 difference between a trainer's delta and the replay
/// that is still rounding (another CPU's kernels), not a different
/// computation. Honest cross-platform differences are ~1e-6; training
/// fewer steps or other data changes Δ by tens of percent.
pub const REPLAY_TOLERANCE: f64 = 1e-3;

/// Held-out samples a spot-check evaluates.
pub const SPOT_CHECK_HELD_OUT: usize = 1024;

/// A validator's finding on one update.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The vote.
    pub valid: bool,
    /// What was measured, reported to the orchestrator.
    pub detail: String,
    /// Training steps spent on the check (0 for a spot-check).
    pub steps: u64,
}

/// Relative L2 distance ‖a − b‖ / max(‖b‖, tiny).
pub fn relative_difference(a: &TensorSet, b: &TensorSet) -> Result<f64> {
    let diff = a
        .sub(b)
        .map_err(|e| Error::Check(format!("delta layout: {e}")))?;
    Ok(diff.l2_norm() / b.l2_norm().max(1e-12))
}

/// Replays the task. `fetch_delta` is only called when the hashes differ.
pub async fn replay<F, Fut>(
    assignment: &ValidationAssignment,
    base: Start,
    data: Arc<Dataset>,
    spec: TaskSpec,
    compute: Arc<Compute>,
    fetch_delta: F,
) -> Result<Verdict>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<TensorSet>>,
{
    let steps = spec.steps as u64;
    let space = spec.space()?;
    let ours: Computed = compute_delta(base, data, spec, compute).await?;
    if ours.hash == assignment.update_hash {
        return Ok(Verdict {
            valid: true,
            detail: format!("replay matches {}", ours.hash),
            steps,
        });
    }
    let theirs = fetch_delta().await?;
    let ours_set = space
        .decode(&ours.bytes)
        .map_err(|e| Error::Check(format!("own replay does not decode: {e}")))?;
    let rel = relative_difference(&theirs, &ours_set)?;
    let valid = rel <= REPLAY_TOLERANCE;
    Ok(Verdict {
        valid,
        detail: format!(
            "replay hash {} ≠ committed {}; relative L2 difference {rel:.3e} ({} tolerance {REPLAY_TOLERANCE:e})",
            ours.hash,
            assignment.update_hash,
            if valid { "within" } else { "beyond" }
        ),
        steps,
    })
}

/// Spot-checks base + Δ against the trainer's reported loss.
pub async fn spot_check(
    assignment: &ValidationAssignment,
    base: Start,
    delta: TensorSet,
    data: Arc<Dataset>,
    spec: TaskSpec,
    compute: Arc<Compute>,
) -> Result<Verdict> {
    let tolerance = assignment.tolerance;
    let reported = assignment.loss_after as f64;
    let space = spec.space()?;
    tokio::task::spawn_blocking(move || {
        // The model's weights before and after: for a LoRA job, the frozen
        // model merged with the adapters.
        let (base_flat, trained_flat) = base
            .before_and_after(&space, &delta)
            .map_err(|e| Error::Check(format!("delta does not fit the base: {e}")))?;
        // The task's own sample (images, or windows of its shard), then a
        // held-out one of the test split.
        let sample = funetun_ml::train::task_eval_sample(&spec, &data)?;
        let measured = evaluate(spec.model, &trained_flat, &data, &data.train, Some(&sample), &compute)?;
        let held_out =
            funetun_ml::train::held_out_sample(spec.model, &data, SPOT_CHECK_HELD_OUT, spec.seed);
        let before = evaluate(spec.model, &base_flat, &data, &data.test, Some(&held_out), &compute)?;
        let after = evaluate(spec.model, &trained_flat, &data, &data.test, Some(&held_out), &compute)?;
        let loss_ok = measured.loss.is_finite() && measured.loss <= reported * (1.0 + tolerance) + 1e-6;
        let held_ok = after.loss.is_finite() && after.loss <= before.loss * (1.0 + tolerance) + 1e-6;
        Ok(Verdict {
            valid: loss_ok && held_ok,
            detail: format!(
                "spot-check: loss after {:.5} vs reported {reported:.5}; held-out loss {:.5} → {:.5} (tolerance {tolerance})",
                measured.loss, before.loss, after.loss
            ),
            steps: 0,
        })
    })
    .await
    .map_err(|e| Error::Check(format!("spot-check stopped: {e}")))?
}

/// The hash a replay must reproduce.
pub fn committed(assignment: &ValidationAssignment) -> B256 {
    assignment.update_hash
}
