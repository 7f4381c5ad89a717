//! Generic verified compute (docs/tasks.md): owners submit WebAssembly
//! tasks, workers lease replicas and report results, and BOINC's
//! redundancy rule ([`funetun_compute::decide`]) picks the canonical result,
//! running the owner's validator in the orchestrator's own sandbox.
//!
//! Every step is one write transaction, so replicas of the orchestrator on
//! one PostgreSQL database agree on who runs what: leasing a replica,
//! reporting one (which settles the task in the same transaction), and
//! lapsing leases that ran out (after which their tasks are settled too).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use alloy_primitives::{Address, B256};
use funetun_compute::{Input, Limits, Outcome, Program, Sandbox, Validator, Verdict, decide};
use funetun_core::compute::{
    ComputeStatus, Exchange, ExchangeReply, MAX_BATCH, ReplicaAck, ReplicaLease, ReplicaReport,
    ReplicaStatus, RunResult, TaskSubmission, TaskSubmitted,
};
use funetun_core::keccak256;

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::StoreTx;
use crate::store::compute::{ComputeTask, NewComputeTask};
use crate::store::participants::Points;
use crate::util::now_secs;

/// Most bytes of a task or validator module.
pub const MAX_MODULE_BYTES: usize = 32 << 20;

/// The side of a drill's matrices.
pub const DRILL_N: u32 = 64;

/// Most fuel a task may ask for per replica (ten times the default).
pub const MAX_FUEL: u64 = 10 * Limits::TASK.fuel;

/// The orchestrator's sandbox, with the modules it compiled (the owners'
/// validators, checked submissions) kept by hash.
#[derive(Debug)]
pub struct Wasm {
    sandbox: Sandbox,
    programs: Mutex<HashMap<B256, Program>>,
    validators: Mutex<HashMap<B256, Validator>>,
    /// The unix second leases were last checked for lapses (at most once a
    /// second, not at every lease).
    lapses_checked: AtomicU64,
    /// When each worker last drilled, as far as this process knows (the
    /// store is asked when this does not say "recently").
    drilled: Mutex<HashMap<Address, u64>>,
}

impl Wasm {
    /// When `worker` last drilled, as far as this process knows.
    fn drilled_at(&self, worker: Address) -> Option<u64> {
        let drilled = self.drilled.lock().unwrap_or_else(|e| e.into_inner());
        drilled.get(&worker).copied()
    }

    /// Records that `worker` drilled at `at`.
    fn drilled(&self, worker: Address, at: u64) {
        let mut drilled = self.drilled.lock().unwrap_or_else(|e| e.into_inner());
        drilled.insert(worker, at);
    }

    /// A fresh sandbox.
    pub fn new() -> Result<Wasm> {
        let sandbox = Sandbox::new()
            .map_err(|e| Error::Config(format!("cannot start the WebAssembly sandbox: {e}")))?;
        Ok(Wasm {
            sandbox,
            programs: Mutex::default(),
            validators: Mutex::default(),
            lapses_checked: AtomicU64::new(0),
            drilled: Mutex::default(),
        })
    }
}

