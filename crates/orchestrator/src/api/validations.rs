//! `POST /v1/validations/next` and `POST /v1/validations` (also `/submit_validation`).

use funetun_core::protocol::NodeKind;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use funetun_core::api::{ValidationAck, ValidationReport, ValidationRequest};

use crate::auth::{Signed, role};
use crate::error::Result;
use crate::graph::Node;
use crate::service::validations;
use crate::state::AppState;
use crate::util::now_secs;

/// `POST /v1/validations/next`: an update to check, or 204.
pub async fn next_validation(
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
    Ok(match validations::next(&st, address, &body, now).await? {
        Some(assignment) => Json(assignment).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// `POST /v1/validations`: a validator reports its on-chain vote.
pub async fn report_validation(
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
    Ok(Json(validations::report(&st, address, &body, now).await?))
}
