//! Errors of the participant crate.

use funetun_chain::ChainError;
use funetun_client::ClientError;

/// Everything that can go wrong in the plumbing participants share.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to the orchestrator failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Talking to the chain failed.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// Training, data loading or reading a task failed.
    #[error(transparent)]
    Ml(#[from] funetun_ml::Error),
    /// A blob did not decode as the model's tensors.
    #[error("blob {hash}: {source}")]
    Blob {
        /// The blob's hash.
        hash: String,
        /// Why it did not decode.
        #[source]
        source: funetun_core::Error,
    },
    /// The local blob cache could not be read or written.
    #[error("blob cache: {0}")]
    Cache(#[source] funetun_core::Error),
    /// The configuration cannot work, or a background computation stopped.
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

    /// True when the orchestrator does not have the blob asked for (404
    /// `unknown_blob`): a committed hash without its delta.
    pub fn is_missing_blob(&self) -> bool {
        matches!(self, Error::Client(e) if e.code() == Some("unknown_blob"))
    }

    /// Why a fetched blob is not the model's tensors, if that is the error.
    pub fn malformed_blob(&self) -> Option<&funetun_core::Error> {
        match self {
            Error::Blob { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result alias of the participant crate.
pub type Result<T> = std::result::Result<T, Error>;
