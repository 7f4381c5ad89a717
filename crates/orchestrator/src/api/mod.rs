//! The HTTP API (docs/api.md): [`app`] builds the router; the handlers live
//! in one module per resource. Mutating routes take a signed body
//! ([`crate::auth::Signed`]); reads are public. Handlers are thin: they
//! extract, call a [`crate::service`] function or a store read, and map the
//! result to a response.
//!
//! - [`tasks`]: `POST /v1/tasks`, `GET /v1/tasks/{id}`, `POST /v1/failures`.
//! - [`blobs`]: `PUT`/`GET /v1/blobs/{hash}`.
//! - [`updates`]: `POST /v1/updates`.
//! - [`validations`]: `POST /v1/validations/next`, `POST /v1/validations`.
//! - [`compute`]: `POST /v1/compute/tasks`, `GET /v1/compute/tasks/{id}`,
//!   `POST /v1/compute/leases`, `POST /v1/compute/results`, `POST
//!   /v1/compute/tasks/bulk`, `POST /v1/compute/exchange`.
//! - [`reads`]: jobs, rounds, updates, failures, participants, `/graph`, `/v1/info`, `/healthz`.

pub mod blobs;
pub mod compute;
pub mod reads;
pub mod tasks;
pub mod updates;
pub mod validations;

use std::str::FromStr;
use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use crate::error::{Error, Result};
use crate::state::AppState;

pub use reads::rounds_of;

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// The router of every route, over `state`.
pub fn app(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/tasks", post(tasks::lease_task))
        .route("/v1/tasks/{id}", get(tasks::get_task))
        .route("/get_task", post(tasks::lease_task))
        .route(
            "/v1/blobs/{hash}",
            put(blobs::put_blob).get(blobs::get_blob),
        )
        .route("/v1/failures", post(tasks::give_up_task))
        .route("/v1/updates", post(updates::report_update))
        .route("/submit_update", post(updates::report_update))
        .route("/v1/validations/next", post(validations::next_validation))
        .route("/v1/validations", post(validations::report_validation))
        .route("/submit_validation", post(validations::report_validation))
        .route("/v1/compute/tasks", post(compute::submit_task))
        .route("/v1/compute/tasks/bulk", post(compute::submit_tasks))
        .route("/v1/compute/tasks/{id}", get(compute::get_task))
        .route("/v1/compute/leases", post(compute::lease_replica))
        .route("/v1/compute/results", post(compute::report_result))
        .route("/v1/compute/exchange", post(compute::exchange))
        .route("/v1/jobs", get(reads::list_jobs))
        .route("/v1/jobs/{id}", get(reads::get_job))
        .route("/v1/jobs/{id}/rounds", get(reads::job_rounds))
        .route("/v1/jobs/{id}/updates", get(reads::job_updates))
        .route("/v1/jobs/{id}/failures", get(reads::job_failures))
        .route("/v1/participants", get(reads::participants))
        .route("/graph", get(reads::graph))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(reads::health))
        .route("/v1/info", get(reads::info))
        .route(funetun_dashboard::CHARTS_PATH, get(reads::job_charts))
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

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
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
