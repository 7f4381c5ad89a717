//! The driver: the async loop that follows the chain, starts jobs, and
//! applies the scheduler's actions to the store and the chain.
//!
//! One [`step`] = apply new chain events ([`crate::watcher`]), flush the
//! graph counters, start jobs whose spec has arrived (θ₀, checkpoint 0), then
//! for every active job read its state, [`tick`] it and apply the actions:
//! finalize updates whose window passed, extend or close rounds. Closing a
//! round first fixes its inputs in the store (status `closing`), so a restart
//! rebuilds exactly the same checkpoint; the aggregation and evaluation run
//! in `spawn_blocking`; every on-chain call is preceded by a read that skips
//! it when the chain already holds the result.

use std::sync::Arc;

use alloy_primitives::{B256, U256};
use funetun_chain::JobManager::JobManagerErrors;
use funetun_chain::bindings::update_status;
use funetun_core::JobSpec;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::scheduler::{Action, InputRef, RoundPhase, tick};
use crate::service::jobs::job_state;
use crate::state::{AppState, JobInfo};
use crate::store::jobs::JobStatus;
use crate::store::rounds::RoundClose;
use crate::util::{index_text, now_secs};
use funetun_ml::Architecture as _;

/// Runs [`step`] every poll interval (or sooner when woken) while this
/// replica leads ([`crate::leader`]), each term inside
/// [`crate::store::fenced`] with its token; waits while another replica
/// leads; returns when `shutdown` turns true.
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let mut term = state.leadership.subscribe();
    loop {
        let token = loop {
            if *shutdown.borrow() {
                return;
            }
            if let Some(token) = *term.borrow_and_update() {
                break token;
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = term.changed() => {}
            }
        };
        // Another replica may have sent transactions with the leader's key.
        state.ledger.forget_nonce().await;
        crate::store::fenced(token, lead(&state, token, &mut shutdown, &mut term)).await;
        tracing::info!(
            term = token,
            "the term ended; the driver waits to lead again"
        );
    }
}

