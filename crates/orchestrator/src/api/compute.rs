//! Generic verified compute (docs/tasks.md): `POST /v1/compute/tasks`,
//! `POST /v1/compute/tasks/bulk`, `GET /v1/compute/tasks/{id}`, `POST
//! /v1/compute/leases`, `POST /v1/compute/results` and `POST
//! /v1/compute/exchange`.

use std::str::FromStr;
use std::sync::Arc;

use alloy_primitives::B256;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use funetun_core::compute::{
    ComputeTaskInfo, Exchange, ExchangeReply, ReplicaAck, ReplicaReport, ReplicaRequest, TaskBulk,
    TaskSubmission, TaskSubmitted, TasksSubmitted,
};
use funetun_core::protocol::NodeKind;

use super::PathParam;
use crate::auth::{Signed, role};
use crate::error::{Error, Result};
use crate::graph::Node;
use crate::service::compute;
use crate::state::AppState;
use crate::util::now_secs;

/// `POST /v1/compute/tasks`: anyone who signs submits a task; 201 with its
/// persistent id.
pub async fn submit_task(
    State(st): State<Arc<AppState>>,
    Signed { address, body }: Signed<TaskSubmission>,
) -> Result<(StatusCode, Json<TaskSubmitted>)> {
    st.graph.record(
        Node::Peer(address, NodeKind::Owner),
        Node::Orchestrator,
        "computeTask",
        now_secs(),
    );
    Ok((
        StatusCode::CREATED,
        Json(compute::submit(&st, address, &body).await?),
    ))
}

/// `POST /v1/compute/tasks/bulk`: many tasks in one request, stored all
/// or none; 201 with their ids in order.
pub async fn submit_tasks(
    State(st): State<Arc<AppState>>,
    Signed { address, body }: Signed<TaskBulk>,
) -> Result<(StatusCode, Json<TasksSubmitted>)> {
    st.graph.record(
        Node::Peer(address, NodeKind::Owner),
        Node::Orchestrator,
        "computeTask",
        now_secs(),
    );
    let task_ids = compute::submit_many(&st, address, &body.tasks).await?;
    Ok((StatusCode::CREATED, Json(TasksSubmitted { task_ids })))
}

/// `GET /v1/compute/tasks/{id}`: a task, its replicas and its result
/// (public).
pub async fn get_task(
    State(st): State<Arc<AppState>>,
    PathParam(raw): PathParam<String>,
) -> Result<Json<ComputeTaskInfo>> {
    let id = B256::from_str(&raw).map_err(|_| {
        Error::bad_request(
            "bad_task_id",
            format!("`{raw}` is not a task id (a 32-byte 0x-hex keccak256)"),
        )
    })?;
    Ok(Json(compute::task(&st, id).await?.info))
}

/// `POST /v1/compute/leases`: a registered trainer takes a replica to run;
/// 204 when there is none.
pub async fn lease_replica(
    State(st): State<Arc<AppState>>,
    Signed { address, body: _ }: Signed<ReplicaRequest>,
) -> Result<Response> {
    st.graph.record(
        Node::Peer(address, NodeKind::Trainer),
        Node::Orchestrator,
        "computeLease",
        now_secs(),
    );
    st.require_role(address, role::TRAINER).await?;
    Ok(match compute::lease(&st, address).await? {
        Some(lease) => Json(lease).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `POST /v1/compute/results`: a worker reports a replica's result.
pub async fn report_result(
    State(st): State<Arc<AppState>>,
    Signed { address, body }: Signed<ReplicaReport>,
) -> Result<Json<ReplicaAck>> {
    st.graph.record(
        Node::Peer(address, NodeKind::Trainer),
        Node::Orchestrator,
        "computeResult",
        now_secs(),
    );
    st.require_role(address, role::TRAINER).await?;
    Ok(Json(compute::report(&st, address, &body).await?))
}

/// `POST /v1/compute/exchange`: a worker reports finished replicas and
/// takes more in one request.
pub async fn exchange(
    State(st): State<Arc<AppState>>,
    Signed { address, body }: Signed<Exchange>,
) -> Result<Json<ExchangeReply>> {
    st.graph.record(
        Node::Peer(address, NodeKind::Trainer),
        Node::Orchestrator,
        "computeExchange",
        now_secs(),
    );
    st.require_role(address, role::TRAINER).await?;
    Ok(Json(compute::exchange(&st, address, &body).await?))
}
