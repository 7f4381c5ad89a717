//! The HTTP API (docs/api.md): [`app`] builds the router; one handler per
//! route. Mutating routes take a [`Signed`] body; reads are public.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use alloy::providers::Provider;
use alloy_primitives::{Address, B256, U256};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use funetun_chain::JobManager::JobManagerEvents as E;
use funetun_chain::bindings::{update_index, update_status};
use funetun_core::api::{
    Capacity, CheckReason, JobDetail, JobSummary, LeaseRequest, ParticipantInfo, RoundInfo,
    ServiceInfo, Task, UpdateAck, UpdateInfo, UpdateReport, ValidationAck, ValidationAssignment,
    ValidationReport, ValidationRequest, VoteInfo,
};
use funetun_core::protocol::{
    JobStatus, NodeKind, Role, RoundStatus, UpdateStatus, ValidationMode,
};
use funetun_core::spec::MAX_SPEC_BYTES;
use funetun_core::{DecodeLimits, JobSpec, keccak256};
use serde_json::json;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::auth::{Signed, SignedBytes, role, too_large};
use crate::error::{Error, Result};
use crate::graph::Node;
use crate::replay::{TrainerRecord, drawn, replay_probability, task_steps};
use crate::scheduler::{Candidate, Event, LeaseDecision, pick_assignment, task_seed, tick};
use crate::state::{AppState, JobInfo};
use crate::util::{
    addr_text, hash_text, index_text, now_secs, parse_addr, parse_hash, parse_index, parse_wei,
    parse_word, u64_from_db, u64_to_db,
};
use funetun_ml::Architecture as _;

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// The router of every route, over `state`.
pub fn app(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/tasks", post(lease_task))
        .route("/v1/tasks/{id}", get(get_task))
        .route("/get_task", post(lease_task))
        .route("/v1/blobs/{hash}", put(put_blob).get(get_blob))
        .route("/v1/updates", post(report_update))
        .route("/submit_update", post(report_update))
        .route("/v1/validations/next", post(next_validation))
        .route("/v1/validations", post(report_validation))
        .route("/submit_validation", post(report_validation))
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/rounds", get(job_rounds))
        .route("/v1/jobs/{id}/updates", get(job_updates))
        .route("/v1/participants", get(participants))
        .route("/graph", get(graph))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(health))
        .route("/v1/info", get(info))
        .route(funetun_dashboard::CHARTS_PATH, get(job_charts))
        .merge(funetun_dashboard::router());
    api.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(uri: Uri) -> Error {
    Error::not_found("not_found", format!("no route {}", uri.path()))
}

async fn method_not_allowed() -> Error {
    Error::refused(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// One path parameter, refused as 400 `bad_path` when it does not parse.
#[derive(Debug)]
pub struct PathParam<T>(pub T);

impl<T: FromStr, S: Send + Sync> FromRequestParts<S> for PathParam<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| Error::bad_request("bad_path", e.body_text()))?;
        raw.parse().map(PathParam).map_err(|_| {
            Error::bad_request("bad_path", format!("`{raw}` is not a valid id or hash"))
        })
    }
}

async fn health(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({
        "leader": st.address,
        "contract": st.config.contract,
        "last_block": crate::watcher::last_block(&st).await.ok().flatten(),
    }))
}

