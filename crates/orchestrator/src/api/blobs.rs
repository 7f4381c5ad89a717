//! `PUT /v1/blobs/{hash}?job=ID` or `?kind=spec`, and `GET /v1/blobs/{hash}`.

use funetun_core::protocol::NodeKind;
use std::str::FromStr;
use std::sync::Arc;

use alloy_primitives::B256;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use funetun_core::spec::MAX_SPEC_BYTES;
use funetun_core::{JobSpec, keccak256};
use serde_json::json;

use super::PathParam;
use crate::auth::{SignedBytes, role, too_large};
use crate::error::{Error, Result};
use crate::graph::Node;
use crate::state::AppState;
use crate::util::now_secs;
use funetun_ml::Architecture as _;

fn parse_blob_hash(raw: &str) -> Result<B256> {
    B256::from_str(raw).map_err(|_| {
        Error::bad_request(
            "bad_hash",
            format!("`{raw}` is not a 32-byte 0x-hex keccak256"),
        )
    })
}

/// `PUT /v1/blobs/{hash}?job=ID` or `?kind=spec`.
pub async fn put_blob(
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
                info2.model.decode(&bytes).map_err(|e| {
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
pub async fn get_blob(
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
