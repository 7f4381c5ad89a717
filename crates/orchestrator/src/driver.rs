//! The driver: the async loop that follows the chain, starts jobs, and
//! applies the scheduler's actions to SQLite and the chain.
//!
//! One [`step`] = apply new chain events ([`crate::watcher`]), flush the
//! graph counters, start jobs whose spec has arrived (θ₀, checkpoint 0), then
//! for every active job read its state, [`tick`] it and apply the actions:
//! finalize updates whose window passed, extend or close rounds. Closing a
//! round first fixes its inputs in SQLite (status `closing`), so a restart
//! rebuilds exactly the same checkpoint; the aggregation and evaluation run
//! in `spawn_blocking`; every on-chain call is preceded by a read that skips
//! it when the chain already holds the result.

use std::collections::BTreeSet;
use std::sync::Arc;

use alloy_primitives::{B256, U256};
use funetun_chain::JobManager::JobManagerErrors;
use funetun_chain::bindings::update_status;
use funetun_core::JobSpec;
use funetun_core::protocol::{JobStatus, RoundStatus};
use sqlx::Row;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::scheduler::{Action, JobState, Lease, RoundPhase, Update, UpdateStatus, tick};
use crate::state::{AppState, JobInfo};
use crate::util::{
    hash_text, index_text, now_secs, parse_addr, parse_hash, parse_index, parse_word, u64_from_db,
};
use funetun_ml::Architecture as _;

/// Runs [`step`] every poll interval (or sooner when woken) until `shutdown`
/// turns true.
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    if let Err(e) = backfill_evaluations(&state).await {
        tracing::warn!(error = %e, "cannot re-evaluate checkpoints left without test metrics");
    }
    loop {
        if *shutdown.borrow() {
            break;
        }
        if let Err(e) = step(&state).await {
            tracing::warn!(error = %e, "driver step failed; retrying");
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep(state.config.poll_interval) => {}
            _ = state.wake.notified() => {}
        }
    }
}

/// One pass: chain events, graph flush, job starts, every active job's tick.
pub async fn step(state: &Arc<AppState>) -> Result<()> {
    crate::watcher::poll(state).await?;
    crate::graph::flush(state).await?;
    let now = now_secs();
    let pending: Vec<i64> = sqlx::query_scalar(
        "SELECT job_id FROM jobs WHERE status = 'pending' AND next_spec_try <= ? ORDER BY job_id",
    )
    .bind(now as i64)
    .fetch_all(&state.db.read)
    .await?;
    for job in pending {
        if let Err(e) = start_job(state, job as u64).await {
            tracing::warn!(job, error = %e, "cannot start the job yet");
        }
    }
    let active: Vec<i64> =
        sqlx::query_scalar("SELECT job_id FROM jobs WHERE status = 'active' ORDER BY job_id")
            .fetch_all(&state.db.read)
            .await?;
    if let Err(e) = adopt_unreported(state, now).await {
        tracing::warn!(error = %e, "cannot adopt unreported updates; retrying");
    }
    for job in active {
        if let Err(e) = drive_job(state, job as u64).await {
            tracing::warn!(job, error = %e, "job step failed; retrying");
        }
    }
    finalize_stragglers(state, now).await
}

/// Seconds an on-chain submission may go unreported before validators are
/// sent to it.
pub const UNREPORTED_GRACE_SECS: u64 = 5;

