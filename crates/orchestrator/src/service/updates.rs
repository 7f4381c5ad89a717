//! Accepting a trainer's report of its on-chain submission
//! (`POST /v1/updates`), and adopting submissions nobody reported.
//!
//! [`report`] is a sequence of named steps: load the task and check the
//! holder, answer a repeated report idempotently, check that the delta is
//! stored, let the chain check the transaction
//! ([`funetun_chain::Ledger::verify_submission`]) and the committed hash,
//! run the guards, draw the replay, and write everything in one store
//! transaction.

use std::sync::Arc;

use alloy_primitives::{Address, B256, U256};
use funetun_chain::SubmissionCheck;
use funetun_chain::bindings::update_index;
use funetun_core::api::{CheckReason, UpdateAck, UpdateReport};

use crate::error::{Error, Result};
use crate::guard::{Measured, ProbeTask};
use crate::replay::{drawn, replay_probability};
use crate::scheduler::UpdateStatus;
use crate::state::{AppState, JobInfo};
use crate::store::tasks::TaskRow;
use crate::store::updates::NewUpdate;
use crate::util::index_text;

/// Accepts `trainer`'s report of its submission; answers the update's
/// index and on-chain status.
pub async fn report(
    state: &Arc<AppState>,
    trainer: Address,
    body: &UpdateReport,
    now: u64,
) -> Result<UpdateAck> {
    for (field, loss) in [
        ("loss_before", body.loss_before),
        ("loss_after", body.loss_after),
    ] {
        if !loss.is_finite() {
            return Err(Error::bad_request(
                "bad_loss",
                format!("{field} is {loss}; report the finite losses the task measured"),
            ));
        }
    }
    let task = held_task(state, trainer, body.task_id).await?;
    let info = state.job(task.job_id).await?;
    let round = submission_round(&info, &task, body.round)?;
    let index = update_index(round, task.shard, trainer);
    if let Some(ack) = repeated(state, &task, index, body).await? {
        return Ok(ack);
    }
    require_blob(state, task.job_id, body.update_hash).await?;
    let block = verify_on_chain(state, &task, round, index, trainer, body).await?;
    let view = state.ledger.update(U256::from(task.job_id), index).await?;
    let chain_status = UpdateStatus::from_chain(view.status);
    let screen = screen(state, &info, &task, body.update_hash).await?;
    let record = state
        .store
        .trainer_record(&state.decay, trainer, now)
        .await?;
    let p = replay_probability(&info.spec, &record);
    let reason = check_reason(&info, chain_status, &screen, p, block.1, index);
    let new = NewUpdate {
        job_id: task.job_id,
        index,
        round,
        trainer,
        task_id: task.task_id,
        shard: task.shard,
        steps: task.steps,
        update_hash: body.update_hash,
        submit_tx: body.tx_hash,
        submit_block: block.0,
        deadline: view.deadline,
        reason,
        loss_before: finite(body.loss_before),
        loss_after: finite(body.loss_after),
        platform: body.platform.as_deref(),
        submitted_at: now,
        duplicate_of: screen.duplicate_of,
        norm: screen.measured.map(|m| m.norm),
        probe_gain: screen.measured.and_then(|m| m.probe_gain),
    };
    if store_report(state, &new, now).await? {
        tracing::info!(job = task.job_id, round, base_round = task.round, shard = task.shard, %trainer, %reason, p, "update reported");
    }
    state.wake.notify_one();
    Ok(UpdateAck {
        update_index: index,
        status: chain_status.api(),
    })
}

/// The round the update was submitted in: the task's (`sync`), or under
/// `stale:S` the reported one, no earlier than the task's and at most S
/// later: 409 `too_stale` otherwise (the update is not merged, and nobody
/// is slashed for it; docs/sync.md).
fn submission_round(info: &JobInfo, task: &TaskRow, reported: Option<u64>) -> Result<u64> {
    let round = reported.unwrap_or(task.round);
    let bound = u64::from(info.spec.sync.max_staleness());
    if round < task.round || round - task.round > bound {
        let policy = info.spec.sync;
        return Err(Error::conflict(
            "too_stale",
            format!(
                "task {} trained on checkpoint {} and was submitted in round {round}; \
                 a {policy} job takes updates at most {bound} rounds behind. It is not \
                 merged and nobody is slashed for it: lease a new task",
                task.task_id, task.round
            ),
        ));
    }
    Ok(round)
}

/// The task, which `trainer` must hold: 404 `unknown_task`, 403 `not_lease_holder`.
async fn held_task(state: &AppState, trainer: Address, task_id: u64) -> Result<TaskRow> {
    let task = super::tasks::task(state, task_id).await?;
    if task.trainer != trainer {
        return Err(Error::forbidden(
            "not_lease_holder",
            format!(
                "task {} was leased to {}, not to {trainer}",
                task.task_id, task.trainer
            ),
        ));
    }
    Ok(task)
}