/// The driver's loop during term `token`: returns when the term ends or at
/// shutdown.
async fn lead(
    state: &Arc<AppState>,
    token: i64,
    shutdown: &mut watch::Receiver<bool>,
    term: &mut watch::Receiver<Option<i64>>,
) {
    if let Err(e) = backfill_evaluations(state).await {
        tracing::warn!(error = %e, "cannot re-evaluate checkpoints left without test metrics");
    }
    loop {
        if *shutdown.borrow() || *term.borrow_and_update() != Some(token) {
            return;
        }
        match step(state).await {
            Err(Error::Deposed(why)) => {
                tracing::warn!("a write of the driver was refused: {why}");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "driver step failed; retrying"),
            Ok(()) => {}
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = term.changed() => {}
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
    for job in state.store.jobs_in(JobStatus::Pending, now).await? {
        if let Err(e) = start_job(state, job).await {
            tracing::warn!(job, error = %e, "cannot start the job yet");
        }
    }
    let active = state.store.jobs_in(JobStatus::Active, now).await?;
    if let Err(e) = crate::service::updates::adopt_unreported(state, now).await {
        tracing::warn!(error = %e, "cannot adopt unreported updates; retrying");
    }
    for job in active {
        if let Err(e) = drive_job(state, job).await {
            tracing::warn!(job, error = %e, "job step failed; retrying");
        }
    }
    if let Err(e) = crate::service::compute::settle_on_chain(state).await {
        tracing::warn!(error = %e, "cannot settle compute tasks on-chain; retrying");
    }
    finalize_stragglers(state, now).await
}

/// Finalizes unchecked updates outside the open round (reported after their
/// round closed, or of jobs that ended) once their window passed; the open
/// round's are the scheduler's.
async fn finalize_stragglers(state: &AppState, now: u64) -> Result<()> {
    for (job, index) in state.store.stragglers(now).await? {
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
    state.store.mark_invalid(job, reason).await
}

/// Fetches the spec, builds θ₀ and commits checkpoint 0; round 0 opens.
async fn start_job(state: &Arc<AppState>, job: u64) -> Result<()> {
    let start = state.store.job_start(job).await?;
    let (spec_hash, rounds, quorum, attempts) = (
        start.spec_hash,
        start.rounds,
        start.quorum,
        start.spec_attempts,
    );
    let secret = start.secret;
    let bytes = state.blobs.get(spec_hash).await?;
    let Some(bytes) = bytes else {
        let delay = (1u64 << attempts.min(16)).min(state.config.spec_retry_max.as_secs().max(1));
        tracing::warn!(
            job,
            spec = %spec_hash,
            retry_in_secs = delay,
            "the job's spec blob is not in the blob store; the owner uploads it with \
             PUT /v1/blobs/{{hash}}?kind=spec"
        );
        state
            .store
            .spec_missing(job, attempts + 1, now_secs() + delay)
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
    // The checks below judge the owner's blobs; a blob store that does not
    // answer now must not make the job invalid, so reach it first (an
    // outage is an error here, and the start is tried again next tick).
    for blob in info.spec.blobs() {
        if !state.blobs.contains(blob).await? {
            return Err(Error::Inconsistent(format!(
                "blob {blob} named by job {job}'s spec is not in the blob store"
            )));
        }
    }
    let hash = match info.spec.init {
        // The owner's checkpoint is checkpoint 0, if it is the job's model
        // (a LoRA job's checkpoints are adapters: its model stays frozen).
        Some(init) if info.space.lora().is_none() => {
            let bytes = state.blob(init).await?;
            let model = info.model;
            let decoded = tokio::task::spawn_blocking(move || model.decode(&bytes)).await?;
            if let Err(e) = decoded {
                let reason = format!(
                    "init: blob {init} is not a {} checkpoint in the spec's layout: {e}",
                    info.model
                );
                return mark_invalid(state, job, &reason).await;
            }
            init
        }
        _ => {
            if info.space.lora().is_some() {
                // The frozen model must be the job's model before any round opens.
                let (st, info2) = (state.clone(), info.clone());
                let frozen =
                    tokio::task::spawn_blocking(move || st.frozen_blocking(&info2)).await?;
                if let Err(e) = frozen {
                    let reason = format!(
                        "init: the frozen model of a LoRA job must be a {} checkpoint in the spec's layout: {e}",
                        info.model
                    );
                    return mark_invalid(state, job, &reason).await;
                }
            }
            let theta0 = {
                let info = info.clone();
                tokio::task::spawn_blocking(move || crate::rounds::initial_checkpoint(&info))
                    .await?
            };
            let hash = funetun_core::keccak256(&theta0);
            state.blobs.put(hash, theta0.into()).await?;
            hash
        }
    };
    if !info.dataset.blobs().is_empty() {
        // An uploaded data set must load and fit the model before any round opens.
        let (st, info2) = (state.clone(), info.clone());
        let fits = tokio::task::spawn_blocking(move || -> Result<()> {
            let data = st.dataset_blocking(&info2.dataset)?;
            funetun_ml::train::check_fits(info2.model, &data)?;
            Ok(())
        })
        .await?;
        if let Err(e) = fits {
            let reason = format!("dataset {}: {e}", info.dataset);
            return mark_invalid(state, job, &reason).await;
        }
    }
    let tx_hash = commit_checkpoint(state, job, 0, hash, B256::ZERO).await?;
    let now = now_secs();
    let mut tx = state.store.begin().await?;
    tx.activate_job(job, &info.spec.to_toml(), &info.spec.name)
        .await?;
    tx.open_round(job, 0, hash, now, now + info.spec.round_timeout_secs)
        .await?;
    tx.commit().await?;
    state.preload_dataset(&info.dataset);
    state.put_job(info);
    tracing::info!(job, checkpoint = %hash, tx = ?tx_hash, "job started: checkpoint 0 committed, round 0 open");
    Ok(())
}

/// Commits `hash` as checkpoint `round`, with the hash of its manifest
/// (zero for checkpoint 0), unless the chain already holds it. Returns the
/// transaction when one was sent.
pub async fn commit_checkpoint(
    state: &AppState,
    job: u64,
    round: u64,
    hash: B256,
    manifest: B256,
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
    match state
        .ledger
        .commit_checkpoint(id, round, hash, manifest)
        .await
    {
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

async fn drive_job(state: &Arc<AppState>, job: u64) -> Result<()> {
    // Active, so its spec is stored (loaded here when another replica's
    // term started the job).
    let info = state.job(job).await?;
    let Some(mut js) = job_state(state, &info).await? else {
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
                state.store.extend_round(job, round, deadline).await?;
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
                state.store.set_job_status(job, JobStatus::Closed).await?;
                tracing::info!(job, "the chain closed the job; nothing left to aggregate");
            }
            Action::Lease { .. } => {}
        }
    }
    Ok(())
}

/// Calls `finalizeUpdate` if the update is still pending, unvoted and
/// unchallenged on-chain and its window has passed, or if it is still
/// undecided at its decision timeout (the contract then accepts it, or voids
/// it when it was challenged or objected to).
async fn finalize(state: &AppState, job: u64, index: U256, now: u64) -> Result<()> {
    let id = U256::from(job);
    let view = state.ledger.update(id, index).await?;
    let undecided =
        view.status == update_status::PENDING || view.status == update_status::CHALLENGED;
    let reviewed = view.status == update_status::CHALLENGED
        || u32::from(view.validVotes) + u32::from(view.invalidVotes) > 0;
    let timed_out = view.deadline.saturating_add(state.decision_timeout) <= now;
    if !undecided || view.deadline > now || (reviewed && !timed_out) {
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
    inputs: Option<Vec<InputRef>>,
) -> Result<()> {
    let job = info.job_id;
    if let Some(inputs) = inputs {
        let _guard = state.lock_job(job).await?;
        let mut tx = state.store.begin().await?;
        if tx.fix_round_inputs(job, round, &inputs).await? {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
    }
    let rows = state.store.round_inputs(job, round).await?;
    if rows.is_empty() {
        return Err(Error::Inconsistent(format!(
            "round {round} of job {job} is closing without inputs"
        )));
    }
    let mut deltas = Vec::with_capacity(rows.len());
    let mut inputs = Vec::with_capacity(rows.len());
    // Most inputs share a base: read each base round's hash once.
    let mut bases = std::collections::BTreeMap::new();
    for row in &rows {
        let InputRef {
            index,
            hash,
            base_round,
        } = row.input;
        deltas.push(Vec::from(state.blob(hash).await?));
        let base = match bases.get(&base_round) {
            Some(&b) => b,
            None => {
                let b = state.store.round_base(job, base_round).await?;
                bases.insert(base_round, b);
                b
            }
        };
        inputs.push(crate::rounds::Input {
            index,
            trainer: funetun_chain::bindings::split_update_index(index).trainer,
            update: hash,
            base_round,
            base,
        });
    }
    let parent = state.store.round_base(job, round).await?;
    let base = state.blob(parent).await?;
    let prev_outer = match round.checked_sub(1) {
        Some(prev) => state.store.outer_state(job, prev).await?,
        None => None,
    };
    let outer = match prev_outer {
        Some(h) => Some((h, state.blob(h).await?)),
        None => None,
    };
    let started = std::time::Instant::now();
    let built = {
        let info = info.clone();
        let exec = state.exec();
        tokio::task::spawn_blocking(move || {
            crate::rounds::build_checkpoint(
                &info,
                round,
                parent,
                &base,
                &inputs,
                &deltas,
                outer.as_ref().map(|(h, b)| (*h, &b[..])),
                &exec,
            )
        })
        .await??
    };
    if built.fell_back_to_mean {
        tracing::warn!(job, round, n = rows.len(), rule = %info.rule, "too few updates for the rule; this round used the mean");
    }
    let hash = built.manifest.checkpoint;
    let outer_hash = built.manifest.outer_state_out;
    let manifest = built.manifest.to_bytes();
    let manifest_hash = funetun_core::keccak256(&manifest);
    state
        .blobs
        .put(hash, built.checkpoint.clone().into())
        .await?;
    if let (Some(h), Some(bytes)) = (outer_hash, built.outer_state.clone()) {
        state.blobs.put(h, bytes.into()).await?;
    }
    state.blobs.put(manifest_hash, manifest.into()).await?;
    let train_loss: Option<f64> = {
        let losses: Vec<f64> = rows.iter().filter_map(|r| r.loss).collect();
        (!losses.is_empty()).then(|| losses.iter().sum::<f64>() / losses.len() as f64)
    };
    let commit_tx = commit_checkpoint(state, job, round + 1, hash, manifest_hash).await?;
    let now = now_secs();
    let next = round + 1;
    let finished = next >= u64::from(info.spec.rounds);
    let chain_closed = state
        .store
        .job_progress(job)
        .await?
        .ok_or_else(|| Error::Inconsistent(format!("job {job} vanished")))?
        .chain_closed();
    let _guard = state.lock_job(job).await?;
    let mut tx = state.store.begin().await?;
    tx.close_round(
        job,
        round,
        &RoundClose {
            checkpoint_hash: hash,
            outer_state: outer_hash,
            closed_at: now,
            commit_tx,
            manifest_hash,
            train_loss,
            led_by: state.config.replica.clone(),
        },
    )
    .await?;
    if finished || chain_closed {
        let status = if finished {
            JobStatus::Finished
        } else {
            JobStatus::Closed
        };
        tx.advance_job(job, next, Some(status)).await?;
    } else {
        tx.open_round(job, next, hash, now, now + info.spec.round_timeout_secs)
            .await?;
        tx.advance_job(job, next, None).await?;
    }
    tx.commit().await?;
    tracing::info!(
        job,
        round,
        inputs = rows.len(),
        checkpoint = %hash,
        manifest = %manifest_hash,
        secs = started.elapsed().as_secs_f64(),
        finished,
        "round closed"
    );
    // Test metrics are for people, not for the protocol: evaluate off the
    // round's critical path, while the next round trains.
    spawn_evaluation(state.clone(), info.clone(), round, built.flat);
    if let Err(e) = prune_deltas(state, job).await {
        tracing::warn!(job, error = %e, "cannot prune rejected deltas; trying again at the next round");
    }
    Ok(())
}

/// Deletes the deltas of the job's rejected and void updates whose round
/// closed: no checkpoint, manifest or audit needs them, and a verdict is
/// final (their hashes stay in the database and on-chain). Accepted deltas,
/// checkpoints, manifests and optimizer states are kept: `funetun
/// verify-chain` rebuilds every checkpoint from them (docs/orchestrator.md).
async fn prune_deltas(state: &AppState, job: u64) -> Result<()> {
    let prunable = state.store.prunable_deltas(job).await?;
    let (mut removed, mut bytes) = (0u32, 0u64);
    for (index, hash) in prunable {
        if let Some(size) = state.blobs.remove(hash).await? {
            removed += 1;
            bytes += size;
        }
        let mut tx = state.store.begin().await?;
        tx.mark_pruned(job, index).await?;
        tx.commit().await?;
    }
    if removed > 0 {
        tracing::info!(
            job,
            removed,
            bytes,
            "deleted the deltas of rejected and void updates"
        );
    }
    Ok(())
}

/// Evaluates checkpoint `round + 1` on the test split in the background and
/// stores its test loss and accuracy on round `round`.
/// Evaluates checkpoint `flat` (a LoRA job's adapters are merged into its
/// frozen model first) and stores the test metrics and text sample.
fn spawn_evaluation(state: Arc<AppState>, info: Arc<JobInfo>, round: u64, flat: Vec<f32>) {
    tokio::spawn(async move {
        let job = info.job_id;
        let eval = {
            let st = state.clone();
            tokio::task::spawn_blocking(
                move || -> Result<(funetun_ml::Evaluation, Option<String>)> {
                    let data = st.dataset_blocking(&info.dataset)?;
                    let flat = st.full_weights_blocking(&info, &flat)?;
                    let eval = crate::rounds::evaluate(&info, &flat, &data, &st.compute())?;
                    let sample = crate::rounds::sample(&info, &flat, &data, &st.compute())?;
                    Ok((eval, sample))
                },
            )
            .await
        };
        let (eval, sample) = match eval {
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
        let stored = state
            .store
            .set_test_metrics(job, round, eval.loss, eval.accuracy, sample.as_deref())
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
    for r in state.store.unevaluated_rounds().await? {
        let (job, round) = (r.job_id, r.round);
        let Ok(info) = state.job(job).await else {
            continue;
        };
        let bytes = state.blob(r.checkpoint_hash).await?;
        let weights = info.space.decode(&bytes)?;
        spawn_evaluation(state.clone(), info, round, weights.to_flat());
    }
    Ok(())
}