/// Sends to validators (reason `unreported`) every undecided submission of
/// an active job that was committed on-chain but not reported with its
/// delta within [`UNREPORTED_GRACE_SECS`]: its delta may never have been
/// stored (a refused NaN delta, a trainer that hides it), and an update
/// nobody votes on would be finalized — paid — after its window. It answers
/// the trainer's latest task of that round; a submission without any lease
/// is only logged (docs/security.md).
async fn adopt_unreported(state: &AppState, now: u64) -> Result<()> {
    let rows = sqlx::query(
        "SELECT c.job_id, c.update_index, c.round, c.trainer, c.update_hash, c.submit_tx, c.submit_block,
                (SELECT t.task_id FROM tasks t WHERE t.job_id = c.job_id AND t.round = c.round
                   AND t.trainer = c.trainer ORDER BY t.task_id DESC LIMIT 1)
         FROM chain_updates c JOIN jobs j ON j.job_id = c.job_id
         WHERE j.status = 'active' AND c.status IN ('pending', 'challenged')
           AND c.seen_at > 0 AND c.seen_at + ? <= ?
           AND NOT EXISTS (SELECT 1 FROM updates u WHERE u.job_id = c.job_id AND u.update_index = c.update_index)
         LIMIT 32",
    )
    .bind(UNREPORTED_GRACE_SECS as i64)
    .bind(now as i64)
    .fetch_all(&state.db.read)
    .await?;
    for row in rows {
        let job = row.get::<i64, _>(0);
        let idx: String = row.get(1);
        let Some(task_id) = row.get::<Option<i64>, _>(7) else {
            tracing::warn!(job, index = %idx, "an update was submitted without a lease; it is not checked");
            continue;
        };
        let Some(task) = crate::api::task_by_id(state, task_id as u64).await? else {
            continue;
        };
        let view = state
            .ledger
            .update(U256::from(job as u64), parse_index(&idx)?)
            .await?;
        let mut tx = state.db.begin().await?;
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO updates (job_id, update_index, round, trainer, task_id, shard, steps,
             update_hash, submit_tx, submit_block, deadline, replay, loss_before, loss_after,
             submitted_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0, 0, ?, 'unreported')",
        )
        .bind(job)
        .bind(&idx)
        .bind(row.get::<i64, _>(2))
        .bind(row.get::<&str, _>(3))
        .bind(task_id)
        .bind(task.shard as i64)
        .bind(task.steps as i64)
        .bind(row.get::<&str, _>(4))
        .bind(row.get::<&str, _>(5))
        .bind(row.get::<i64, _>(6))
        .bind(view.deadline as i64)
        .bind(now as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE tasks SET submitted = 1 WHERE task_id = ?")
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if inserted == 1 {
            tracing::warn!(job, index = %idx, "an update was committed on-chain but never reported; sent to validators");
        }
    }
    Ok(())
}

/// Finalizes unchecked updates outside the open round (reported after their
/// round closed, or of jobs that ended) once their window passed; the open
/// round's are the scheduler's.
async fn finalize_stragglers(state: &AppState, now: u64) -> Result<()> {
    let rows = sqlx::query(
        "SELECT u.job_id, u.update_index FROM updates u
         JOIN jobs j ON j.job_id = u.job_id
         LEFT JOIN chain_updates c ON c.job_id = u.job_id AND c.update_index = u.update_index
         WHERE u.replay = 0 AND COALESCE(c.status, 'pending') = 'pending' AND u.deadline <= ?
           AND (j.status != 'active' OR u.round < j.round)
           AND NOT EXISTS (SELECT 1 FROM chain_votes v WHERE v.job_id = u.job_id AND v.update_index = u.update_index)
         ORDER BY u.submitted_at LIMIT 32",
    )
    .bind(now as i64)
    .fetch_all(&state.db.read)
    .await?;
    for row in rows {
        let job = row.get::<i64, _>(0) as u64;
        let index = parse_index(row.get::<&str, _>(1))?;
        if let Err(e) = finalize(state, job, index, now).await {
            tracing::warn!(job, index = %index_text(index), error = %e, "cannot finalize the update");
        }
    }
    Ok(())
}

async fn mark_invalid(state: &AppState, job: u64, reason: &str) -> Result<()> {
    tracing::error!(
        job,
        reason,
        "the job's spec is unusable; the job is marked invalid"
    );
    sqlx::query("UPDATE jobs SET status = 'invalid', reason = ? WHERE job_id = ?")
        .bind(reason)
        .bind(job as i64)
        .execute(&state.db.write)
        .await?;
    Ok(())
}