/// `GET /v1/info`: the leader address and contract, so participants need only the URL.
async fn info(State(st): State<Arc<AppState>>) -> Json<ServiceInfo> {
    Json(ServiceInfo {
        leader: st.address,
        contract: st.config.contract,
        chain_id: st.ledger.chain_id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// `GET /v1/jobs/{id}/charts.svg`: test accuracy and losses per closed round.
async fn job_charts(
    State(st): State<Arc<AppState>>,
    PathParam(id): PathParam<u64>,
) -> Result<Response> {
    let rounds = rounds_of(&st, id).await?;
    Ok(funetun_dashboard::charts::round_charts_response(&rounds))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

fn chain_read(e: impl std::fmt::Display) -> Error {
    Error::Chain(funetun_chain::ChainError::Rpc {
        code: 0,
        message: e.to_string(),
    })
}

// ------------------------------------------------------------------- tasks

pub(crate) struct TaskRow {
    task_id: u64,
    job_id: u64,
    round: u64,
    pub(crate) shard: u32,
    trainer: Address,
    pub(crate) steps: u32,
    seed: u64,
    base_hash: B256,
    expires_at: u64,
}

const TASK_COLUMNS: &str =
    "task_id, job_id, round, shard, trainer, steps, seed, base_hash, expires_at";

fn task_row(r: &SqliteRow) -> Result<TaskRow> {
    Ok(TaskRow {
        task_id: r.get::<i64, _>(0) as u64,
        job_id: r.get::<i64, _>(1) as u64,
        round: r.get::<i64, _>(2) as u64,
        shard: r.get::<i64, _>(3) as u32,
        trainer: parse_addr(r.get::<&str, _>(4))?,
        steps: r.get::<i64, _>(5) as u32,
        seed: u64_from_db(r.get(6)),
        base_hash: parse_hash(r.get::<&str, _>(7))?,
        expires_at: r.get::<i64, _>(8) as u64,
    })
}

/// The task `task_id` as leased (shard, steps, seed, base).
pub(crate) async fn task_by_id(st: &AppState, task_id: u64) -> Result<Option<TaskRow>> {
    load_task(st, task_id).await
}

async fn load_task(st: &AppState, task_id: u64) -> Result<Option<TaskRow>> {
    sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?"
    ))
    .bind(task_id as i64)
    .fetch_optional(&st.db.read)
    .await?
    .map(|r| task_row(&r))
    .transpose()
}

fn task_of(info: &JobInfo, t: &TaskRow) -> Task {
    Task {
        task_id: t.task_id,
        job_id: t.job_id,
        round: t.round,
        base_hash: t.base_hash,
        model: info.spec.model,
        dataset: info.spec.dataset.clone(),
        shard: t.shard,
        shards: info.spec.shards,
        steps: t.steps,
        batch: info.spec.batch,
        lr: info.spec.lr,
        optimizer: info.spec.optimizer.clone(),
        seed: t.seed,
        lease_expires_at: t.expires_at,
    }
}

/// `POST /v1/tasks`: leases a task, hands back a live one, or 204.
async fn lease_task(
    State(st): State<Arc<AppState>>,
    Signed { address, body }: Signed<LeaseRequest>,
) -> Result<Response> {
    let now = now_secs();
    st.graph.record(
        Node::Peer(address, NodeKind::Trainer),
        Node::Orchestrator,
        "lease",
        now,
    );
    st.require_role(address, role::TRAINER).await?;
    let info = st.job(body.job_id).await?;
    // Fast path, the same answer the scheduler gives (`Existing`): the
    // trainer holds a live lease of the open round and reported nothing yet.
    if let Some(row) = sqlx::query(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks t WHERE t.job_id = ? AND t.trainer = ?
           AND t.submitted = 0 AND t.expires_at > ?
           AND t.round = (SELECT j.round FROM jobs j WHERE j.job_id = t.job_id AND j.status = 'active')
           AND EXISTS (SELECT 1 FROM rounds r WHERE r.job_id = t.job_id AND r.round = t.round AND r.status = 'open')
           AND NOT EXISTS (SELECT 1 FROM updates u WHERE u.job_id = t.job_id AND u.round = t.round AND u.trainer = t.trainer)
         ORDER BY t.task_id DESC LIMIT 1"
    ))
    .bind(body.job_id as i64)
    .bind(addr_text(address))
    .bind(now as i64)
    .fetch_optional(&st.db.read)
    .await?
    {
        return Ok(Json(task_of(&info, &task_row(&row)?)).into_response());
    }
    match st.job_status(body.job_id).await? {
        Some(JobStatus::Active) => {}
        Some(JobStatus::Finished | JobStatus::Closed) => {
            return Err(Error::conflict(
                "job_closed",
                format!("job {} takes no more updates", body.job_id),
            ));
        }
        _ => return Ok(StatusCode::NO_CONTENT.into_response()),
    }
    let lock = st.job_lock(body.job_id);
    let _guard = lock.lock().await;
    let Some(mut js) = crate::driver::load_job_state(&st, &info).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let seed = u64::from_be_bytes(address[12..20].try_into().expect("8 bytes"));
    let actions = tick(
        &mut js,
        &[Event::LeaseRequested {
            trainer: address,
            capacity: body.capacity,
        }],
        now,
        seed,
    );
    let decision = actions
        .into_iter()
        .find_map(|a| match a {
            crate::scheduler::Action::Lease { decision, .. } => Some(decision),
            _ => None,
        })
        .unwrap_or(LeaseDecision::NoneAvailable);
    let task = match decision {
        LeaseDecision::Existing { task_id } => load_task(&st, task_id)
            .await?
            .ok_or_else(|| Error::Inconsistent(format!("lease {task_id} vanished")))?,
        LeaseDecision::New { shard } => {
            issue_lease(&st, &info, js.round, shard, address, &body, now).await?
        }
        LeaseDecision::AlreadySubmitted | LeaseDecision::NoneAvailable => {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    };
    Ok(Json(task_of(&info, &task)).into_response())
}

/// `GET /v1/tasks/{id}`: a leased task, public (challengers replay it).
async fn get_task(
    State(st): State<Arc<AppState>>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<Task>> {
    let task = load_task(&st, id)
        .await?
        .ok_or_else(|| Error::not_found("unknown_task", format!("no task {id} was leased here")))?;
    let info = st.job(task.job_id).await?;
    Ok(Json(task_of(&info, &task)))
}

async fn issue_lease(
    st: &AppState,
    info: &JobInfo,
    round: u64,
    shard: u32,
    trainer: Address,
    req: &LeaseRequest,
    now: u64,
) -> Result<TaskRow> {
    let base_hash: String =
        sqlx::query_scalar("SELECT base_hash FROM rounds WHERE job_id = ? AND round = ?")
            .bind(info.job_id as i64)
            .bind(round as i64)
            .fetch_one(&st.db.read)
            .await?;
    let record = trainer_record(st, trainer, now).await?;
    let steps = task_steps(&info.spec, req.capacity, &record);
    let seed = task_seed(info.spec.seed, round, shard);
    let expires_at = now + info.spec.lease_secs;
    let mut tx = st.db.begin().await?;
    let task_id: i64 = sqlx::query_scalar(
        "INSERT INTO tasks (job_id, round, shard, trainer, capacity, platform, steps, seed, base_hash,
         issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING task_id",
    )
    .bind(info.job_id as i64)
    .bind(round as i64)
    .bind(shard as i64)
    .bind(addr_text(trainer))
    .bind(req.capacity.to_string())
    .bind(req.platform.as_deref())
    .bind(steps as i64)
    .bind(u64_to_db(seed))
    .bind(&base_hash)
    .bind(now as i64)
    .bind(expires_at as i64)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO participants (address, capacity, platform, last_seen) VALUES (?, ?, ?, ?)
         ON CONFLICT(address) DO UPDATE SET capacity = excluded.capacity,
         platform = COALESCE(excluded.platform, platform), last_seen = excluded.last_seen",
    )
    .bind(addr_text(trainer))
    .bind(req.capacity.to_string())
    .bind(req.platform.as_deref())
    .bind(now as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::debug!(job = info.job_id, round, shard, %trainer, task_id, "lease issued");
    Ok(TaskRow {
        task_id: task_id as u64,
        job_id: info.job_id,
        round,
        shard,
        trainer,
        steps,
        seed,
        base_hash: parse_hash(&base_hash)?,
        expires_at,
    })
}

// ------------------------------------------------------------------- blobs

fn parse_blob_hash(raw: &str) -> Result<B256> {
    B256::from_str(raw).map_err(|_| {
        Error::bad_request(
            "bad_hash",
            format!("`{raw}` is not a 32-byte 0x-hex keccak256"),
        )
    })
}

/// `PUT /v1/blobs/{hash}?job=ID` or `?kind=spec`.
async fn put_blob(
    State(st): State<Arc<AppState>>,
    PathParam(raw): PathParam<String>,
    uri: Uri,
    SignedBytes { address, bytes }: SignedBytes,
) -> Result<Response> {
    let hash = parse_blob_hash(&raw)?;
    let mut job = None;
    let mut kind = None;
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("job", v)) => {
                job = Some(v.parse::<u64>().map_err(|_| {
                    Error::bad_request("bad_query", format!("job `{v}` is not a job id"))
                })?)
            }
            Some(("kind", v)) => kind = Some(v.to_string()),
            _ => {
                return Err(Error::bad_request(
                    "bad_query",
                    format!("unknown query parameter `{pair}`; use ?job=ID or ?kind=spec"),
                ));
            }
        }
    }
    let now = now_secs();
    let check_hash = move |bytes: &[u8]| {
        let actual = keccak256(bytes);
        if actual != hash {
            Err(Error::bad_request(
                "hash_mismatch",
                format!("the body hashes to {actual}, not to {hash}"),
            ))
        } else {
            Ok(())
        }
    };
    match (job, kind.as_deref()) {
        (None, Some("spec")) => {
            st.graph.record(
                Node::Peer(address, NodeKind::Owner),
                Node::Orchestrator,
                "blob",
                now,
            );
            if bytes.len() > MAX_SPEC_BYTES {
                return Err(too_large(MAX_SPEC_BYTES));
            }
            check_hash(&bytes)?;
            JobSpec::from_bytes(&bytes)
                .map_err(|e| Error::bad_request("bad_spec", e.to_string()))?;
        }
        (Some(job), None) => {
            st.graph.record(
                Node::Peer(address, NodeKind::Trainer),
                Node::Orchestrator,
                "blob",
                now,
            );
            st.require_role(address, role::TRAINER).await?;
            let info = st.job(job).await?;
            if bytes.len() > info.max_blob_bytes {
                return Err(too_large(info.max_blob_bytes));
            }
            let bytes = bytes.clone();
            let info2 = info.clone();
            tokio::task::spawn_blocking(move || -> Result<()> {
                check_hash(&bytes)?;
                let limits =
                    DecodeLimits::for_model(info2.model.num_params(), info2.model.shapes().len());
                funetun_core::encoding::decode_with_layout(&bytes, &limits, &info2.model.zeros())
                    .map_err(|e| {
                    Error::bad_request(
                        "bad_tensor",
                        format!("not a canonical {} tensor file: {e}", info2.model),
                    )
                })?;
                Ok(())
            })
            .await??;
        }
        _ => {
            return Err(Error::bad_request(
                "bad_query",
                "say what the blob is: ?job=ID for a checkpoint or delta, ?kind=spec for a job spec",
            ));
        }
    }
    let blobs = st.blobs.clone();
    let len = bytes.len();
    let stored = tokio::task::spawn_blocking(move || blobs.put(hash, &bytes)).await??;
    Ok((
        if stored {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(json!({ "hash": hash, "bytes": len })),
    )
        .into_response())
}

/// `GET /v1/blobs/{hash}`: public.
async fn get_blob(
    State(st): State<Arc<AppState>>,
    PathParam(raw): PathParam<String>,
) -> Result<Response> {
    let hash = parse_blob_hash(&raw)?;
    let blobs = st.blobs.clone();
    match tokio::task::spawn_blocking(move || blobs.get(hash)).await?? {
        Some(bytes) => {
            Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
        }
        None => Err(Error::not_found(
            "unknown_blob",
            format!("no blob {hash} is stored here"),
        )),
    }
}

// ----------------------------------------------------------------- updates

fn status_word(status: u8) -> UpdateStatus {
    match status {
        update_status::ACCEPTED | update_status::BONUSED => UpdateStatus::Accepted,
        update_status::REJECTED => UpdateStatus::Rejected,
        _ => UpdateStatus::Pending,
    }
}

async fn chain_status(st: &AppState, job: u64, index: &str) -> Result<UpdateStatus> {
    let s: Option<String> = sqlx::query_scalar(
        "SELECT status FROM chain_updates WHERE job_id = ? AND update_index = ?",
    )
    .bind(job as i64)
    .bind(index)
    .fetch_optional(&st.db.read)
    .await?;
    Ok(s.as_deref()
        .map(crate::scheduler::UpdateStatus::parse)
        .map_or(UpdateStatus::Pending, crate::scheduler::UpdateStatus::api))
}

/// `POST /v1/updates`: the trainer reports its on-chain submission.
async fn report_update(
    State(st): State<Arc<AppState>>,
    Signed { address, body }: Signed<UpdateReport>,
) -> Result<Json<UpdateAck>> {
    let now = now_secs();
    st.graph.record(
        Node::Peer(address, NodeKind::Trainer),
        Node::Orchestrator,
        "update",
        now,
    );
    let task = load_task(&st, body.task_id).await?.ok_or_else(|| {
        Error::not_found(
            "unknown_task",
            format!("no task {} was leased here", body.task_id),
        )
    })?;
    if task.trainer != address {
        return Err(Error::forbidden(
            "not_lease_holder",
            format!(
                "task {} was leased to {}, not to {address}",
                task.task_id, task.trainer
            ),
        ));
    }
    let info = st.job(task.job_id).await?;
    let job = task.job_id;
    let index = update_index(task.round, address);
    let idx = index_text(index);
    let existing: Option<String> =
        sqlx::query_scalar("SELECT update_hash FROM updates WHERE job_id = ? AND update_index = ?")
            .bind(job as i64)
            .bind(&idx)
            .fetch_optional(&st.db.read)
            .await?;
    if let Some(existing) = existing {
        if parse_hash(&existing)? != body.update_hash {
            return Err(Error::conflict(
                "conflicting_update",
                format!(
                    "an update {existing} was already reported for round {}",
                    task.round
                ),
            ));
        }
        return Ok(Json(UpdateAck {
            update_index: index,
            status: chain_status(&st, job, &idx).await?,
        }));
    }
    if !st.blobs.contains(body.update_hash)? {
        return Err(Error::conflict(
            "missing_blob",
            format!(
                "the delta {} is not stored; upload it with PUT /v1/blobs/{}?job={job} first",
                body.update_hash, body.update_hash
            ),
        ));
    }
    let receipt = st
        .ledger
        .provider()
        .get_transaction_receipt(body.tx_hash)
        .await
        .map_err(chain_read)?
        .ok_or_else(|| {
            Error::conflict(
                "tx_not_found",
                format!(
                    "transaction {} is not mined (yet); report after its receipt exists",
                    body.tx_hash
                ),
            )
        })?;
    if !receipt.status() {
        return Err(Error::bad_request(
            "tx_failed",
            format!("transaction {} reverted", body.tx_hash),
        ));
    }
    let submitted = funetun_chain::events::decode_logs(st.config.contract, receipt.inner.logs())
        .into_iter()
        .any(|l| {
            matches!(&l.event, E::UpdateSubmitted(e)
                if e.jobId == U256::from(job)
                    && e.trainer == address
                    && e.round == U256::from(task.round)
                    && e.updateHash == body.update_hash)
        });
    if !submitted {
        return Err(Error::bad_request(
            "wrong_tx",
            format!(
                "transaction {} is not {address}'s submitUpdate of {} for job {job} round {}",
                body.tx_hash, body.update_hash, task.round
            ),
        ));
    }
    let block = receipt.block_number.unwrap_or_default();
    let head = st.ledger.block_number().await?;
    if block + st.config.confirmations.max(1) - 1 > head {
        return Err(Error::conflict(
            "not_confirmed",
            format!(
                "transaction {} needs {} confirmations; report again shortly",
                body.tx_hash, st.config.confirmations
            ),
        ));
    }
    if !st
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
    let view = st.ledger.update(U256::from(job), index).await?;
    let block_hash = receipt.block_hash.unwrap_or_default();
    let record = trainer_record(&st, address, now).await?;
    let screen = screen_update(&st, &info, &task, body.update_hash).await?;
    let p = replay_probability(&info.spec, &record);
    let reason = if view.status == update_status::CHALLENGED {
        CheckReason::Challenged
    } else if let Some(flag) = screen.flag {
        flag
    } else if p >= 1.0 {
        CheckReason::Probation
    } else if drawn(&info.secret, block_hash, index, p) {
        CheckReason::Drawn
    } else {
        CheckReason::None
    };
    let replay = reason != CheckReason::None;
    let platform = body.platform.clone();
    let mut tx = st.db.begin().await?;
    let inserted = sqlx::query(
        "INSERT OR IGNORE INTO updates (job_id, update_index, round, trainer, task_id, shard, steps,
         update_hash, submit_tx, submit_block, deadline, replay, loss_before, loss_after, platform,
         submitted_at, reason, duplicate_of, norm, probe_gain)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(job as i64)
    .bind(&idx)
    .bind(task.round as i64)
    .bind(addr_text(address))
    .bind(task.task_id as i64)
    .bind(task.shard as i64)
    .bind(task.steps as i64)
    .bind(hash_text(body.update_hash))
    .bind(hash_text(body.tx_hash))
    .bind(block as i64)
    .bind(view.deadline as i64)
    .bind(replay as i64)
    .bind(finite(body.loss_before))
    .bind(finite(body.loss_after))
    .bind(platform.as_deref())
    .bind(now as i64)
    .bind(reason.as_str())
    .bind(screen.duplicate_of.map(index_text))
    .bind(screen.measured.map(|m| m.norm))
    .bind(screen.measured.and_then(|m| m.probe_gain))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE tasks SET submitted = 1 WHERE task_id = ?")
        .bind(task.task_id as i64)
        .execute(&mut *tx)
        .await?;
    if platform.is_some() {
        sqlx::query("UPDATE participants SET platform = ? WHERE address = ?")
            .bind(platform.as_deref())
            .bind(addr_text(address))
            .execute(&mut *tx)
            .await?;
    }
    crate::watcher::credit_training(&st, &mut tx, job, &idx, now).await?;
    tx.commit().await?;
    if inserted == 1 {
        tracing::info!(job, round = task.round, shard = task.shard, trainer = %address, %reason, p, "update reported");
    }
    st.wake.notify_one();
    Ok(Json(UpdateAck {
        update_index: index,
        status: status_word(view.status),
    }))
}

/// A trainer's record as adaptive replication and task sizing see it.
pub async fn trainer_record(st: &AppState, address: Address, now: u64) -> Result<TrainerRecord> {
    let row = sqlx::query(
        "SELECT accepted, rejected, clean, train_points, train_at, drill_points, drill_at
         FROM participants WHERE address = ?",
    )
    .bind(addr_text(address))
    .fetch_optional(&st.db.read)
    .await?;
    Ok(row
        .map(|r| TrainerRecord {
            accepted: r.get::<i64, _>(0) as u64,
            rejected: r.get::<i64, _>(1) as u64,
            clean: r.get::<i64, _>(2) as u64,
            reputation: st.decay.total(
                (r.get(3), r.get::<i64, _>(4) as u64),
                (r.get(5), r.get::<i64, _>(6) as u64),
                now,
            ),
        })
        .unwrap_or_default())
}

/// What the guards found on a reported delta.
struct Screen {
    flag: Option<CheckReason>,
    duplicate_of: Option<U256>,
    measured: Option<crate::guard::Measured>,
}

/// Runs the guards (`guard.rs`) on the delta `hash` reported for `task`.
async fn screen_update(
    st: &Arc<AppState>,
    info: &Arc<JobInfo>,
    task: &TaskRow,
    hash: B256,
) -> Result<Screen> {
    let duplicate: Option<String> = sqlx::query_scalar(
        "SELECT update_index FROM updates WHERE job_id = ? AND update_hash = ?
           AND NOT (round = ? AND shard = ?) ORDER BY submitted_at LIMIT 1",
    )
    .bind(task.job_id as i64)
    .bind(hash_text(hash))
    .bind(task.round as i64)
    .bind(task.shard as i64)
    .fetch_optional(&st.db.read)
    .await?;
    let duplicate_of = duplicate.as_deref().map(parse_index).transpose()?;
    let reference: Vec<f64> = sqlx::query_scalar(
        "SELECT u.norm FROM updates u
         LEFT JOIN chain_updates c ON c.job_id = u.job_id AND c.update_index = u.update_index
         WHERE u.job_id = ? AND u.round + 1 >= ? AND u.round <= ? AND u.norm IS NOT NULL
           AND u.reason IN ('none', 'drawn', 'probation', 'challenged')
           AND COALESCE(c.status, 'pending') != 'rejected'",
    )
    .bind(task.job_id as i64)
    .bind(task.round as i64)
    .bind(task.round as i64)
    .fetch_all(&st.db.read)
    .await?;
    let base = st.blob(task.base_hash).await?;
    let delta = st.blob(hash).await?;
    let (st2, info2) = (st.clone(), info.clone());
    let probe = crate::guard::ProbeTask {
        shard: task.shard,
        shards: info.spec.shards,
        seed: task.seed,
    };
    let measured = tokio::task::spawn_blocking(move || -> Result<crate::guard::Measured> {
        let layout = info2.model.zeros();
        let limits = funetun_core::DecodeLimits::for_model(layout.num_params(), layout.len());
        let base = funetun_core::encoding::decode_with_layout(&base, &limits, &layout)?;
        let delta = funetun_core::encoding::decode_with_layout(&delta, &limits, &layout)?;
        // No data set here (offline, unknown): the loss probe is skipped.
        let data = st2.dataset_blocking(&info2.dataset).ok();
        crate::guard::measure(
            info2.model,
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

// -------------------------------------------------------------- validations

/// `POST /v1/validations/next`: an update to check, or 204.
async fn next_validation(
    State(st): State<Arc<AppState>>,
    Signed { address, body }: Signed<ValidationRequest>,
) -> Result<Response> {
    let now = now_secs();
    st.require_role(address, role::VALIDATOR).await?;
    st.graph.record(
        Node::Peer(address, NodeKind::Validator),
        Node::Orchestrator,
        "validation",
        now,
    );
    if let Some(job) = body.job_id {
        st.job(job).await?;
    }
    let _guard = st.assign_lock.lock().await;
    let rows = sqlx::query(
        "SELECT u.job_id, u.update_index, u.trainer, u.platform, u.task_id, u.update_hash,
                u.loss_before, u.loss_after, u.reason, u.duplicate_of
         FROM updates u LEFT JOIN chain_updates c ON c.job_id = u.job_id AND c.update_index = u.update_index
         WHERE u.replay = 1 AND COALESCE(c.status, 'pending') IN ('pending', 'challenged')
           AND u.trainer != ? AND (? IS NULL OR u.job_id = ?)
         ORDER BY u.submitted_at, u.job_id, u.update_index LIMIT 256",
    )
    .bind(addr_text(address))
    .bind(body.job_id.map(|j| j as i64))
    .bind(body.job_id.map(|j| j as i64))
    .fetch_all(&st.db.read)
    .await?;
    let mut candidates = Vec::with_capacity(rows.len());
    for r in &rows {
        let job: i64 = r.get(0);
        let idx: &str = r.get(1);
        let Some(info) = st.job_info(job as u64) else {
            continue;
        };
        let votes: Vec<(String, i64)> = sqlx::query_as(
            "SELECT validator, valid FROM chain_votes WHERE job_id = ? AND update_index = ?
             UNION SELECT validator, valid FROM validations WHERE job_id = ? AND update_index = ?",
        )
        .bind(job)
        .bind(idx)
        .bind(job)
        .bind(idx)
        .fetch_all(&st.db.read)
        .await?;
        let mut sides: BTreeMap<bool, BTreeSet<Address>> = BTreeMap::new();
        for (v, valid) in &votes {
            sides.entry(*valid != 0).or_default().insert(parse_addr(v)?);
        }
        let leading = sides.values().map(BTreeSet::len).max().unwrap_or(0);
        let voters: BTreeSet<Address> = sides.into_values().flatten().collect();
        let assigned = sqlx::query(
            "SELECT validator, expires_at, done FROM assignments WHERE job_id = ? AND update_index = ?",
        )
        .bind(job)
        .bind(idx)
        .fetch_all(&st.db.read)
        .await?
        .iter()
        .map(|a| {
            Ok((
                parse_addr(a.get::<&str, _>(0))?,
                a.get::<i64, _>(1) as u64,
                a.get::<i64, _>(2) != 0,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
        let candidate = Candidate {
            trainer: parse_addr(r.get::<&str, _>(2))?,
            platform: r.get(3),
            voters,
            assigned,
            leading,
            quorum: info.quorum,
        };
        candidates.push((r, info, candidate));
    }
    let views: Vec<Candidate> = candidates.iter().map(|(_, _, c)| c.clone()).collect();
    let Some((i, existing)) = pick_assignment(&views, address, body.platform.as_deref(), now)
    else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let (row, info, candidate) = &candidates[i];
    let job: i64 = row.get(0);
    let idx: String = row.get(1);
    let task = load_task(&st, row.get::<i64, _>(4) as u64)
        .await?
        .ok_or_else(|| Error::Inconsistent(format!("the task of update {idx} vanished")))?;
    if !existing {
        sqlx::query(
            "INSERT INTO assignments (job_id, update_index, validator, issued_at, expires_at, done)
             VALUES (?, ?, ?, ?, ?, 0)
             ON CONFLICT(job_id, update_index, validator) DO UPDATE SET issued_at = excluded.issued_at,
             expires_at = excluded.expires_at",
        )
        .bind(job)
        .bind(&idx)
        .bind(addr_text(address))
        .bind(now as i64)
        .bind((now + info.spec.lease_secs) as i64)
        .execute(&st.db.write)
        .await?;
    }
    Ok(Json(ValidationAssignment {
        job_id: job as u64,
        update_index: parse_index(&idx)?,
        trainer: candidate.trainer,
        task: task_of(info, &task),
        update_hash: parse_hash(row.get::<&str, _>(5))?,
        mode: info.spec.validation.mode,
        loss_before: row.get::<f64, _>(6) as f32,
        loss_after: row.get::<f64, _>(7) as f32,
        tolerance: info.spec.validation.spot_check_tolerance,
        reason: CheckReason::parse(row.get::<&str, _>(8)),
        duplicate_of: row.get::<Option<&str>, _>(9).map(parse_index).transpose()?,
    })
    .into_response())
}

/// `POST /v1/validations`: a validator reports its on-chain vote.
async fn report_validation(
    State(st): State<Arc<AppState>>,
    Signed { address, body }: Signed<ValidationReport>,
) -> Result<Json<ValidationAck>> {
    let now = now_secs();
    st.graph.record(
        Node::Peer(address, NodeKind::Validator),
        Node::Orchestrator,
        "validation",
        now,
    );
    let info = st.job(body.job_id).await?;
    let job = body.job_id;
    let idx = index_text(body.update_index);
    let steps: Option<i64> =
        sqlx::query_scalar("SELECT steps FROM updates WHERE job_id = ? AND update_index = ?")
            .bind(job as i64)
            .bind(&idx)
            .fetch_optional(&st.db.read)
            .await?;
    let Some(steps) = steps else {
        return Err(Error::not_found(
            "unknown_update",
            format!("no update {idx} was reported for job {job}"),
        ));
    };
    let receipt = st
        .ledger
        .provider()
        .get_transaction_receipt(body.tx_hash)
        .await
        .map_err(chain_read)?;
    let mut found = false;
    let mut decided = None;
    if let Some(receipt) = &receipt
        && receipt.status()
    {
        for l in funetun_chain::events::decode_logs(st.config.contract, receipt.inner.logs()) {
            match &l.event {
                E::VoteCast(e)
                    if e.jobId == U256::from(job)
                        && e.index == body.update_index
                        && e.validator == address
                        && e.valid == body.valid =>
                {
                    found = true
                }
                E::UpdateDecided(e)
                    if e.jobId == U256::from(job) && e.index == body.update_index =>
                {
                    decided = Some(e.accepted);
                    if e.decidedBy == address && e.accepted == body.valid {
                        found = true;
                    }
                }
                _ => {}
            }
        }
    }
    if !found {
        found = st
            .ledger
            .votes(U256::from(job), body.update_index)
            .await?
            .contains(&(address, body.valid));
    }
    if !found {
        return Err(Error::conflict(
            "vote_not_found",
            format!(
                "no on-chain vote `{}` by {address} on update {idx} of job {job} (transaction {}); \
                 vote with validateUpdate first",
                body.valid, body.tx_hash
            ),
        ));
    }
    let mut tx = st.db.begin().await?;
    let new = sqlx::query(
        "INSERT OR IGNORE INTO validations (job_id, update_index, validator, valid, tx_hash, detail, reported_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(job as i64)
    .bind(&idx)
    .bind(addr_text(address))
    .bind(body.valid as i64)
    .bind(hash_text(body.tx_hash))
    .bind(truncate(&body.detail, 4096))
    .bind(now as i64)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    sqlx::query(
        "INSERT INTO assignments (job_id, update_index, validator, issued_at, expires_at, done)
         VALUES (?, ?, ?, ?, ?, 1)
         ON CONFLICT(job_id, update_index, validator) DO UPDATE SET done = 1",
    )
    .bind(job as i64)
    .bind(&idx)
    .bind(addr_text(address))
    .bind(now as i64)
    .bind(now as i64)
    .execute(&mut *tx)
    .await?;
    if new {
        sqlx::query(
            "INSERT INTO participants (address, validations) VALUES (?, 1)
             ON CONFLICT(address) DO UPDATE SET validations = validations + 1",
        )
        .bind(addr_text(address))
        .execute(&mut *tx)
        .await?;
        let points = if info.spec.validation.mode == ValidationMode::Replay {
            steps as f64
        } else {
            1.0
        };
        crate::watcher::add_points(&st, &mut tx, &addr_text(address), "drill", points, now).await?;
    }
    tx.commit().await?;
    st.wake.notify_one();
    let status = match decided {
        Some(true) => UpdateStatus::Accepted,
        Some(false) => UpdateStatus::Rejected,
        None => chain_status(&st, job, &idx).await?,
    };
    Ok(Json(ValidationAck { status }))
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

// -------------------------------------------------------------------- reads

const SUMMARY_SQL: &str = "SELECT j.job_id, j.name, j.owner, j.leader, j.spec_hash, j.status, j.round, j.rounds,
    j.deposit_wei, j.paid_wei, j.slashed_wei, j.remaining_wei, j.created_at,
    COALESCE((SELECT r.checkpoint_hash FROM rounds r WHERE r.job_id = j.job_id AND r.checkpoint_hash IS NOT NULL
              ORDER BY r.round DESC LIMIT 1),
             (SELECT r.base_hash FROM rounds r WHERE r.job_id = j.job_id AND r.round = 0)),
    (SELECT r.test_accuracy FROM rounds r WHERE r.job_id = j.job_id AND r.test_accuracy IS NOT NULL
     ORDER BY r.round DESC LIMIT 1),
    j.base_reward_wei, j.spec
    FROM jobs j";

fn summary(r: &SqliteRow) -> Result<JobSummary> {
    Ok(JobSummary {
        job_id: r.get::<i64, _>(0) as u64,
        name: r.get(1),
        owner: parse_addr(r.get::<&str, _>(2))?,
        leader: parse_addr(r.get::<&str, _>(3))?,
        spec_hash: parse_hash(r.get::<&str, _>(4))?,
        status: parse_word(r.get::<&str, _>(5))?,
        round: r.get::<i64, _>(6) as u64,
        rounds: r.get::<i64, _>(7) as u64,
        deposit_wei: parse_wei(r.get::<&str, _>(8)),
        paid_wei: parse_wei(r.get::<&str, _>(9)),
        slashed_wei: parse_wei(r.get::<&str, _>(10)),
        remaining_wei: parse_wei(r.get::<&str, _>(11)),
        created_at: r.get::<i64, _>(12) as u64,
        latest_checkpoint: crate::state::opt_hash(r.get(13))?,
        test_accuracy: r.get(14),
    })
}

/// `GET /v1/jobs`.
async fn list_jobs(State(st): State<Arc<AppState>>) -> Result<Json<Vec<JobSummary>>> {
    let rows = sqlx::query(&format!("{SUMMARY_SQL} ORDER BY j.job_id"))
        .fetch_all(&st.db.read)
        .await?;
    Ok(Json(rows.iter().map(summary).collect::<Result<_>>()?))
}

/// `GET /v1/jobs/{id}`.
async fn get_job(
    State(st): State<Arc<AppState>>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<JobDetail>> {
    let row = sqlx::query(&format!("{SUMMARY_SQL} WHERE j.job_id = ?"))
        .bind(id as i64)
        .fetch_optional(&st.db.read)
        .await?
        .ok_or_else(|| unknown_job(&st, id))?;
    let spec_text: Option<String> = row.get(16);
    let spec = match spec_text {
        Some(text) => JobSpec::from_toml(&text)
            .map_err(|e| Error::Inconsistent(format!("stored spec of job {id}: {e}")))?,
        None => {
            return Err(Error::conflict(
                "spec_unavailable",
                format!(
                    "job {id} has no usable spec yet (status {})",
                    row.get::<&str, _>(5)
                ),
            ));
        }
    };
    Ok(Json(JobDetail {
        summary: summary(&row)?,
        spec,
        base_reward_wei: parse_wei(row.get::<&str, _>(15)),
    }))
}

fn unknown_job(st: &AppState, id: u64) -> Error {
    Error::not_found(
        "unknown_job",
        format!("job {id} is not led by this orchestrator ({})", st.address),
    )
}

async fn known_job(st: &AppState, id: u64) -> Result<()> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT job_id FROM jobs WHERE job_id = ?")
        .bind(id as i64)
        .fetch_optional(&st.db.read)
        .await?;
    exists.map(|_| ()).ok_or_else(|| unknown_job(st, id))
}

/// The rounds of a job, oldest first.
pub async fn rounds_of(st: &AppState, id: u64) -> Result<Vec<RoundInfo>> {
    known_job(st, id).await?;
    let rows = sqlx::query(
        "SELECT r.round, r.status, r.base_hash, r.checkpoint_hash, r.test_loss, r.test_accuracy,
                r.train_loss, r.opened_at, r.closed_at, r.commit_tx,
                (SELECT COUNT(*) FROM tasks t WHERE t.job_id = r.job_id AND t.round = r.round),
                (SELECT COUNT(*) FROM updates u WHERE u.job_id = r.job_id AND u.round = r.round),
                (SELECT COUNT(*) FROM updates u WHERE u.job_id = r.job_id AND u.round = r.round AND u.replay = 1),
                (SELECT COUNT(*) FROM chain_updates c WHERE c.job_id = r.job_id AND c.round = r.round AND c.status = 'accepted'),
                (SELECT COUNT(*) FROM chain_updates c WHERE c.job_id = r.job_id AND c.round = r.round AND c.status = 'rejected'),
                (SELECT AVG(u.loss_after) FROM updates u WHERE u.job_id = r.job_id AND u.round = r.round)
         FROM rounds r WHERE r.job_id = ? ORDER BY r.round",
    )
    .bind(id as i64)
    .fetch_all(&st.db.read)
    .await?;
    rows.iter()
        .map(|r| {
            // A closing round is still open to readers.
            let status = match parse_word(r.get::<&str, _>(1))? {
                RoundStatus::Closed => RoundStatus::Closed,
                RoundStatus::Open | RoundStatus::Closing => RoundStatus::Open,
            };
            Ok(RoundInfo {
                round: r.get::<i64, _>(0) as u64,
                status,
                base_hash: parse_hash(r.get::<&str, _>(2))?,
                checkpoint_hash: crate::state::opt_hash(r.get(3))?,
                leased: r.get::<i64, _>(10) as u64,
                submitted: r.get::<i64, _>(11) as u64,
                replayed: r.get::<i64, _>(12) as u64,
                accepted: r.get::<i64, _>(13) as u64,
                rejected: r.get::<i64, _>(14) as u64,
                test_loss: r.get(4),
                test_accuracy: r.get(5),
                train_loss: r.get::<Option<f64>, _>(6).or(r.get(15)),
                opened_at: r.get::<i64, _>(7) as u64,
                closed_at: r.get::<Option<i64>, _>(8).map(|v| v as u64),
                commit_tx: crate::state::opt_hash(r.get(9))?,
            })
        })
        .collect()
}

/// `GET /v1/jobs/{id}/rounds`.
async fn job_rounds(
    State(st): State<Arc<AppState>>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<Vec<RoundInfo>>> {
    Ok(Json(rounds_of(&st, id).await?))
}

/// `GET /v1/jobs/{id}/updates`.
async fn job_updates(
    State(st): State<Arc<AppState>>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<Vec<UpdateInfo>>> {
    known_job(&st, id).await?;
    let rows = sqlx::query(
        "SELECT u.round, u.update_index, u.trainer, u.task_id, u.shard, u.update_hash, u.submit_tx,
                COALESCE(c.status, 'pending'), u.replay, u.loss_before, u.loss_after,
                COALESCE(c.paid_wei, '0'), COALESCE(c.slashed_wei, '0'), u.submitted_at, u.reason, u.steps
         FROM updates u LEFT JOIN chain_updates c ON c.job_id = u.job_id AND c.update_index = u.update_index
         WHERE u.job_id = ? ORDER BY u.round, u.shard, u.update_index",
    )
    .bind(id as i64)
    .fetch_all(&st.db.read)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let idx: String = r.get(1);
        let votes = sqlx::query(
            "SELECT validator, valid, tx_hash, detail FROM validations WHERE job_id = ? AND update_index = ?
             UNION ALL
             SELECT v.validator, v.valid, v.tx_hash, '' FROM chain_votes v WHERE v.job_id = ? AND v.update_index = ?
               AND NOT EXISTS (SELECT 1 FROM validations w WHERE w.job_id = v.job_id
                               AND w.update_index = v.update_index AND w.validator = v.validator)
             ORDER BY 1",
        )
        .bind(id as i64)
        .bind(&idx)
        .bind(id as i64)
        .bind(&idx)
        .fetch_all(&st.db.read)
        .await?
        .iter()
        .map(|v| {
            Ok(VoteInfo {
                validator: parse_addr(v.get::<&str, _>(0))?,
                valid: v.get::<i64, _>(1) != 0,
                tx_hash: parse_hash(v.get::<&str, _>(2))?,
                detail: v.get(3),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let status = crate::scheduler::UpdateStatus::parse(r.get::<&str, _>(7)).api();
        out.push(UpdateInfo {
            job_id: id,
            round: r.get::<i64, _>(0) as u64,
            update_index: parse_index(&idx)?,
            trainer: parse_addr(r.get::<&str, _>(2))?,
            task_id: r.get::<i64, _>(3) as u64,
            shard: r.get::<i64, _>(4) as u32,
            steps: r.get::<i64, _>(15) as u32,
            update_hash: parse_hash(r.get::<&str, _>(5))?,
            submit_tx: parse_hash(r.get::<&str, _>(6))?,
            status,
            replay: r.get::<i64, _>(8) != 0,
            reason: CheckReason::parse(r.get::<&str, _>(14)),
            votes,
            loss_before: r.get::<f64, _>(9) as f32,
            loss_after: r.get::<f64, _>(10) as f32,
            paid_wei: parse_wei(r.get::<&str, _>(11)),
            slashed_wei: parse_wei(r.get::<&str, _>(12)),
            submitted_at: r.get::<i64, _>(13) as u64,
        });
    }
    Ok(Json(out))
}

/// `GET /v1/participants`.
async fn participants(State(st): State<Arc<AppState>>) -> Result<Json<Vec<ParticipantInfo>>> {
    let now = now_secs();
    let rows = sqlx::query(
        "SELECT address, roles, stake_wei, credit_wei, earned_wei, slashed_wei, accepted, rejected,
                validations, train_points, train_at, drill_points, drill_at, capacity, last_seen
         FROM participants ORDER BY address",
    )
    .fetch_all(&st.db.read)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let bits: i64 = r.get(1);
        let address = parse_addr(r.get::<&str, _>(0))?;
        let mut roles = Vec::new();
        if bits & i64::from(role::TRAINER) != 0 {
            roles.push(Role::Trainer);
        }
        if bits & i64::from(role::VALIDATOR) != 0 {
            roles.push(Role::Validator);
        }
        if bits & crate::watcher::ROLE_OWNER != 0 {
            roles.push(Role::Owner);
        }
        if address == st.address {
            roles.push(Role::Leader);
        }
        let train = (r.get::<f64, _>(9), r.get::<i64, _>(10) as u64);
        let drill = (r.get::<f64, _>(11), r.get::<i64, _>(12) as u64);
        out.push(ParticipantInfo {
            address,
            roles,
            stake_wei: parse_wei(r.get::<&str, _>(2)),
            credit_wei: parse_wei(r.get::<&str, _>(3)),
            earned_wei: parse_wei(r.get::<&str, _>(4)),
            slashed_wei: parse_wei(r.get::<&str, _>(5)),
            accepted: r.get::<i64, _>(6) as u64,
            rejected: r.get::<i64, _>(7) as u64,
            validations: r.get::<i64, _>(8) as u64,
            reputation: st.decay.total(train, drill, now),
            capacity: r
                .get::<Option<String>, _>(13)
                .and_then(|c| c.parse::<Capacity>().ok()),
            last_seen: r.get::<i64, _>(14) as u64,
        });
    }
    Ok(Json(out))
}

/// `GET /graph`.
async fn graph(State(st): State<Arc<AppState>>) -> Result<Json<funetun_core::api::Graph>> {
    Ok(Json(crate::graph::read(&st).await?))
}
