//! Leasing tasks to trainers (`POST /v1/tasks`) and the task a participant
//! sees.

use alloy_primitives::Address;
use funetun_core::api::{FailureAck, FailureReport, LeaseRequest, MAX_FAILURE_REASON, Task};
use funetun_core::protocol::JobStatus;

use crate::error::{Error, Result};
use crate::replay::task_steps;
use crate::scheduler::{Action, Event, LeaseDecision, task_seed, tick};
use crate::state::{AppState, JobInfo};
use crate::store::tasks::{NewLease, TaskRow};

/// What a lease request gets.
#[derive(Debug)]
pub enum LeaseOutcome {
    /// A task: new, or the live one the trainer already holds.
    Task(Box<Task>),
    /// Nothing to do now (no free shard, job not started, already reported).
    Nothing,
}

/// The task as participants see it.
pub fn task_of(info: &JobInfo, t: &TaskRow) -> Task {
    Task {
        task_id: t.task_id,
        job_id: t.job_id,
        round: t.round,
        base_hash: t.base_hash,
        model: info.model.kind(),
        transformer: info.model.transformer(),
        dataset: info.spec.dataset.clone(),
        shard: info.data_shard(t.shard),
        slot: t.shard,
        shards: info.spec.shards,
        steps: t.steps,
        batch: info.spec.batch,
        lr: info.spec.lr,
        optimizer: info.spec.optimizer.clone(),
        lr_schedule: info.spec.lr_schedule.clone(),
        global_step: t.round * u64::from(info.spec.steps),
        grad_clip: info.spec.grad_clip,
        seed: t.seed,
        lease_expires_at: t.expires_at,
        lora: info.spec.lora.clone(),
        frozen_hash: info.spec.lora.as_ref().and(info.spec.init),
        sync: info.spec.sync,
    }
}

/// A leased task by id, or 404 `unknown_task`.
pub async fn task(state: &AppState, task_id: u64) -> Result<TaskRow> {
    state.store.task(task_id).await?.ok_or_else(|| {
        Error::not_found("unknown_task", format!("no task {task_id} was leased here"))
    })
}

/// Leases a task of `req.job_id` to `trainer`, hands back its live one, or
/// nothing. `read`: the trainer's live lease other than `req.holding` where
/// the request's admission already read it (`None`: not read).
pub async fn lease(
    state: &AppState,
    trainer: Address,
    req: &LeaseRequest,
    read: Option<Option<TaskRow>>,
    now: u64,
) -> Result<LeaseOutcome> {
    let info = state.job(req.job_id).await?;
    // Fast path, the same answer the scheduler gives (`Existing`): the
    // trainer holds a live lease of the open round and reported nothing yet
    // (a `stale:S` trainer's finished task it is `holding` aside).
    let holding = req.holding.filter(|_| !info.spec.sync.is_sync());
    let live = match read {
        // What was read excepted `req.holding`, which is what is asked
        // unless a `sync` job ignores the `holding`.
        Some(live) if holding == req.holding => live,
        _ => {
            state
                .store
                .live_lease(req.job_id, trainer, holding, now)
                .await?
        }
    };
    if let Some(task) = live {
        return Ok(LeaseOutcome::Task(Box::new(task_of(&info, &task))));
    }
    let status = state.job_status(req.job_id).await?;
    if matches!(status, Some(JobStatus::Finished | JobStatus::Closed)) {
        return Err(Error::conflict(
            "job_closed",
            format!("job {} takes no more updates", req.job_id),
        ));
    }
    if status != Some(JobStatus::Active) {
        return Ok(LeaseOutcome::Nothing);
    }
    let _guard = state.lock_job(req.job_id).await?;
    let Some(mut js) = super::jobs::job_state(state, &info).await? else {
        return Ok(LeaseOutcome::Nothing);
    };
    let mut seed_bytes = [0u8; 8];
    seed_bytes.copy_from_slice(&trainer[12..20]);
    let seed = u64::from_be_bytes(seed_bytes);
    let actions = tick(
        &mut js,
        &[Event::LeaseRequested {
            trainer,
            capacity: req.capacity,
            holding: req.holding,
        }],
        now,
        seed,
    );
    let decision = actions
        .into_iter()
        .find_map(|a| match a {
            Action::Lease { decision, .. } => Some(decision),
            _ => None,
        })
        .unwrap_or(LeaseDecision::NoneAvailable);
    let task = match decision {
        LeaseDecision::Existing { task_id } => state
            .store
            .task(task_id)
            .await?
            .ok_or_else(|| Error::Inconsistent(format!("lease {task_id} vanished")))?,
        LeaseDecision::New { shard } => {
            issue(state, &info, js.round, shard, trainer, req, now).await?
        }
        LeaseDecision::AlreadySubmitted | LeaseDecision::NoneAvailable => {
            return Ok(LeaseOutcome::Nothing);
        }
    };
    Ok(LeaseOutcome::Task(Box::new(task_of(&info, &task))))
}

async fn issue(
    state: &AppState,
    info: &JobInfo,
    round: u64,
    shard: u32,
    trainer: Address,
    req: &LeaseRequest,
    now: u64,
) -> Result<TaskRow> {
    let base_hash = state.store.round_base(info.job_id, round).await?;
    let record = state
        .store
        .trainer_record(&state.decay, trainer, now)
        .await?;
    let steps = task_steps(&info.spec, req.capacity, &record);
    let seed = task_seed(info.spec.seed, round, shard);
    let expires_at = now + info.spec.lease_secs;
    let capacity = req.capacity.to_string();
    let lease = NewLease {
        job_id: info.job_id,
        round,
        shard,
        trainer,
        capacity: &capacity,
        platform: req.platform.as_deref(),
        steps,
        seed,
        base_hash,
        issued_at: now,
        expires_at,
    };
    let mut tx = state.store.begin().await?;
    let task_id = tx.insert_lease(&lease).await?;
    tx.saw_trainer(trainer, &capacity, req.platform.as_deref(), now)
        .await?;
    tx.commit().await?;
    tracing::debug!(job = info.job_id, round, shard, %trainer, task_id, "lease issued");
    Ok(TaskRow {
        task_id,
        job_id: info.job_id,
        round,
        shard,
        trainer,
        steps,
        seed,
        base_hash,
        expires_at,
    })
}

/// Records that `trainer` gave up the task of `report`, and why, and
/// releases its lease so the shard goes to another trainer at once.
pub async fn report_failure(
    state: &AppState,
    trainer: Address,
    report: &FailureReport,
    now: u64,
) -> Result<FailureAck> {
    let reason = report.reason.trim();
    if reason.is_empty() || reason.len() > MAX_FAILURE_REASON {
        return Err(Error::bad_request(
            "invalid_reason",
            format!(
                "the reason must be 1 to {MAX_FAILURE_REASON} bytes of text (got {})",
                reason.len()
            ),
        ));
    }
    let task = task(state, report.task_id).await?;
    if task.trainer != trainer {
        return Err(Error::forbidden(
            "not_your_task",
            format!(
                "task {} is leased to {}, not {trainer}",
                task.task_id, task.trainer
            ),
        ));
    }
    let mut tx = state.store.begin().await?;
    let Some(released) = tx.record_failure(&task, reason, now).await? else {
        return Err(Error::conflict(
            "already_reported",
            format!("task {} has a failure on record already", task.task_id),
        ));
    };
    tx.commit().await?;
    tracing::info!(
        job = task.job_id,
        task = task.task_id,
        %trainer,
        released,
        "a trainer gave up its task: {reason}"
    );
    Ok(FailureAck { released })
}
