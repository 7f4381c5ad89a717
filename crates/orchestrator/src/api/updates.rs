//! `POST /v1/updates` (also `/submit_update`).

use funetun_core::protocol::NodeKind;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use funetun_core::api::{UpdateAck, UpdateReport};

use crate::auth::Signed;
use crate::error::Result;
use crate::graph::Node;
use crate::state::AppState;
use crate::util::now_secs;

/// `POST /v1/updates`: the trainer reports its on-chain submission.
pub async fn report_update(
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
    Ok(Json(
        crate::service::updates::report(&st, address, &body, now).await?,
    ))
}
