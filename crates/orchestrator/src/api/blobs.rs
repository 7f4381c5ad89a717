//! `PUT /v1/blobs/{hash}?job=ID`, `?kind=spec` or `?kind=data`, and
//! `GET /v1/blobs/{hash}`.
//!
//! Checkpoints, deltas and specs are small enough to hold in memory and are
//! checked before they are stored. An owner's data (a corpus, a tokenizer,
//! an IDX pair, an initial checkpoint) may be gigabytes: `?kind=data`
//! streams the body into the store (a temporary file, or an S3 multipart
//! upload) while hashing it, and stores it only if it hashes to its name.
//! Downloads stream from the store, checked against the name as they pass,
//! or redirect to a presigned URL of the bucket (`--s3-redirect`).

use funetun_core::protocol::NodeKind;
use std::str::FromStr;
use std::sync::Arc;

use alloy_primitives::B256;
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest as _, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use funetun_core::auth::RequestAuth;
use funetun_core::spec::MAX_SPEC_BYTES;
use funetun_core::{JobSpec, keccak256};
use serde_json::json;

use super::PathParam;
use crate::auth::{SignedBytes, authenticate_hashed, role, too_large};
use crate::blobs::{Download, UploadError};
use crate::error::{Error, Result};
use crate::graph::Node;
use crate::state::AppState;
use crate::util::now_secs;

fn parse_blob_hash(raw: &str) -> Result<B256> {
    B256::from_str(raw).map_err(|_| {
        Error::bad_request(
            "bad_hash",
            format!("`{raw}` is not a 32-byte 0x-hex keccak256"),
        )
    })
}

/// `PUT /v1/blobs/{hash}?job=ID`, `?kind=spec` or `?kind=data`.
pub async fn put_blob(
    State(st): State<Arc<AppState>>,
    PathParam(raw): PathParam<String>,
    req: Request,
) -> Result<Response> {
    let hash = parse_blob_hash(&raw)?;
    if req.uri().query() == Some("kind=data") {
        return put_data(&st, hash, req).await;
    }
    let uri = req.uri().clone();
    let SignedBytes { address, bytes } = SignedBytes::from_request(req, &st).await?;
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
                    format!(
                        "unknown query parameter `{pair}`; use ?job=ID, ?kind=spec or ?kind=data"
                    ),
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
            let spec = JobSpec::from_bytes(&bytes)
                .map_err(|e| Error::bad_request("bad_spec", e.to_string()))?;
            for blob in spec.blobs() {
                if !st.blobs.contains(blob).await? {
                    return Err(Error::bad_request(
                        "missing_blob",
                        format!(
                            "the spec names blob {blob}, which is not stored here; upload it first \
                             (PUT /v1/blobs/{blob}?kind=data, or `funetun job create --data/--init`)"
                        ),
                    ));
                }
            }
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
                info2.space.decode(&bytes).map_err(|e| {
                    Error::bad_request(
                        "bad_tensor",
                        match &info2.space {
                            funetun_ml::Space::Full(model) => {
                                format!("not a canonical {model} tensor file: {e}")
                            }
                            funetun_ml::Space::Lora(_) => format!(
                                "not a canonical tensor file of job {job}'s LoRA adapters: {e}"
                            ),
                        },
                    )
                })?;
                Ok(())
            })
            .await??;
        }
        _ => {
            return Err(Error::bad_request(
                "bad_query",
                "say what the blob is: ?job=ID for a checkpoint or delta, ?kind=spec for a job spec, \
                 ?kind=data for an owner's data or initial checkpoint",
            ));
        }
    }
    let len = bytes.len();
    let stored = st.blobs.put(hash, bytes).await?;
    Ok(stored_response(stored, hash, len as u64))
}

/// `PUT /v1/blobs/{hash}?kind=data`: an owner's file, streamed to disk.
/// Anyone who signs may upload (as with specs); the size limit
/// (`max_data_bytes`) and the rate limit bound what one address can store.
async fn put_data(st: &Arc<AppState>, hash: B256, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let auth =
        RequestAuth::from_headers(|name| parts.headers.get(name).and_then(|v| v.to_str().ok()));
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or_else(|| parts.uri.path());
    // The signature covers the body's hash, which must be the blob's name;
    // the bytes are checked against it as they arrive.
    let address = authenticate_hashed(st, parts.method.as_str(), path, auth, hash).await?;
    st.graph.record(
        Node::Peer(address, NodeKind::Owner),
        Node::Orchestrator,
        "blob",
        now_secs(),
    );
    let limit = st.config.auth.max_data_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit as usize));
    }
    if st.blobs.contains(hash).await? {
        return Ok((
            StatusCode::OK,
            Json(json!({ "hash": hash, "bytes": declared })),
        )
            .into_response());
    }
    let (stored, len) = match st.blobs.upload(hash, body.into_data_stream(), limit).await {
        Ok(done) => done,
        Err(UploadError::TooLarge) => return Err(too_large(limit as usize)),
        Err(UploadError::HashMismatch(actual)) => {
            return Err(Error::bad_request(
                "hash_mismatch",
                format!("the body hashes to {actual}, not to {hash}; nothing was stored"),
            ));
        }
        Err(UploadError::Body(e)) => {
            return Err(Error::bad_request(
                "bad_body",
                format!("the upload broke off: {e}; nothing was stored"),
            ));
        }
        Err(UploadError::Store(e)) => return Err(e),
    };
    tracing::info!(%hash, bytes = len, from = %address, "owner's data blob stored");
    Ok(stored_response(stored, hash, len))
}

/// 201 for a new blob, 200 for one already stored, with its hash and size.
fn stored_response(stored: bool, hash: B256, len: u64) -> Response {
    let status = if stored {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(json!({ "hash": hash, "bytes": len }))).into_response()
}

/// `GET /v1/blobs/{hash}`: public; streamed from the store, or a redirect
/// to a presigned URL of the bucket.
pub async fn get_blob(
    State(st): State<Arc<AppState>>,
    PathParam(raw): PathParam<String>,
) -> Result<Response> {
    let hash = parse_blob_hash(&raw)?;
    match st.blobs.download(hash).await? {
        None => Err(Error::not_found(
            "unknown_blob",
            format!("no blob {hash} is stored here"),
        )),
        Some(Download::Redirect(url)) => {
            Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url)]).into_response())
        }
        Some(Download::Bytes { len, stream }) => Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::CONTENT_LENGTH, len.to_string()),
            ],
            Body::from_stream(stream),
        )
            .into_response()),
    }
}