/// Fetches the spec, builds θ₀ and commits checkpoint 0; round 0 opens.
async fn start_job(state: &Arc<AppState>, job: u64) -> Result<()> {
    let row = sqlx::query(
        "SELECT spec_hash, rounds, quorum, secret, spec_attempts FROM jobs WHERE job_id = ?",
    )
    .bind(job as i64)
    .fetch_one(&state.db.read)
    .await?;
    let spec_hash = parse_hash(row.get::<&str, _>(0))?;
    let rounds = row.get::<i64, _>(1) as u64;
    let quorum = row.get::<i64, _>(2) as u32;
    let secret: Vec<u8> = row.get(3);
    let attempts = row.get::<i64, _>(4) as u32;
    let blobs = state.blobs.clone();
    let bytes = tokio::task::spawn_blocking(move || blobs.get(spec_hash)).await??;
    let Some(bytes) = bytes else {
        let delay = (1u64 << attempts.min(16)).min(state.config.spec_retry_max.as_secs().max(1));
        tracing::warn!(
            job,
            spec = %spec_hash,
            retry_in_secs = delay,
            "the job's spec blob is not in the blob store; the owner uploads it with \
             PUT /v1/blobs/{{hash}}?kind=spec"
        );
        sqlx::query("UPDATE jobs SET spec_attempts = ?, next_spec_try = ? WHERE job_id = ?")
            .bind(attempts as i64 + 1)
            .bind((now_secs() + delay) as i64)
            .bind(job as i64)
            .execute(&state.db.write)
            .await?;
        return Ok(());
    };
    let spec = match JobSpec::from_bytes(&bytes) {
        Ok(spec) => spec,
        Err(e) => return mark_invalid(state, job, &e.to_string()).await,
    };
    if u64::from(spec.rounds) != rounds {
        let reason = format!(
            "the spec asks for {} rounds but the job was created on-chain with {rounds}",
            spec.rounds
        );
        return mark_invalid(state, job, &reason).await;
    }
    if u32::from(spec.validation.quorum) != quorum {
        tracing::warn!(
            job,
            spec = spec.validation.quorum,
            chain = quorum,
            "the spec's quorum differs from the on-chain one; the chain's is used"
        );
    }
    let info = match JobInfo::resolve(job, spec, quorum, secret) {
        Ok(info) => Arc::new(info),
        Err(reason) => return mark_invalid(state, job, &reason).await,
    };
    let theta0 = {
        let info = info.clone();
        tokio::task::spawn_blocking(move || crate::rounds::initial_checkpoint(&info)).await?
    };
    let hash = funetun_core::keccak256(&theta0);
    let blobs = state.blobs.clone();
    tokio::task::spawn_blocking(move || blobs.put(hash, &theta0)).await??;
    let tx_hash = commit_checkpoint(state, job, 0, hash).await?;
    let now = now_secs();
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "UPDATE jobs SET spec = ?, name = ?, status = 'active', round = 0 WHERE job_id = ?",
    )
    .bind(info.spec.to_toml())
    .bind(&info.spec.name)
    .bind(job as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT OR IGNORE INTO rounds (job_id, round, status, base_hash, opened_at, deadline)
         VALUES (?, 0, 'open', ?, ?, ?)",
    )
    .bind(job as i64)
    .bind(hash_text(hash))
    .bind(now as i64)
    .bind((now + info.spec.round_timeout_secs) as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state.put_job(info);
    tracing::info!(job, checkpoint = %hash, tx = ?tx_hash, "job started: checkpoint 0 committed, round 0 open");
    Ok(())
}

