//! Errors of the trainer crate.

use funetun_chain::ChainError;
use funetun_client::ClientError;

/// Everything that can go wrong in a participant process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to the orchestrator failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Talking to the chain failed.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// Training or data loading failed.
    #[error(transparent)]
    Ml(#[from] funetun_ml::Error),
    /// A blob did not decode.
    #[error("blob {hash}: {source}")]
    Blob {
        /// The blob's hash.
        hash: String,
        /// Why it did not decode.
        #[source]
        source: funetun_core::Error,
    },
    /// A task from the orchestrator cannot be run as given.
    #[error("task {task_id}: {detail}")]
    BadTask {
        /// The lease.
        task_id: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// Local files (cache, journal).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration cannot work.
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// True for failures worth retrying after a pause: an unreachable or
    /// overloaded orchestrator or RPC node.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Client(e) => e.is_transient(),
            Error::Chain(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Result alias of the trainer crate.
pub type Result<T> = std::result::Result<T, Error>;
