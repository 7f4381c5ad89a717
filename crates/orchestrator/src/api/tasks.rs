//! `POST /v1/tasks` (also `/get_task`), `GET /v1/tasks/{id}` and `POST
//! /v1/failures`.

use funetun_core::protocol::NodeKind;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use funetun_core::api::{FailureAck, FailureReport, Task};

use super::PathParam;
use crate::auth::{Signed, SignedLease, role};
use crate::error::Result;
use crate::graph::Node;
use crate::service::tasks::{LeaseOutcome, lease, report_failure, task, task_of};
use crate::state::AppState;
use crate::util::now_secs;

/// `POST /v1/tasks`: leases a task, hands back a live one, or 204.
pub async fn lease_task(
    State(st): State<Arc<AppState>>,
    SignedLease {
        address,
        body,
        live,
    }: SignedLease,
) -> Result<Response> {
    let now = now_secs();
    st.graph.record(
        Node::Peer(address, NodeKind::Trainer),
        Node::Orchestrator,
        "lease",
        now,
    );
    st.require_role(address, role::TRAINER).await?;
    Ok(match lease(&st, address, &body, live, now).await? {
        LeaseOutcome::Task(task) => Json(*task).into_response(),
        LeaseOutcome::Nothing => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `GET /v1/tasks/{id}`: a leased task, public (challengers replay it).
pub async fn get_task(
    State(st): State<Arc<AppState>>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<Task>> {
    let task = task(&st, id).await?;
    let info = st.job(task.job_id).await?;
    Ok(Json(task_of(&info, &task)))
}

/// `POST /v1/failures`: a trainer gives up its task and says why.
pub async fn give_up_task(
    State(st): State<Arc<AppState>>,
    Signed { address, body }: Signed<FailureReport>,
) -> Result<Json<FailureAck>> {
    let now = now_secs();
    st.graph.record(
        Node::Peer(address, NodeKind::Trainer),
        Node::Orchestrator,
        "failure",
        now,
    );
    st.require_role(address, role::TRAINER).await?;
    Ok(Json(report_failure(&st, address, &body, now).await?))
}
