//! Handing updates to validators (`POST /v1/validations/next`) and
//! accepting their on-chain votes (`POST /v1/validations`).

use alloy_primitives::{Address, U256};
use funetun_core::api::{ValidationAck, ValidationAssignment, ValidationReport, ValidationRequest};
use funetun_core::protocol::ValidationMode;

use crate::error::{Error, Result};
use crate::scheduler::{Candidate, UpdateStatus, pick_assignment};
use crate::state::AppState;
use crate::store::participants::Points;
use crate::store::updates::{NewValidation, tally};
use crate::util::index_text;

/// The update `validator` should check now, if any, assigned to it.
pub async fn next(
    state: &AppState,
    validator: Address,
    req: &ValidationRequest,
    now: u64,
) -> Result<Option<ValidationAssignment>> {
    if let Some(job) = req.job_id {
        state.job(job).await?;
    }
    let _guard = state.lock_assignments().await?;
    let mut candidates = Vec::new();
    for c in state.store.checkable(validator, req.job_id).await? {
        let Ok(info) = state.job(c.job_id).await else {
            continue;
        };
        let (voters, leading) = tally(&c.votes);
        let view = Candidate {
            trainer: c.trainer,
            platform: c.platform.clone(),
            voters,
            assigned: c.assigned.clone(),
            leading,
            quorum: info.quorum,
        };
        candidates.push((c, info, view));
    }
    let views: Vec<Candidate> = candidates.iter().map(|(_, _, v)| v.clone()).collect();
    let Some((i, existing)) = pick_assignment(&views, validator, req.platform.as_deref(), now)
    else {
        return Ok(None);
    };
    let (c, info, _) = &candidates[i];
    let task = state.store.task(c.task_id).await?.ok_or_else(|| {
        Error::Inconsistent(format!(
            "the task of update {} vanished",
            index_text(c.index)
        ))
    })?;
    if !existing {
        state
            .store
            .assign(
                c.job_id,
                c.index,
                validator,
                now,
                now + info.spec.lease_secs,
            )
            .await?;
    }
    Ok(Some(ValidationAssignment {
        job_id: c.job_id,
        update_index: c.index,
        trainer: c.trainer,
        task: super::tasks::task_of(info, &task),
        update_hash: c.update_hash,
        mode: info.spec.validation.mode,
        loss_before: c.loss_before as f32,
        loss_after: c.loss_after as f32,
        tolerance: info.spec.validation.spot_check_tolerance,
        reason: c.reason,
        duplicate_of: c.duplicate_of,
    }))
}

/// Accepts `validator`'s report of its on-chain vote once the chain holds
/// the vote ([`funetun_chain::Ledger::verify_vote`]); answers the update's status.
pub async fn report(
    state: &AppState,
    validator: Address,
    body: &ValidationReport,
    now: u64,
) -> Result<ValidationAck> {
    let info = state.job(body.job_id).await?;
    let job = body.job_id;
    let index = body.update_index;
    let Some(steps) = state.store.reported_steps(job, index).await? else {
        return Err(Error::not_found(
            "unknown_update",
            format!("no update {} was reported for job {job}", index_text(index)),
        ));
    };
    let check = state
        .ledger
        .verify_vote(body.tx_hash, U256::from(job), index, validator, body.valid)
        .await?;
    if !check.found {
        return Err(Error::conflict(
            "vote_not_found",
            format!(
                "no on-chain vote `{}` by {validator} on update {} of job {job} (transaction {}); \
                 vote with validateUpdate first",
                body.valid,
                index_text(index),
                body.tx_hash
            ),
        ));
    }
    let mut tx = state.store.begin().await?;
    let new = tx
        .insert_validation(&NewValidation {
            job_id: job,
            index,
            validator,
            valid: body.valid,
            tx_hash: body.tx_hash,
            detail: truncate(&body.detail, 4096),
            reported_at: now,
        })
        .await?;
    if new {
        tx.count_validation(validator).await?;
        // A replay redoes the task's steps; a spot check about one.
        let replayed = if info.spec.validation.mode == ValidationMode::Replay {
            steps as f64
        } else {
            1.0
        };
        let points = replayed * crate::reputation::step_ut(&info.spec);
        tx.add_points(&state.decay, validator, Points::Drill, points, now)
            .await?;
    }
    tx.commit().await?;
    state.wake.notify_one();
    let status = match check.decided {
        Some(true) => UpdateStatus::Accepted,
        Some(false) => UpdateStatus::Rejected,
        None => state.store.update_status(job, index).await?,
    };
    Ok(ValidationAck {
        status: status.api(),
    })
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