/// A report of an update already stored: the same report again is
/// answered with the update's status; another hash is 409
/// `conflicting_update`, the same hash with another transaction or other
/// losses 409 `conflicting_report` (the first report stands).
async fn repeated(
    state: &AppState,
    task: &TaskRow,
    index: U256,
    body: &UpdateReport,
) -> Result<Option<UpdateAck>> {
    let Some(existing) = state.store.reported_hash(task.job_id, index).await? else {
        return Ok(None);
    };
    if existing != body.update_hash {
        return Err(Error::conflict(
            "conflicting_update",
            format!(
                "an update {existing} was already reported for round {}",
                task.round
            ),
        ));
    }
    if let Some(stored) = state.store.reported(task.job_id, index).await? {
        let same = stored.tx_hash == body.tx_hash
            && stored.loss_before.to_bits() == body.loss_before.to_bits()
            && stored.loss_after.to_bits() == body.loss_after.to_bits();
        if !same {
            return Err(Error::conflict(
                "conflicting_report",
                format!(
                    "update {existing} was already reported with transaction {}, loss {} → {}; \
                     a report cannot be changed",
                    stored.tx_hash, stored.loss_before, stored.loss_after
                ),
            ));
        }
    }
    Ok(Some(UpdateAck {
        update_index: index,
        status: state.store.update_status(task.job_id, index).await?.api(),
    }))
}

/// 409 `missing_blob` unless the delta is stored.
async fn require_blob(state: &AppState, job: u64, hash: B256) -> Result<()> {
    if state.blobs.contains(hash).await? {
        return Ok(());
    }
    Err(Error::conflict(
        "missing_blob",
        format!(
            "the delta {hash} is not stored; upload it with PUT /v1/blobs/{hash}?job={job} first"
        ),
    ))
}

/// The chain's word on the named transaction and the committed hash; the
/// block number and hash that included the submission.
async fn verify_on_chain(
    state: &AppState,
    task: &TaskRow,
    round: u64,
    index: U256,
    trainer: Address,
    body: &UpdateReport,
) -> Result<(u64, B256)> {
    let job = task.job_id;
    let tx = body.tx_hash;
    let check = state
        .ledger
        .verify_submission(
            tx,
            U256::from(job),
            round,
            task.shard,
            trainer,
            body.update_hash,
        )
        .await?;
    let block = match check {
        SubmissionCheck::Confirmed {
            block_number,
            block_hash,
        } => (block_number, block_hash),
        SubmissionCheck::NotMined => {
            return Err(Error::conflict(
                "tx_not_found",
                format!("transaction {tx} is not mined (yet); report after its receipt exists"),
            ));
        }
        SubmissionCheck::Reverted => {
            return Err(Error::bad_request(
                "tx_failed",
                format!("transaction {tx} reverted"),
            ));
        }
        SubmissionCheck::NoEvent => {
            return Err(Error::bad_request(
                "wrong_tx",
                format!(
                    "transaction {tx} is not {trainer}'s submitUpdate of {} for job {job} round {round}",
                    body.update_hash
                ),
            ));
        }
        SubmissionCheck::Unconfirmed { .. } => {
            return Err(Error::conflict(
                "not_confirmed",
                format!(
                    "transaction {tx} needs {} confirmations; report again shortly",
                    state.config.confirmations
                ),
            ));
        }
    };
    if !state
        .ledger
        .matches_hash(U256::from(job), index, body.update_hash)
        .await?
    {
        return Err(Error::conflict(
            "hash_mismatch",
            format!(
                "the contract does not hold {} for this update",
                body.update_hash
            ),
        ));
    }
    Ok(block)
}

/// Why the update goes to validators, if it does: a challenge, a guard's
/// flag, probation, or the replay draw (docs/orchestrator.md).
fn check_reason(
    info: &JobInfo,
    chain_status: UpdateStatus,
    screen: &Screen,
    p: f64,
    block_hash: B256,
    index: U256,
) -> CheckReason {
    if chain_status == UpdateStatus::Challenged {
        CheckReason::Challenged
    } else if let Some(flag) = screen.flag {
        flag
    } else if p >= 1.0 {
        CheckReason::Probation
    } else if drawn(&info.secret, block_hash, index, p) {
        CheckReason::Drawn
    } else {
        CheckReason::None
    }
}

/// One transaction: the update, its task marked reported, the trainer's
/// platform, its training points if the verdict came first. Returns
/// whether the update was new.
async fn store_report(state: &AppState, new: &NewUpdate<'_>, now: u64) -> Result<bool> {
    let mut tx = state.store.begin().await?;
    let inserted = tx.insert_update(new).await?;
    tx.mark_submitted(new.task_id).await?;
    if let Some(platform) = new.platform {
        tx.set_platform(new.trainer, platform).await?;
    }
    tx.credit_training(&state.decay, new.job_id, new.index, now)
        .await?;
    tx.commit().await?;
    Ok(inserted)
}

/// What the guards found on a reported delta.
struct Screen {
    flag: Option<CheckReason>,
    duplicate_of: Option<U256>,
    measured: Option<Measured>,
}

