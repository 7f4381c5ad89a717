//! Errors of the orchestrator crate, and how each one is answered over HTTP.
//!
//! Refusals of outside input carry a stable code and a detail for people and
//! become 4xx answers `{ "error", "detail" }`; an outage of the chain, the
//! database or an S3 bucket is a 503 (`chain_unavailable`,
//! `database_unavailable`, `blob_store_unavailable`) with `retry-after`;
//! everything else (disk, compute, inconsistent state) is logged and
//! answered as a 500 that reveals nothing internal.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use funetun_core::api::ErrorBody;

/// Result alias of the orchestrator crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A refused request: an HTTP status, a stable code and a detail.
    #[error("{code}: {detail}")]
    Refused {
        /// The HTTP status to answer with (4xx).
        status: StatusCode,
        /// Stable machine-readable code, e.g. `bad_signature`.
        code: &'static str,
        /// What went wrong and what to do.
        detail: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The chain could not be read or a transaction failed.
    #[error("chain: {0}")]
    Chain(#[from] funetun_chain::ChainError),
    /// The S3-compatible blob store failed.
    #[error("blob store: {0}")]
    Blobs(#[from] object_store::Error),
    /// Disk I/O failed (blobs, sockets).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Training, evaluation or data loading failed.
    #[error("ml: {0}")]
    Ml(#[from] funetun_ml::Error),
    /// Aggregation failed.
    #[error("aggregation: {0}")]
    Aggregate(#[from] funetun_aggregate::Error),
    /// A tensor file could not be encoded or decoded.
    #[error("tensors: {0}")]
    Tensors(#[from] funetun_core::Error),
    /// The configuration cannot work.
    #[error("configuration: {0}")]
    Config(String),
    /// An aggregation manifest cannot be carried out as written.
    #[error("{0}")]
    Manifest(String),
    /// Stored state contradicts itself or the chain.
    #[error("inconsistent state: {0}")]
    Inconsistent(String),
    /// A background task panicked or was cancelled.
    #[error("background task: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// This replica's term as leader ended (another replica holds the
    /// lease now): the write of the old term was refused.
    #[error("deposed: {0}")]
    Deposed(String),
}

impl Error {
    /// A refusal with `status` and `code`.
    pub fn refused(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Error::Refused {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// 400.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::refused(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401.
    pub fn unauthorized(code: &'static str, detail: impl Into<String>) -> Self {
        Self::refused(StatusCode::UNAUTHORIZED, code, detail)
    }

    /// 403.
    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::refused(StatusCode::FORBIDDEN, code, detail)
    }

    /// 404.
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::refused(StatusCode::NOT_FOUND, code, detail)
    }

    /// 409.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::refused(StatusCode::CONFLICT, code, detail)
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Refused { status, .. } => *status,
            e if e.unavailable().is_some() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of a refusal; `chain_unavailable` or
    /// `database_unavailable` for an outage; `internal` otherwise.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Refused { code, .. } => code,
            e => e.unavailable().map_or("internal", |(code, _)| code),
        }
    }

    /// The code and detail of an outage of a dependency, when this error
    /// is one: the chain's node did not answer, or the database pool is
    /// closed, timed out or lost its file.
    pub fn unavailable(&self) -> Option<(&'static str, &'static str)> {
        match self {
            Error::Chain(e) if e.is_unreachable() => Some((
                "chain_unavailable",
                "the orchestrator cannot reach its chain right now; retry in a few seconds",
            )),
            Error::Db(e) if db_unreachable(e) => Some((
                "database_unavailable",
                "the orchestrator's database is not answering right now; retry in a few seconds",
            )),
            // A request that failed after its retries (refused connection,
            // timeout, 5xx); a refused key or a missing bucket is not an outage.
            Error::Blobs(object_store::Error::Generic { .. }) => Some((
                "blob_store_unavailable",
                "the orchestrator's blob store is not answering right now; retry in a few seconds",
            )),
            _ => None,
        }
    }
}

/// Whether a database error means the database is out of reach, not that a
/// statement failed: the pool is closed or timed out, the connection broke,
/// or PostgreSQL reports a connection exception (SQLSTATE class 08) or a
/// shutdown (57P01 admin, 57P02 crash, 57P03 cannot connect now).
pub(crate) fn db_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Some((code, detail)) = self.unavailable() {
            tracing::warn!(error = %self, "answering 503: a dependency is down");
            let body = ErrorBody {
                error: code.into(),
                detail: detail.into(),
            };
            return (status, [(header::RETRY_AFTER, "5")], axum::Json(body)).into_response();
        }
        let body = match self {
            Error::Refused { code, detail, .. } => ErrorBody {
                error: code.to_string(),
                detail,
            },
            other => {
                tracing::error!(error = %other, "request failed");
                ErrorBody {
                    error: "internal".into(),
                    detail: "the orchestrator failed to handle the request; try again later".into(),
                }
            }
        };
        (status, axum::Json(body)).into_response()
    }
}