/// Commits `hash` as checkpoint `round` unless the chain already holds it.
/// Returns the transaction when one was sent.
pub async fn commit_checkpoint(
    state: &AppState,
    job: u64,
    round: u64,
    hash: B256,
) -> Result<Option<B256>> {
    let id = U256::from(job);
    let onchain = state.ledger.checkpoint(id, round).await?;
    if onchain == hash {
        return Ok(None);
    }
    if onchain != B256::ZERO {
        return Err(Error::Inconsistent(format!(
            "checkpoint {round} of job {job} is {onchain} on-chain but {hash} here"
        )));
    }
    match state.ledger.commit_checkpoint(id, round, hash).await {
        Ok(outcome) => Ok(Some(outcome.tx_hash)),
        Err(e) => {
            if state.ledger.checkpoint(id, round).await? == hash {
                Ok(None)
            } else {
                Err(e.into())
            }
        }
    }
}

/// Reads the scheduler's view of a job's open round.
pub async fn load_job_state(state: &AppState, info: &JobInfo) -> Result<Option<JobState>> {
    let job = info.job_id as i64;
    let Some(row) = sqlx::query("SELECT status, round, chain_closed FROM jobs WHERE job_id = ?")
        .bind(job)
        .fetch_optional(&state.db.read)
        .await?
    else {
        return Ok(None);
    };
    if parse_word::<JobStatus>(row.get::<&str, _>(0))? != JobStatus::Active {
        return Ok(None);
    }
    let round: i64 = row.get(1);
    let chain_closed = row.get::<i64, _>(2) != 0;
    let Some(r) = sqlx::query("SELECT status, deadline FROM rounds WHERE job_id = ? AND round = ?")
        .bind(job)
        .bind(round)
        .fetch_optional(&state.db.read)
        .await?
    else {
        return Ok(None);
    };
    let phase = match parse_word(r.get::<&str, _>(0))? {
        RoundStatus::Open => RoundPhase::Open,
        RoundStatus::Closing | RoundStatus::Closed => RoundPhase::Closing,
    };
    let leases = sqlx::query(
        "SELECT task_id, trainer, shard, expires_at, submitted FROM tasks WHERE job_id = ? AND round = ?",
    )
    .bind(job)
    .bind(round)
    .fetch_all(&state.db.read)
    .await?
    .into_iter()
    .map(|r| {
        Ok(Lease {
            task_id: r.get::<i64, _>(0) as u64,
            trainer: parse_addr(r.get::<&str, _>(1))?,
            shard: r.get::<i64, _>(2) as u32,
            expires_at: r.get::<i64, _>(3) as u64,
            submitted: r.get::<i64, _>(4) != 0,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    let updates = sqlx::query(
        "SELECT u.update_index, u.trainer, u.shard, u.update_hash, u.replay, u.deadline,
                COALESCE(c.status, 'pending'),
                EXISTS (SELECT 1 FROM chain_votes v WHERE v.job_id = u.job_id AND v.update_index = u.update_index)
         FROM updates u LEFT JOIN chain_updates c ON c.job_id = u.job_id AND c.update_index = u.update_index
         WHERE u.job_id = ? AND u.round = ?",
    )
    .bind(job)
    .bind(round)
    .fetch_all(&state.db.read)
    .await?
    .into_iter()
    .map(|r| {
        let status = UpdateStatus::parse(r.get::<&str, _>(6));
        Ok(Update {
            index: parse_index(r.get::<&str, _>(0))?,
            trainer: parse_addr(r.get::<&str, _>(1))?,
            shard: r.get::<i64, _>(2) as u32,
            hash: parse_hash(r.get::<&str, _>(3))?,
            status,
            replay: r.get::<i64, _>(4) != 0 || status == UpdateStatus::Challenged,
            deadline: r.get::<i64, _>(5) as u64,
            voted: r.get::<i64, _>(7) != 0,
        })
    })
    .collect::<Result<Vec<_>>>()?;
    let active_trainers = sqlx::query_scalar::<_, String>(
        "SELECT DISTINCT trainer FROM tasks WHERE job_id = ? AND round >= ?",
    )
    .bind(job)
    .bind((round - 1).max(0))
    .fetch_all(&state.db.read)
    .await?
    .iter()
    .map(|t| parse_addr(t))
    .collect::<Result<BTreeSet<_>>>()?;
    Ok(Some(JobState {
        job_id: info.job_id,
        round: round as u64,
        phase,
        shards: info.spec.shards,
        min_updates: info.spec.min_updates,
        round_timeout_secs: info.spec.round_timeout_secs,
        deadline: u64_from_db(r.get(1)),
        chain_closed,
        leases,
        updates,
        active_trainers,
    }))
}

async fn drive_job(state: &Arc<AppState>, job: u64) -> Result<()> {
    let Some(info) = state.job_info(job) else {
        return Ok(());
    };
    let Some(mut js) = load_job_state(state, &info).await? else {
        return Ok(());
    };
    if js.phase == RoundPhase::Closing {
        return close_round(state, &info, js.round, None).await;
    }
    let now = now_secs();
    for action in tick(&mut js, &[], now, 0) {
        match action {
            Action::Finalize { index } => finalize(state, job, index, now).await?,
            Action::ExtendRound { round, deadline } => {
                sqlx::query("UPDATE rounds SET deadline = ? WHERE job_id = ? AND round = ? AND status = 'open'")
                    .bind(deadline as i64)
                    .bind(job as i64)
                    .bind(round as i64)
                    .execute(&state.db.write)
                    .await?;
                tracing::info!(
                    job,
                    round,
                    deadline,
                    "too few accepted updates at the deadline; the round stays open"
                );
            }
            Action::CloseRound { round, inputs } => {
                close_round(state, &info, round, Some(inputs)).await?;
                break;
            }
            Action::EndJob => {
                sqlx::query("UPDATE jobs SET status = 'closed' WHERE job_id = ?")
                    .bind(job as i64)
                    .execute(&state.db.write)
                    .await?;
                tracing::info!(job, "the chain closed the job; nothing left to aggregate");
            }
            Action::Lease { .. } => {}
        }
    }
    Ok(())
}

/// Calls `finalizeUpdate` if the update is still pending, unvoted and
/// unchallenged on-chain and its window has passed.
async fn finalize(state: &AppState, job: u64, index: U256, now: u64) -> Result<()> {
    let id = U256::from(job);
    let view = state.ledger.update(id, index).await?;
    if view.status != update_status::PENDING
        || u32::from(view.validVotes) + u32::from(view.invalidVotes) > 0
    {
        return Ok(());
    }
    if view.deadline > now {
        return Ok(());
    }
    match state.ledger.finalize_update(id, index).await {
        Ok(outcome) => {
            tracing::info!(job, index = %index_text(index), tx = %outcome.tx_hash, "update finalized after its window");
            Ok(())
        }
        Err(e) => match e.contract_error() {
            Some(
                JobManagerErrors::WindowOpen(_)
                | JobManagerErrors::AlreadyDecided(_)
                | JobManagerErrors::UnderReview(_),
            ) => {
                tracing::debug!(job, error = %e, "not finalized this time");
                Ok(())
            }
            _ => Err(e.into()),
        },
    }
}

/// Closes `round`: fixes its inputs (first time), builds and stores θ_{t+1},
/// evaluates it, commits its hash, opens the next round or finishes the job.
async fn close_round(
    state: &Arc<AppState>,
    info: &Arc<JobInfo>,
    round: u64,
    inputs: Option<Vec<(U256, B256)>>,
) -> Result<()> {
    let job = info.job_id as i64;
    if let Some(inputs) = inputs {
        let lock = state.job_lock(info.job_id);
        let _guard = lock.lock().await;
        let mut tx = state.db.begin().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM rounds WHERE job_id = ? AND round = ?")
                .bind(job)
                .bind(round as i64)
                .fetch_optional(&mut *tx)
                .await?;
        if status.as_deref().map(parse_word).transpose()? == Some(RoundStatus::Open) {
            for (position, (index, hash)) in inputs.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO round_inputs (job_id, round, position, update_index, update_hash) VALUES (?, ?, ?, ?, ?)",
                )
                .bind(job)
                .bind(round as i64)
                .bind(position as i64)
                .bind(index_text(*index))
                .bind(hash_text(*hash))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE rounds SET status = 'closing' WHERE job_id = ? AND round = ?")
                .bind(job)
                .bind(round as i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
    }
    let rows = sqlx::query(
        "SELECT update_index, update_hash FROM round_inputs WHERE job_id = ? AND round = ? ORDER BY position",
    )
    .bind(job)
    .bind(round as i64)
    .fetch_all(&state.db.read)
    .await?;
    if rows.is_empty() {
        return Err(Error::Inconsistent(format!(
            "round {round} of job {job} is closing without inputs"
        )));
    }
    let mut deltas = Vec::with_capacity(rows.len());
    let mut indices = Vec::with_capacity(rows.len());
    for row in &rows {
        indices.push(row.get::<String, _>(0));
        deltas.push(state.blob(parse_hash(row.get::<&str, _>(1))?).await?);
    }
    let base_hash: String =
        sqlx::query_scalar("SELECT base_hash FROM rounds WHERE job_id = ? AND round = ?")
            .bind(job)
            .bind(round as i64)
            .fetch_one(&state.db.read)
            .await?;
    let base = state.blob(parse_hash(&base_hash)?).await?;
    let prev_outer: Option<String> = if round == 0 {
        None
    } else {
        sqlx::query_scalar("SELECT outer_state FROM rounds WHERE job_id = ? AND round = ?")
            .bind(job)
            .bind(round as i64 - 1)
            .fetch_optional(&state.db.read)
            .await?
            .flatten()
    };
    let outer = match prev_outer {
        Some(h) => Some(state.blob(parse_hash(&h)?).await?),
        None => None,
    };
    let started = std::time::Instant::now();
    let built = {
        let info = info.clone();
        let exec = state.exec();
        tokio::task::spawn_blocking(move || {
            crate::rounds::build_checkpoint(&info, round, &base, &deltas, outer.as_deref(), &exec)
        })
        .await??
    };
    if built.fell_back_to_mean {
        tracing::warn!(job, round, n = rows.len(), rule = %info.rule, "too few updates for the rule; this round used the mean");
    }
    let hash = funetun_core::keccak256(&built.checkpoint);
    let outer_hash = built.outer_state.as_ref().map(funetun_core::keccak256);
    {
        let blobs = state.blobs.clone();
        let checkpoint = built.checkpoint.clone();
        let outer_state = built.outer_state.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            blobs.put(hash, &checkpoint)?;
            if let (Some(h), Some(bytes)) = (outer_hash, outer_state) {
                blobs.put(h, &bytes)?;
            }
            Ok(())
        })
        .await??;
    }
    let train_loss: Option<f64> = {
        let mut sum = 0.0;
        let mut n = 0;
        for idx in &indices {
            let l: Option<f64> = sqlx::query_scalar(
                "SELECT loss_after FROM updates WHERE job_id = ? AND update_index = ?",
            )
            .bind(job)
            .bind(idx)
            .fetch_optional(&state.db.read)
            .await?;
            if let Some(l) = l {
                sum += l;
                n += 1;
            }
        }
        (n > 0).then(|| sum / n as f64)
    };
    let commit_tx = commit_checkpoint(state, info.job_id, round + 1, hash).await?;
    let now = now_secs();
    let next = round + 1;
    let finished = next >= u64::from(info.spec.rounds);
    let chain_closed: i64 = sqlx::query_scalar("SELECT chain_closed FROM jobs WHERE job_id = ?")
        .bind(job)
        .fetch_one(&state.db.read)
        .await?;
    let lock = state.job_lock(info.job_id);
    let _guard = lock.lock().await;
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "UPDATE rounds SET status = 'closed', checkpoint_hash = ?, outer_state = ?, closed_at = ?,
         commit_tx = COALESCE(?, commit_tx), train_loss = ?
         WHERE job_id = ? AND round = ?",
    )
    .bind(hash_text(hash))
    .bind(outer_hash.map(hash_text))
    .bind(now as i64)
    .bind(commit_tx.map(hash_text))
    .bind(train_loss)
    .bind(job)
    .bind(round as i64)
    .execute(&mut *tx)
    .await?;
    if finished || chain_closed != 0 {
        sqlx::query("UPDATE jobs SET status = ?, round = ? WHERE job_id = ?")
            .bind(
                if finished {
                    JobStatus::Finished
                } else {
                    JobStatus::Closed
                }
                .as_str(),
            )
            .bind(next as i64)
            .bind(job)
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query(
            "INSERT OR IGNORE INTO rounds (job_id, round, status, base_hash, opened_at, deadline)
             VALUES (?, ?, 'open', ?, ?, ?)",
        )
        .bind(job)
        .bind(next as i64)
        .bind(hash_text(hash))
        .bind(now as i64)
        .bind((now + info.spec.round_timeout_secs) as i64)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE jobs SET round = ? WHERE job_id = ?")
            .bind(next as i64)
            .bind(job)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    tracing::info!(
        job,
        round,
        inputs = rows.len(),
        checkpoint = %hash,
        secs = started.elapsed().as_secs_f64(),
        finished,
        "round closed"
    );
    // Test metrics are for people, not for the protocol: evaluate off the
    // round's critical path, while the next round trains.
    spawn_evaluation(state.clone(), info.clone(), round, built.flat);
    Ok(())
}

/// Evaluates checkpoint `round + 1` on the test split in the background and
/// stores its test loss and accuracy on round `round`.
fn spawn_evaluation(state: Arc<AppState>, info: Arc<JobInfo>, round: u64, flat: Vec<f32>) {
    tokio::spawn(async move {
        let job = info.job_id;
        let eval = {
            let st = state.clone();
            tokio::task::spawn_blocking(move || -> Result<funetun_ml::Evaluation> {
                let data = st.dataset_blocking(&info.dataset)?;
                crate::rounds::evaluate(&info, &flat, &data, &st.compute())
            })
            .await
        };
        let eval = match eval {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                tracing::warn!(job, round, error = %e, "cannot evaluate the checkpoint; test metrics left empty");
                return;
            }
            Err(e) => {
                tracing::warn!(job, round, error = %e, "evaluation stopped");
                return;
            }
        };
        let stored = sqlx::query(
            "UPDATE rounds SET test_loss = ?, test_accuracy = ? WHERE job_id = ? AND round = ?",
        )
        .bind(eval.loss)
        .bind(eval.accuracy)
        .bind(job as i64)
        .bind(round as i64)
        .execute(&state.db.write)
        .await;
        match stored {
            Ok(_) => tracing::info!(
                job,
                round,
                test_accuracy = eval.accuracy,
                test_loss = eval.loss,
                "checkpoint evaluated"
            ),
            Err(e) => tracing::warn!(job, round, error = %e, "cannot store the test metrics"),
        }
    });
}

/// Evaluates closed rounds whose test metrics are missing (a crash between
/// a round's close and its evaluation).
async fn backfill_evaluations(state: &Arc<AppState>) -> Result<()> {
    let rows = sqlx::query(
        "SELECT job_id, round, checkpoint_hash FROM rounds
         WHERE status = 'closed' AND test_accuracy IS NULL AND checkpoint_hash IS NOT NULL",
    )
    .fetch_all(&state.db.read)
    .await?;
    for row in rows {
        let job = row.get::<i64, _>(0) as u64;
        let round = row.get::<i64, _>(1) as u64;
        let Some(info) = state.job_info(job) else {
            continue;
        };
        let bytes = state.blob(parse_hash(row.get::<&str, _>(2))?).await?;
        let layout = info.model.zeros();
        let limits = funetun_core::DecodeLimits::for_model(layout.num_params(), layout.len());
        let weights = funetun_core::encoding::decode_with_layout(&bytes, &limits, &layout)?;
        spawn_evaluation(state.clone(), info, round, weights.to_flat());
    }
    Ok(())
}