/// Runs the guards (`guard.rs`) on the delta `hash` reported for `task`.
async fn screen(
    state: &Arc<AppState>,
    info: &Arc<JobInfo>,
    task: &TaskRow,
    hash: B256,
) -> Result<Screen> {
    let duplicate_of = state
        .store
        .same_hash_elsewhere(task.job_id, hash, task.round, task.shard)
        .await?;
    let reference = state.store.reference_norms(task.job_id, task.round).await?;
    let base = state.blob(task.base_hash).await?;
    let delta = state.blob(hash).await?;
    let (st2, info2) = (state.clone(), info.clone());
    let probe = ProbeTask {
        shard: info.data_shard(task.shard),
        shards: info.spec.shards,
        seed: task.seed,
    };
    let measured = tokio::task::spawn_blocking(move || -> Result<Measured> {
        let base = st2.start_blocking(&info2, info2.space.decode(&base)?)?;
        let delta = info2.space.decode(&delta)?;
        // No data set here (offline, unknown): the loss probe is skipped.
        let data = st2.dataset_blocking(&info2.dataset).ok();
        crate::guard::measure(
            &info2.space,
            &base,
            &delta,
            data.as_deref(),
            probe,
            &st2.compute(),
        )
    })
    .await??;
    let flag = if duplicate_of.is_some() {
        Some(CheckReason::KnownHash)
    } else {
        crate::guard::judge(&measured, &reference)
    };
    Ok(Screen {
        flag,
        duplicate_of,
        measured: Some(measured),
    })
}

fn finite(x: f32) -> f64 {
    if x.is_finite() { f64::from(x) } else { 0.0 }
}

/// Seconds an on-chain submission may go unreported before validators are
/// sent to it.
pub const UNREPORTED_GRACE_SECS: u64 = 5;

/// Sends to validators (reason `unreported`) every undecided submission of
/// an active job that was committed on-chain but not reported with its
/// delta within [`UNREPORTED_GRACE_SECS`]: its delta may never have been
/// stored (a refused NaN delta, a trainer that hides it), and an update
/// nobody votes on would be finalized — paid — after its window. It answers
/// the trainer's task on the shard its index names. A submission without
/// any such lease is recorded with the task a lease of that shard would
/// have been (the job's steps, the round's base and seed) and replayed like
/// any other: validators vote it down unless it is exactly that work.
pub async fn adopt_unreported(state: &AppState, now: u64) -> Result<()> {
    for u in state.store.unreported(UNREPORTED_GRACE_SECS, now).await? {
        let (job, idx) = (u.job_id, index_text(u.index));
        let info = state.job(job).await?;
        let shard = funetun_chain::bindings::split_update_index(u.index).shard;
        let oldest = u
            .round
            .saturating_sub(u64::from(info.spec.sync.max_staleness()));
        let task_id = match state
            .store
            .task_on_shard(job, u.trainer, shard, oldest..=u.round)
            .await?
        {
            Some(id) => id,
            None => {
                let id = record_leaseless_task(state, &info, &u, shard, now).await?;
                tracing::warn!(job, index = %idx, task = id, shard, "an update was submitted without a lease; recorded the task its shard names for validators to replay");
                id
            }
        };
        let Some(task) = state.store.task(task_id).await? else {
            continue;
        };
        let view = state.ledger.update(U256::from(job), u.index).await?;
        let new = NewUpdate {
            job_id: job,
            index: u.index,
            round: u.round,
            trainer: u.trainer,
            task_id,
            shard: task.shard,
            steps: task.steps,
            update_hash: u.update_hash,
            submit_tx: u.submit_tx,
            submit_block: u.submit_block,
            deadline: view.deadline,
            reason: CheckReason::Unreported,
            loss_before: 0.0,
            loss_after: 0.0,
            platform: None,
            submitted_at: now,
            duplicate_of: None,
            norm: None,
            probe_gain: None,
        };
        let mut tx = state.store.begin().await?;
        let inserted = tx.insert_update(&new).await?;
        tx.mark_submitted(task_id).await?;
        tx.commit().await?;
        if inserted {
            tracing::warn!(job, index = %idx, "an update was committed on-chain but never reported; sent to validators");
        }
    }
    Ok(())
}

/// Records, for a submission no lease answers, the task a lease of `shard`
/// in its round would have been: the round's base, the shard's seed and the
/// job's steps for a medium trainer. It is issued already expired, so it
/// holds no shard.
async fn record_leaseless_task(
    state: &AppState,
    info: &JobInfo,
    u: &crate::store::updates::Unreported,
    shard: u32,
    now: u64,
) -> Result<u64> {
    let capacity = funetun_core::api::Capacity::M;
    let base_hash = state.store.round_base(u.job_id, u.round).await?;
    let lease = crate::store::tasks::NewLease {
        job_id: u.job_id,
        round: u.round,
        shard,
        trainer: u.trainer,
        capacity: &capacity.to_string(),
        platform: None,
        steps: info.spec.steps_for(capacity),
        seed: crate::scheduler::task_seed(info.spec.seed, u.round, shard),
        base_hash,
        issued_at: now,
        expires_at: now,
    };
    let mut tx = state.store.begin().await?;
    let id = tx.insert_lease(&lease).await?;
    tx.commit().await?;
    Ok(id)
}