async fn module_bytes(st: &AppState, hash: B256, what: &str) -> Result<bytes::Bytes> {
    let Some(bytes) = st.blobs.get(hash).await? else {
        return Err(Error::bad_request(
            "missing_blob",
            format!(
                "the {what} module {hash} is not stored here; upload it first \
                 (PUT /v1/blobs/{hash}?kind=data, which `funetun tasks submit` does)"
            ),
        ));
    };
    if bytes.len() > MAX_MODULE_BYTES {
        return Err(Error::bad_request(
            "module_too_large",
            format!(
                "the {what} module is {} bytes; a module may have at most {MAX_MODULE_BYTES}",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// The task module `hash`, compiled and checked (400 `invalid_module`).
async fn program(st: &std::sync::Arc<AppState>, hash: B256) -> Result<Program> {
    if let Some(p) = st
        .wasm
        .programs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&hash)
    {
        return Ok(p.clone());
    }
    let bytes = module_bytes(st, hash, "task").await?;
    let state = st.clone();
    let program = tokio::task::spawn_blocking(move || state.wasm.sandbox.compile(&bytes))
        .await?
        .map_err(|f| Error::bad_request("invalid_module", f.detail))?;
    st.wasm
        .programs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(hash, program.clone());
    Ok(program)
}

/// The validator of module `hash` (none: byte equality), compiled and
/// checked (400 `bad_validator`).
async fn validator(st: &std::sync::Arc<AppState>, hash: Option<B256>) -> Result<Validator> {
    let Some(hash) = hash else {
        return Ok(Validator::exact());
    };
    if let Some(v) = st
        .wasm
        .validators
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&hash)
    {
        return Ok(v.clone());
    }
    let bytes = module_bytes(st, hash, "validator").await?;
    let state = st.clone();
    let validator =
        tokio::task::spawn_blocking(move || Validator::from_wasm(&state.wasm.sandbox, &bytes))
            .await?
            .map_err(|f| Error::bad_request("bad_validator", f.detail))?;
    st.wasm
        .validators
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(hash, validator.clone());
    Ok(validator)
}

/// Checks and stores `owner`'s task; returns its persistent id. Nothing is
/// stored for a submission that fails a check.
pub async fn submit(
    st: &std::sync::Arc<AppState>,
    owner: Address,
    body: &TaskSubmission,
) -> Result<TaskSubmitted> {
    let mut ids = submit_many(st, owner, std::slice::from_ref(body)).await?;
    let task_id = ids
        .pop()
        .ok_or_else(|| Error::Inconsistent("a submission without an id".into()))?;
    Ok(TaskSubmitted { task_id })
}

/// Checks and stores `owner`'s tasks in one transaction, all or none;
/// returns their persistent ids in order. A refusal names the first task
/// that failed its checks.
pub async fn submit_many(
    st: &std::sync::Arc<AppState>,
    owner: Address,
    tasks: &[TaskSubmission],
) -> Result<Vec<B256>> {
    if tasks.is_empty() || tasks.len() > MAX_BATCH {
        return Err(Error::bad_request(
            "bad_batch_size",
            format!(
                "a bulk submission carries 1 to {MAX_BATCH} tasks; got {}",
                tasks.len()
            ),
        ));
    }
    let mut fuels = Vec::with_capacity(tasks.len());
    for (i, body) in tasks.iter().enumerate() {
        fuels.push(check(st, body).await.map_err(|e| match e {
            Error::Refused {
                status,
                code,
                detail,
            } if tasks.len() > 1 => Error::Refused {
                status,
                code,
                detail: format!("task {i}: {detail}"),
            },
            e => e,
        })?);
    }
    // A funded task holds back its most results' pay from the batch's
    // deposit until it is settled; the batch's lock serialises the check
    // and the insert across submissions (and replicas). Locks are taken
    // in batch order, so two bulk submissions cannot wait on each other.
    let mut batches: Vec<(u64, u64)> = Vec::new();
    for body in tasks {
        if let Some(batch) = body.batch {
            let results = u64::from(body.redundancy.max_total_results);
            match batches.iter_mut().find(|(b, _)| *b == batch) {
                Some((_, n)) => *n += results,
                None => batches.push((batch, results)),
            }
        }
    }
    batches.sort();
    let mut locks = Vec::with_capacity(batches.len());
    for (batch, results) in &batches {
        locks.push(st.lock_job(*batch).await?);
        check_batch(st, owner, *batch, *results).await?;
    }
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = now_secs();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut ids = Vec::with_capacity(tasks.len());
    let mut rows = Vec::with_capacity(tasks.len());
    for (body, fuel) in tasks.iter().zip(fuels) {
        let mut seed = Vec::with_capacity(128 + body.input.len());
        seed.extend_from_slice(b"funetun-compute-task/1\0");
        seed.extend_from_slice(st.address.as_slice());
        seed.extend_from_slice(owner.as_slice());
        seed.extend_from_slice(body.module.as_slice());
        seed.extend_from_slice(&nanos.to_be_bytes());
        seed.extend_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        seed.extend_from_slice(body.input.as_bytes());
        let task_id = keccak256(&seed);
        rows.push(NewComputeTask {
            task_id,
            owner,
            module: body.module,
            validator: body.validator,
            input: &body.input,
            redundancy: body.redundancy,
            fuel,
            created_at: now,
            batch: body.batch,
            drill_ops: 0,
        });
        ids.push(task_id);
    }
    let mut tx = st.store.begin().await?;
    tx.insert_compute_tasks(&rows).await?;
    tx.commit().await?;
    drop(locks);
    match ids.as_slice() {
        [task_id] => {
            tracing::info!(%task_id, %owner, module = %tasks[0].module, "compute task submitted")
        }
        _ => tracing::info!(tasks = ids.len(), %owner, "compute tasks submitted"),
    }
    Ok(ids)
}

/// Checks one submission (input, redundancy, fuel, modules); returns its
/// fuel per replica.
async fn check(st: &std::sync::Arc<AppState>, body: &TaskSubmission) -> Result<u64> {
    Input::new(body.input.as_bytes().to_vec())
        .map_err(|e| Error::bad_request("bad_input", e.to_string()))?;
    body.redundancy
        .check()
        .map_err(|e| Error::bad_request("bad_redundancy", e))?;
    let fuel = body.fuel.unwrap_or(Limits::TASK.fuel);
    if fuel == 0 || fuel > MAX_FUEL {
        return Err(Error::bad_request(
            "bad_fuel",
            format!(
                "fuel {fuel} is out of range; give 1 to {MAX_FUEL} (default {})",
                Limits::TASK.fuel
            ),
        ));
    }
    program(st, body.module).await?;
    validator(st, body.validator).await?;
    Ok(fuel)
}

/// Checks that `owner` may fund tasks that may be paid for `results`
/// results from batch `batch`: a task batch this orchestrator leads,
/// `owner`'s, active, with time left to run them and an unreserved deposit
/// that covers them. Called with the batch's lock held.
async fn check_batch(st: &AppState, owner: Address, batch: u64, results: u64) -> Result<()> {
    use funetun_chain::bindings::job_status;
    let view = st.ledger.job(alloy_primitives::U256::from(batch)).await?;
    let refuse = |code, detail: String| Err(Error::bad_request(code, detail));
    if view.status == job_status::NONE {
        return refuse(
            "unknown_batch",
            format!("there is no job or task batch {batch} on the contract"),
        );
    }
    if view.rounds != 0 {
        return refuse(
            "not_a_batch",
            format!("{batch} is a training job, not a task batch (createTaskBatch)"),
        );
    }
    if view.leader != st.address {
        return refuse(
            "not_our_batch",
            format!(
                "batch {batch} names {} as its leader, not this orchestrator ({}); submit the \
                 task there",
                view.leader, st.address
            ),
        );
    }
    if view.owner != owner {
        return refuse(
            "not_your_batch",
            format!("batch {batch} belongs to {}, not to {owner}", view.owner),
        );
    }
    if view.status != job_status::ACTIVE {
        return refuse(
            "batch_closed",
            format!("batch {batch} is closed: its owner withdrew its deposit"),
        );
    }
    let left = view.expiresAt.saturating_sub(now_secs());
    let needed = st.config.replica_lease.as_secs() + 60;
    if left < needed {
        return refuse(
            "batch_expiring",
            format!(
                "batch {batch} expires in {left} s, too soon to run a task (replicas may take \
                 {needed} s); fund a new batch"
            ),
        );
    }
    let mut tx = st.store.begin().await?;
    let held = tx.batch_reserve(batch).await?;
    tx.rollback().await?;
    let results = held + results;
    let needed = view.baseReward * alloy_primitives::U256::from(results);
    if view.remaining < needed {
        return refuse(
            "deposit_exhausted",
            format!(
                "batch {batch} has {} wei left; its open tasks and this one may be paid for \
                 {results} results of {} wei (max_total_results each); fund a new batch",
                view.remaining, view.baseReward
            ),
        );
    }
    Ok(())
}

/// Pays and slashes on-chain the decided tasks of task batches (a step of
/// the driver, while this replica leads): `settleComputeTask` credits the workers
/// of valid replicas the batch's reward and slashes those of invalid ones.
/// A task waits while a replica is still out (it is judged once it reports
/// or lapses). Reads the chain first, so a crash between the transaction
/// and the store's record never settles a task twice. A worker a slash
/// leaves below the minimum stake may no longer report: its live leases
/// lapse at once, so its tasks go to others without waiting out the lease.
pub async fn settle_on_chain(st: &std::sync::Arc<AppState>) -> Result<()> {
    use funetun_chain::JobManager::JobManagerErrors as E;
    for task_id in st.store.unsettled_compute_tasks(64).await? {
        let Some(task) = st.store.compute_task(task_id).await? else {
            continue;
        };
        let Some(batch) = task.info.batch else {
            continue;
        };
        let replicas = &task.info.replicas;
        if replicas.iter().any(|r| r.status == ReplicaStatus::Leased) {
            continue;
        }
        let workers = |s: ReplicaStatus| {
            replicas
                .iter()
                .filter(|r| r.status == s)
                .map(|r| r.worker)
                .collect::<Vec<_>>()
        };
        let (paid, slashed) = (
            workers(ReplicaStatus::Valid),
            workers(ReplicaStatus::Invalid),
        );
        let punished = slashed.clone();
        let id = alloy_primitives::U256::from(batch);
        let mut sent = None;
        if (!paid.is_empty() || !slashed.is_empty()) && !st.ledger.task_settled(id, task_id).await?
        {
            let result_hash = match &task.info.result {
                Some(r) => Outcome::from_run_result(r, usize::MAX)
                    .map_err(|e| Error::Inconsistent(format!("stored result of {task_id}: {e}")))?
                    .digest(),
                None => B256::ZERO,
            };
            let (n_paid, n_slashed) = (paid.len(), slashed.len());
            match st
                .ledger
                .settle_compute_task(id, task_id, result_hash, paid, slashed)
                .await
            {
                Ok(outcome) => {
                    tracing::info!(%task_id, batch, paid = n_paid, slashed = n_slashed, tx = %outcome.tx_hash, "compute task settled on-chain");
                    sent = Some(outcome.tx_hash);
                    for worker in punished {
                        release_if_unstaked(st, worker).await?;
                    }
                }
                Err(e) => match e.contract_error() {
                    Some(E::TaskAlreadySettled(_)) => {}
                    Some(E::BatchExpired(_)) => {
                        tracing::warn!(%task_id, batch, "the batch expired before the task was settled; its workers go unpaid");
                    }
                    _ => return Err(e.into()),
                },
            }
        }
        let mut tx = st.store.begin().await?;
        tx.mark_settled(task_id, sent).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Lapses `worker`'s live leases when its stake fell below the minimum,
/// and settles their tasks (which issues replicas to other workers).
async fn release_if_unstaked(st: &std::sync::Arc<AppState>, worker: Address) -> Result<()> {
    let account = st.ledger.account(worker).await?;
    if alloy_primitives::U256::from(account.stake) >= st.min_stake {
        return Ok(());
    }
    st.roles.invalidate(worker);
    let now = now_secs();
    let mut tx = st.store.begin().await?;
    let tasks = tx.lapse_worker_replicas(worker).await?;
    tx.commit().await?;
    for task_id in &tasks {
        let mut tx = st.store.begin().await?;
        settle(st, &mut tx, *task_id, now).await?;
        tx.commit().await?;
    }
    tracing::info!(%worker, leases = tasks.len(), "a slash left the worker below the minimum stake: its leases lapsed");
    Ok(())
}

/// A task by id, or 404 `unknown_task`.
pub async fn task(st: &AppState, task_id: B256) -> Result<ComputeTask> {
    st.store.compute_task(task_id).await?.ok_or_else(|| {
        Error::not_found(
            "unknown_task",
            format!("no compute task {task_id} was submitted here"),
        )
    })
}

fn lease_of(task: &ComputeTask, replica: u32, expires_at: u64) -> ReplicaLease {
    ReplicaLease {
        task_id: task.info.task_id,
        replica,
        module: task.info.module,
        input: task.info.input.clone(),
        fuel: task.info.fuel,
        memory_bytes: Limits::TASK.memory_bytes as u64,
        output_bytes: Limits::TASK.output_bytes as u64,
        expires_at,
    }
}

/// Leases `worker` a replica: the live one it holds, else one of the
/// oldest open task that wants one and has none with it; none when there
/// is nothing to run.
pub async fn lease(st: &std::sync::Arc<AppState>, worker: Address) -> Result<Option<ReplicaLease>> {
    let (_, leases) = trade(st, worker, &[], 1).await?;
    Ok(leases.into_iter().next())
}

/// Accepts `worker`'s result for a replica it was leased and judges the
/// task; 409 `already_reported` for a replica reported before.
pub async fn report(
    st: &std::sync::Arc<AppState>,
    worker: Address,
    body: &ReplicaReport,
) -> Result<ReplicaAck> {
    let (mut acks, _) = trade(st, worker, std::slice::from_ref(body), 0).await?;
    match acks.pop() {
        Some((ack, false)) => Ok(ack),
        Some((_, true)) => Err(Error::conflict(
            "already_reported",
            format!(
                "replica {} of task {} was reported already",
                body.replica, body.task_id
            ),
        )),
        None => Err(Error::Inconsistent("a report without an answer".into())),
    }
}

/// Takes `worker`'s finished replicas and hands it more, up to `want` live
/// ones, in one transaction (BOINC's scheduler request). A replica
/// reported before is answered with where it stands, so a worker may
/// resend an exchange whose answer it lost.
pub async fn exchange(
    st: &std::sync::Arc<AppState>,
    worker: Address,
    body: &Exchange,
) -> Result<ExchangeReply> {
    if body.reports.len() > MAX_BATCH || body.want as usize > MAX_BATCH {
        return Err(Error::bad_request(
            "batch_too_large",
            format!(
                "an exchange carries at most {MAX_BATCH} reports and wants at most {MAX_BATCH} \
                 replicas; got {} and {}",
                body.reports.len(),
                body.want
            ),
        ));
    }
    let (acks, leases) = trade(st, worker, &body.reports, body.want).await?;
    Ok(ExchangeReply {
        acks: acks.into_iter().map(|(ack, _)| ack).collect(),
        leases,
    })
}

/// The one transaction behind [`lease`], [`report`] and [`exchange`]:
/// loads the tasks the reports name, records and judges each report in
/// memory and writes back what changed, then leases up to `want` live
/// replicas. Each ack says whether its replica had been reported before.
/// A report that names an unknown task or replica, or another worker's
/// replica, refuses the whole request and nothing is written.
async fn trade(
    st: &std::sync::Arc<AppState>,
    worker: Address,
    reports: &[ReplicaReport],
    want: u32,
) -> Result<(Vec<(ReplicaAck, bool)>, Vec<ReplicaLease>)> {
    let now = now_secs();
    let outcomes = reports
        .iter()
        .map(|r| {
            Outcome::from_run_result(&r.result, Limits::TASK.output_bytes)
                .map_err(|e| Error::bad_request("bad_result", e))
        })
        .collect::<Result<Vec<_>>>()?;
    if want > 0 && st.wasm.lapses_checked.swap(now, Ordering::Relaxed) < now {
        lapse(st, now).await?;
    }
    let mut tx = st.store.begin().await?;
    let mut ids: Vec<B256> = reports.iter().map(|r| r.task_id).collect();
    ids.sort();
    ids.dedup();
    let mut tasks: HashMap<B256, ComputeTask> = tx
        .compute_tasks(&ids)
        .await?
        .into_iter()
        .map(|t| (t.info.task_id, t))
        .collect();
    let mut acks = Vec::with_capacity(reports.len());
    for (body, outcome) in reports.iter().zip(outcomes) {
        let task = tasks.get_mut(&body.task_id).ok_or_else(|| {
            Error::not_found(
                "unknown_task",
                format!("no compute task {} was submitted here", body.task_id),
            )
        })?;
        let replica = task.replica(body.replica).ok_or_else(|| {
            Error::not_found(
                "unknown_replica",
                format!("task {} has no replica {}", body.task_id, body.replica),
            )
        })?;
        if replica.worker != worker {
            return Err(Error::forbidden(
                "not_your_replica",
                format!(
                    "replica {} of task {} was leased to {}, not to {worker}",
                    body.replica, body.task_id, replica.worker
                ),
            ));
        }
        if !matches!(
            replica.status,
            ReplicaStatus::Leased | ReplicaStatus::Lapsed
        ) {
            let ack = ReplicaAck {
                status: task.info.status,
                replica_status: replica.status,
            };
            acks.push((ack, true));
            continue;
        }
        let mut result = body.result.clone();
        if let Err(f) = &outcome.result {
            result.detail = Some(f.detail.clone());
        }
        task.record(body.replica, result.clone(), outcome.digest());
        let judged = judge(st, task, now).await?;
        let replica_status = task
            .replica(body.replica)
            .map_or(ReplicaStatus::Reported, |r| r.status);
        tx.report_replica(
            body.task_id,
            body.replica,
            replica_status,
            &result,
            outcome.digest(),
            now,
        )
        .await?;
        write(st, &mut tx, task, &judged, Some(body.replica), now).await?;
        acks.push((
            ReplicaAck {
                status: task.info.status,
                replica_status,
            },
            false,
        ));
    }
    let leases = issue(st, &mut tx, worker, want, now).await?;
    tx.commit().await?;
    if !reports.is_empty() {
        st.wake.notify_one();
    }
    Ok((acks, leases))
}

/// Up to `want` live replicas for `worker` inside `tx`: those it holds
/// (oldest first), then new ones of the oldest open tasks that want one
/// and have none with it.
async fn issue(
    st: &AppState,
    tx: &mut StoreTx,
    worker: Address,
    want: u32,
    now: u64,
) -> Result<Vec<ReplicaLease>> {
    if want == 0 {
        return Ok(Vec::new());
    }
    let want = want as usize;
    let mut held = tx.held_replicas(worker).await?;
    held.truncate(want);
    let held_ids: Vec<B256> = held.iter().map(|(t, _)| *t).collect();
    let held_tasks: HashMap<B256, ComputeTask> = tx
        .compute_tasks(&held_ids)
        .await?
        .into_iter()
        .map(|t| (t.info.task_id, t))
        .collect();
    let mut leases = Vec::with_capacity(want);
    for (task_id, replica) in held {
        if let Some(task) = held_tasks.get(&task_id) {
            let expires = task
                .expiries
                .iter()
                .find(|(r, _)| *r == replica)
                .map_or(now, |(_, e)| *e);
            leases.push(lease_of(task, replica, expires));
        }
    }
    let expires_at = now + st.config.replica_lease.as_secs().max(1);
    if leases.len() < want
        && let Some(lease) = drill(st, tx, worker, now, expires_at).await?
    {
        leases.push(lease);
    }
    if leases.len() >= want {
        return Ok(leases);
    }
    // Other workers' drills first, so a drill is decided while it is news.
    let mut fresh = tx
        .open_compute_tasks(worker, want - leases.len(), true)
        .await?;
    if fresh.len() < want - leases.len() {
        // Short, so every drill this worker may take is already in `fresh`.
        let more = tx
            .open_compute_tasks(worker, want - leases.len() - fresh.len(), false)
            .await?;
        fresh.extend(more);
    }
    let mut streak = None;
    let mut issued = Vec::with_capacity(fresh.len());
    for task in fresh {
        let task_id = task.info.task_id;
        let replica = task.info.replicas.len() as u32;
        let r = task.info.redundancy;
        if r.adaptive && r.min_quorum > 1 && replica == 0 {
            let streak = match streak {
                Some(s) => s,
                None => *streak.insert(tx.valid_streak(worker).await?),
            };
            if streak >= st.config.trust_streak && !draw(st.config.spot_check) {
                tx.adapt(task_id).await?;
                tracing::debug!(%task_id, %worker, streak, "a clean record: the task runs once");
            }
        }
        tracing::debug!(%task_id, replica, %worker, "replica leased");
        issued.push((task_id, replica));
        leases.push(lease_of(&task, replica, expires_at));
    }
    tx.insert_replicas(&issued, worker, now, expires_at).await?;
    Ok(leases)
}

/// A drill for `worker` inside `tx` when it is due one (docs/tasks.md,
/// "Drilling"): on joining, and once its last drill is
/// `Config::drill_every` old. The drill is a task of the orchestrator's
/// own, the shipped `drill` kernel on a fresh seed, replicated like any
/// other; its first replica goes to `worker` at once.
async fn drill(
    st: &AppState,
    tx: &mut StoreTx,
    worker: Address,
    now: u64,
    expires_at: u64,
) -> Result<Option<ReplicaLease>> {
    let Some(every) = st.config.drill_every else {
        return Ok(None);
    };
    let since = now.saturating_sub(every.as_secs());
    let recent = |at: u64| at > since || since == 0;
    if st.wasm.drilled_at(worker).is_some_and(recent) {
        return Ok(None);
    }
    if let Some(at) = tx.last_drill(worker).await?
        && recent(at)
    {
        st.wasm.drilled(worker, at);
        return Ok(None);
    }
    let kernel = funetun_compute::examples::example("drill")
        .ok_or_else(|| Error::Config("the drill kernel is not shipped".into()))?;
    let module = keccak256(kernel.wasm);
    if !st.blobs.contains(module).await? {
        st.blobs
            .put(module, bytes::Bytes::from_static(kernel.wasm))
            .await?;
    }
    let rounds = st.config.drill_rounds.max(1);
    let seed =
        random_u64().ok_or_else(|| Error::Config("no randomness for a drill's seed".into()))?;
    let input = format!(r#"{{"n": {DRILL_N}, "rounds": {rounds}, "seed": {seed}}}"#);
    let ops = 2 * u64::from(DRILL_N).pow(3) * u64::from(rounds);
    let mut id_seed = b"funetun-drill/1\0".to_vec();
    id_seed.extend_from_slice(st.address.as_slice());
    id_seed.extend_from_slice(worker.as_slice());
    id_seed.extend_from_slice(input.as_bytes());
    let task_id = keccak256(&id_seed);
    tx.insert_compute_tasks(&[NewComputeTask {
        task_id,
        owner: st.address,
        module,
        validator: None,
        input: &input,
        redundancy: funetun_core::compute::Redundancy::default(),
        fuel: Limits::TASK.fuel,
        created_at: now,
        batch: None,
        drill_ops: ops,
    }])
    .await?;
    tx.insert_replicas(&[(task_id, 0)], worker, now, expires_at)
        .await?;
    st.wasm.drilled(worker, now);
    tracing::info!(%task_id, %worker, ops, "drill issued");
    Ok(Some(ReplicaLease {
        task_id,
        replica: 0,
        module,
        input,
        fuel: Limits::TASK.fuel,
        memory_bytes: Limits::TASK.memory_bytes as u64,
        output_bytes: Limits::TASK.output_bytes as u64,
        expires_at,
    }))
}

/// A random word from the operating system; none when it has none.
fn random_u64() -> Option<u64> {
    use rand_core::TryRngCore as _;
    let mut bytes = [0u8; 8];
    rand_core::OsRng.try_fill_bytes(&mut bytes).ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// True with probability `p` (the operating system's randomness).
fn draw(p: f64) -> bool {
    // Without randomness, check: the safe side.
    random_u64().is_none_or(|x| (x as f64 / u64::MAX as f64) < p)
}

/// Marks lapsed leases and settles their tasks (which may issue more
/// replicas or give the task up).
pub async fn lapse(st: &std::sync::Arc<AppState>, now: u64) -> Result<()> {
    let mut tx = st.store.begin().await?;
    let lapsed = tx.lapse_replicas(now).await?;
    tx.commit().await?;
    for task_id in lapsed {
        let mut tx = st.store.begin().await?;
        settle(st, &mut tx, task_id, now).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Loads task `task_id` inside `tx`, judges it and writes back what
/// changed.
async fn settle(
    st: &std::sync::Arc<AppState>,
    tx: &mut StoreTx,
    task_id: B256,
    now: u64,
) -> Result<()> {
    let Some(mut task) = tx.compute_task(task_id).await? else {
        return Err(Error::Inconsistent(format!("task {task_id} vanished")));
    };
    let judged = judge(st, &mut task, now).await?;
    write(st, tx, &task, &judged, None, now).await
}

/// What judging a task changed, to write back.
#[derive(Debug, Default)]
struct Judgement {
    /// Replicas whose status changed, with the new one.
    replicas: Vec<(u32, ReplicaStatus)>,
    /// The decision this judgement made: the canonical result, or the
    /// reason the task was given up.
    decided: Option<std::result::Result<RunResult, String>>,
    /// The replicas wanted, when this judgement raised it.
    wanted: Option<u32>,
}

/// Writes `judged` for `task`, leaving out replica `skip` (whose row the
/// caller writes itself). A drill's valid replicas earn their workers its
/// operations as drilling points (docs/reputation.md), when its canonical
/// result is an output: agreeing on a failure proves no work.
async fn write(
    st: &AppState,
    tx: &mut StoreTx,
    task: &ComputeTask,
    judged: &Judgement,
    skip: Option<u32>,
    now: u64,
) -> Result<()> {
    let task_id = task.info.task_id;
    // A drill decided with an output credits its canonical class.
    let drill_points = (task.drill_ops > 0
        && task.info.result.as_ref().is_some_and(|r| r.error.is_none()))
    .then(|| crate::reputation::ut(task.drill_ops as f64));
    for (replica, status) in &judged.replicas {
        if Some(*replica) != skip {
            tx.set_replica_status(task_id, *replica, *status).await?;
        }
        if *status == ReplicaStatus::Valid
            && let Some(points) = drill_points
            && let Some(r) = task.replica(*replica)
        {
            tx.add_points(&st.decay, r.worker, Points::Drill, points, now)
                .await?;
            tracing::info!(%task_id, worker = %r.worker, ut = points, "drill agreed: drilling points");
        }
    }
    if let Some(decided) = &judged.decided {
        tx.decide_compute_task(task_id, decided.as_ref().map_err(String::as_str), now)
            .await?;
    }
    if let Some(wanted) = judged.wanted {
        tx.set_wanted(task_id, wanted).await?;
    }
    Ok(())
}

/// Applies the redundancy rule to `task` in memory: decides it, judges
/// late reports against its canonical result or asks for more replicas;
/// returns what changed, for [`write`].
async fn judge(
    st: &std::sync::Arc<AppState>,
    task: &mut ComputeTask,
    now: u64,
) -> Result<Judgement> {
    let task_id = task.info.task_id;
    let validator = validator(st, task.info.validator).await?;
    // Results in hand, in issue order; the ones still to judge.
    let mut numbers = Vec::new();
    let mut outcomes = Vec::new();
    for (replica, result) in &task.results {
        let status = task.info.replicas[*replica as usize].status;
        if task.info.status == ComputeStatus::Open && status != ReplicaStatus::Reported {
            continue;
        }
        numbers.push(*replica);
        outcomes.push(
            Outcome::from_run_result(result, usize::MAX)
                .map_err(|e| Error::Inconsistent(format!("stored result of {task_id}: {e}")))?,
        );
    }
    let mut judged = Judgement::default();
    let set = |task: &mut ComputeTask, judged: &mut Judgement, replica: u32, s: ReplicaStatus| {
        task.info.replicas[replica as usize].status = s;
        judged.replicas.push((replica, s));
    };
    match task.info.status {
        ComputeStatus::Done => {
            // A late report: judged against the canonical result.
            let Some(canonical) = &task.info.result else {
                return Ok(judged);
            };
            let canonical = Outcome::from_run_result(canonical, usize::MAX)
                .map_err(|e| Error::Inconsistent(format!("stored result of {task_id}: {e}")))?;
            for (replica, outcome) in numbers.iter().zip(outcomes) {
                if task.info.replicas[*replica as usize].status != ReplicaStatus::Reported {
                    continue;
                }
                let v = validator.clone();
                let c = canonical.clone();
                let state = st.clone();
                let ok = tokio::task::spawn_blocking(move || {
                    v.init_valid(&state.wasm.sandbox, &outcome)
                        && v.compare_valid(&state.wasm.sandbox, &c, &outcome)
                })
                .await?;
                let s = if ok {
                    ReplicaStatus::Valid
                } else {
                    ReplicaStatus::Invalid
                };
                set(task, &mut judged, *replica, s);
            }
            return Ok(judged);
        }
        ComputeStatus::Failed => {
            for replica in numbers {
                if task.info.replicas[replica as usize].status == ReplicaStatus::Reported {
                    set(task, &mut judged, replica, ReplicaStatus::Undecided);
                }
            }
            return Ok(judged);
        }
        ComputeStatus::Open => {}
    }
    let live = task
        .info
        .replicas
        .iter()
        .filter(|r| r.status == ReplicaStatus::Leased)
        .count() as u32;
    let unleased = task.wanted.saturating_sub(task.info.replicas.len() as u32);
    // A task adaptive replication runs once is decided by one result.
    let redundancy = if task.info.adapted {
        funetun_core::compute::Redundancy {
            min_quorum: 1,
            target_nresults: 1,
            ..task.info.redundancy
        }
    } else {
        task.info.redundancy
    };
    let wanted = task.wanted;
    // Byte equality runs here; an owner's validator in the blocking pool.
    let verdict = if validator.is_exact() {
        decide(
            &redundancy,
            &outcomes,
            live + unleased,
            wanted,
            &st.wasm.sandbox,
            &validator,
        )
    } else {
        let state = st.clone();
        let judged = outcomes.clone();
        tokio::task::spawn_blocking(move || {
            decide(
                &redundancy,
                &judged,
                live + unleased,
                wanted,
                &state.wasm.sandbox,
                &validator,
            )
        })
        .await?
    };
    match verdict {
        Verdict::Canonical {
            canonical,
            valid,
            invalid,
        } => {
            let result = task.results_of(numbers[canonical]);
            task.info.status = ComputeStatus::Done;
            task.info.result = Some(result.clone());
            task.info.decided_at = Some(now);
            judged.decided = Some(Ok(result));
            for i in valid {
                set(task, &mut judged, numbers[i], ReplicaStatus::Valid);
            }
            for i in invalid {
                set(task, &mut judged, numbers[i], ReplicaStatus::Invalid);
            }
            tracing::info!(%task_id, results = outcomes.len(), "compute task decided");
        }
        Verdict::Wait => {}
        Verdict::More(n) => {
            let wanted = (task.wanted + n).min(redundancy.max_total_results);
            task.wanted = wanted;
            judged.wanted = Some(wanted);
            tracing::info!(%task_id, wanted, "replicas disagree or lapsed: issuing more");
        }
        Verdict::GiveUp(reason) => {
            task.info.status = ComputeStatus::Failed;
            task.info.reason = Some(reason.clone());
            task.info.decided_at = Some(now);
            for replica in numbers {
                set(task, &mut judged, replica, ReplicaStatus::Undecided);
            }
            tracing::warn!(%task_id, %reason, "compute task failed");
            judged.decided = Some(Err(reason));
        }
    }
    Ok(judged)
}

impl ComputeTask {
    /// The reported result of replica `replica`.
    fn results_of(&self, replica: u32) -> RunResult {
        self.results
            .iter()
            .find(|(r, _)| *r == replica)
            .map(|(_, x)| x.clone())
            .unwrap_or(RunResult {
                output: None,
                error: None,
                detail: None,
                fuel_used: 0,
            })
    }

    /// Replica `replica`, if issued.
    fn replica(&self, replica: u32) -> Option<&funetun_core::compute::ReplicaInfo> {
        self.info.replicas.iter().find(|r| r.replica == replica)
    }

    /// Records replica `replica`'s reported result in memory.
    fn record(&mut self, replica: u32, result: RunResult, digest: B256) {
        if let Some(r) = self.info.replicas.iter_mut().find(|r| r.replica == replica) {
            r.status = ReplicaStatus::Reported;
            r.digest = Some(digest);
            r.error = result.error.clone();
        }
        self.expiries.retain(|(r, _)| *r != replica);
        self.results.retain(|(r, _)| *r != replica);
        self.results.push((replica, result));
        self.results.sort_by_key(|(r, _)| *r);
    }
}
