//! The public reads: `/v1/jobs`, `/v1/jobs/{id}`, its rounds, updates,
//! failures and charts, `/v1/participants`, `/graph`, `/v1/info`, `/healthz`. Each is one
//! store read (a query or two, never one per row).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use funetun_core::JobSpec;
use funetun_core::api::{
    Capacity, FailureInfo, JobDetail, JobSummary, ParticipantInfo, RoundInfo, ServiceInfo,
    UpdateInfo,
};
use funetun_core::protocol::Role;

use super::PathParam;
use crate::auth::role;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::jobs::unknown_job;
use crate::store::participants::ROLE_OWNER;
use crate::util::now_secs;

/// `GET /healthz`: leader, contract, the last block applied, and the state
/// of the chain and the database; 503 when either is down.
pub async fn health(State(st): State<Arc<AppState>>) -> Response {
    let health = crate::health::check(&st).await;
    let status = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

/// `GET /v1/info`: the leader address and contract, so participants need only the URL.
pub async fn info(State(st): State<Arc<AppState>>) -> Json<ServiceInfo> {
    Json(ServiceInfo {
        leader: st.address,
        contract: st.config.contract,
        chain_id: st.ledger.chain_id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// `GET /v1/jobs/{id}/charts.svg`: test accuracy and losses per closed round.
pub async fn job_charts(
    State(st): State<Arc<AppState>>,
    PathParam(id): PathParam<u64>,
) -> Result<Response> {
    let rounds = rounds_of(&st, id).await?;
    Ok(funetun_dashboard::charts::round_charts_response(&rounds))
}

/// `GET /v1/jobs`.
pub async fn list_jobs(State(st): State<Arc<AppState>>) -> Result<Json<Vec<JobSummary>>> {
    let rows = st.store.jobs().await?;
    Ok(Json(
        rows.iter().map(|r| r.summary()).collect::<Result<_>>()?,
    ))
}

/// `GET /v1/jobs/{id}`.
pub async fn get_job(
    State(st): State<Arc<AppState>>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<JobDetail>> {
    let row = st
        .store
        .job(id)
        .await?
        .ok_or_else(|| unknown_job(id, st.address))?;
    let spec = match &row.spec {
        Some(text) => JobSpec::from_toml(text)
            .map_err(|e| Error::Inconsistent(format!("stored spec of job {id}: {e}")))?,
        None => {
            return Err(Error::conflict(
                "spec_unavailable",
                format!("job {id} has no usable spec yet (status {})", row.status()?),
            ));
        }
    };
    Ok(Json(JobDetail {
        summary: row.summary()?,
        spec,
        base_reward_wei: row.base_reward_wei(),
        validation_reward_wei: row.validation_reward_wei(),
        validators_paid_wei: row.validators_paid_wei(),
    }))
}

async fn known_job(st: &AppState, id: u64) -> Result<()> {
    if st.store.job_exists(id).await? {
        Ok(())
    } else {
        Err(unknown_job(id, st.address))
    }
}

/// The rounds of a job, oldest first.
pub async fn rounds_of(st: &AppState, id: u64) -> Result<Vec<RoundInfo>> {
    known_job(st, id).await?;
    st.store.round_infos(id).await
}

/// `GET /v1/jobs/{id}/rounds`.
pub async fn job_rounds(
    State(st): State<Arc<AppState>>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<Vec<RoundInfo>>> {
    Ok(Json(rounds_of(&st, id).await?))
}

/// `GET /v1/jobs/{id}/updates`.
pub async fn job_updates(
    State(st): State<Arc<AppState>>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<Vec<UpdateInfo>>> {
    known_job(&st, id).await?;
    Ok(Json(st.store.update_infos(id).await?))
}

/// Entries of `GET /v1/jobs/{id}/failures`, at most.
const FAILURES_LISTED: u32 = 50;

/// `GET /v1/jobs/{id}/failures`: the tasks trainers gave up, and why, one
/// entry per (trainer, reason), most recent first.
pub async fn job_failures(
    State(st): State<Arc<AppState>>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<Vec<FailureInfo>>> {
    known_job(&st, id).await?;
    Ok(Json(st.store.failures(id, FAILURES_LISTED).await?))
}

/// `GET /v1/participants`.
pub async fn participants(State(st): State<Arc<AppState>>) -> Result<Json<Vec<ParticipantInfo>>> {
    let now = now_secs();
    let rows = st.store.participants().await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let bits = r.roles();
        let address = r.address()?;
        let mut roles = Vec::new();
        if bits & i64::from(role::TRAINER) != 0 {
            roles.push(Role::Trainer);
        }
        if bits & i64::from(role::VALIDATOR) != 0 {
            roles.push(Role::Validator);
        }
        if bits & ROLE_OWNER != 0 {
            roles.push(Role::Owner);
        }
        if address == st.address {
            roles.push(Role::Leader);
        }
        let [stake_wei, credit_wei, earned_wei, slashed_wei] = r.money();
        let [accepted, rejected, validations] = r.counts();
        let (train, drill) = r.points();
        out.push(ParticipantInfo {
            address,
            roles,
            stake_wei,
            credit_wei,
            earned_wei,
            slashed_wei,
            accepted,
            rejected,
            validations,
            reputation: st.decay.total(train, drill, now),
            capacity: r
                .capacity
                .as_deref()
                .and_then(|c| c.parse::<Capacity>().ok()),
            last_seen: r.last_seen(),
        });
    }
    Ok(Json(out))
}

/// `GET /graph`.
pub async fn graph(State(st): State<Arc<AppState>>) -> Result<Json<funetun_core::api::Graph>> {
    Ok(Json(crate::graph::read(&st).await?))
}
