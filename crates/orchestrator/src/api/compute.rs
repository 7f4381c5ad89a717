//! Generic verified compute (docs/tasks.md): `POST /v1/compute/tasks`,
//! `GET /v1/compute/tasks/{id}`, `POST /v1/compute/leases` and `POST
//! /v1/compute/results`.

use std::str::FromStr;
use std::sync::Arc;

use alloy_primitives::B256;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use funetun_core::compute::{
    ComputeTaskInfo, ReplicaAck, ReplicaReport, ReplicaRequest, TaskSubmission, TaskSubmitted,
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
