//! How a validator reaches its vote: the [`Voter`] seam, chosen when the
//! validator is built. [`Checker`] is the honest voter — the checks that
//! need no training, then replay or spot-check; the dishonest voters
//! (`crate::attack`, feature `byzantine`) are the other implementations, so
//! the validator loop holds no attack branches.

use std::future::Future;
use std::pin::Pin;

use alloy_primitives::U256;
use funetun_core::api::{CheckReason, ValidationAssignment};
use funetun_core::protocol::ValidationMode;
use funetun_ml::task_spec;
use funetun_participant::Workbench;

use crate::check::{Verdict, replay, spot_check};
use crate::error::{Error, Result};

/// A boxed future of a [`Voter`].
pub type Judgement<'a> = Pin<Box<dyn Future<Output = Result<Verdict>> + Send + 'a>>;

/// Decides a validator's vote on one update.
pub trait Voter: Send + Sync {
    /// The verdict on `assignment`. An error that is not transient means
    /// "cannot judge": the validator votes nothing.
    fn judge<'a>(
        &'a self,
        bench: &'a Workbench,
        assignment: &'a ValidationAssignment,
    ) -> Judgement<'a>;
}

/// The honest voter: checks every update it is given.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checker;

impl Voter for Checker {
    fn judge<'a>(
        &'a self,
        bench: &'a Workbench,
        assignment: &'a ValidationAssignment,
    ) -> Judgement<'a> {
        Box::pin(check(bench, assignment))
    }
}

/// Checks one update: a known hash against its on-chain twin, the delta's
/// availability and form, then replay or spot-check per the assignment.
pub async fn check(bench: &Workbench, a: &ValidationAssignment) -> Result<Verdict> {
    let spec = task_spec(&a.task)?;
    let space = spec.space()?;
    let client = &bench.me.client;
    if a.reason == CheckReason::KnownHash
        && let Some(earlier) = a.duplicate_of
        && earlier != a.update_index
        && bench
            .me
            .ledger
            .matches_hash(U256::from(a.job_id), earlier, a.update_hash)
            .await?
    {
        return Ok(Verdict {
            valid: false,
            detail: format!(
                "hash {} was already committed by update {earlier:#x} for another task (copied or stale)",
                a.update_hash
            ),
            steps: 0,
        });
    }
    // The delta must be available and well-formed: a committed hash
    // whose delta was never stored (or does not decode) is invalid.
    match bench.blobs.tensors(client, a.update_hash, &space).await {
        Ok(_) => {}
        Err(e) if e.is_missing_blob() => {
            return Ok(Verdict {
                valid: false,
                detail: format!("delta {} is not available", a.update_hash),
                steps: 0,
            });
        }
        Err(e) => {
            if let Some(source) = e.malformed_blob() {
                return Ok(Verdict {
                    valid: false,
                    detail: format!(
                        "delta {} is not a valid tensor file: {source}",
                        a.update_hash
                    ),
                    steps: 0,
                });
            }
            return Err(e.into());
        }
    }
    let data = bench.dataset(&a.task.dataset).await?;
    let base = bench.start(&a.task, &spec).await?;
    let fetch_delta =
        || async { Ok::<_, Error>(bench.blobs.tensors(client, a.update_hash, &space).await?) };
    if a.mode == ValidationMode::SpotCheck {
        let delta = fetch_delta().await?;
        spot_check(a, base, delta, data, spec, bench.compute.clone()).await
    } else {
        replay(a, base, data, spec, bench.compute.clone(), fetch_delta).await
    }
}
