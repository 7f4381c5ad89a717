//! Errors of the trainer crate.

use funetun_chain::ChainError;
use funetun_client::ClientError;

/// Everything that can go wrong in a trainer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plumbing participants share (blobs, data, compute).
    #[error(transparent)]
    Participant(#[from] funetun_participant::Error),
    /// Talking to the orchestrator failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Talking to the chain failed.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// Training, data loading or reading the task failed.
    #[error(transparent)]
    Ml(#[from] funetun_ml::Error),
    /// A task from the orchestrator cannot be run or resumed as given.
    #[error("task {task_id}: {detail}")]
    BadTask {
        /// The lease.
        task_id: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// The journal could not be read or written.
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
    /// Validators rejected one of this trainer's own updates of the job it
    /// was told to work on; it takes no more work there.
    #[error("{0}")]
    OwnUpdateRejected(String),
}

impl Error {
    /// True for failures worth retrying after a pause: an unreachable or
    /// overloaded orchestrator or RPC node.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Participant(e) => e.is_transient(),
            Error::Client(e) => e.is_transient(),
            Error::Chain(e) => e.is_transient(),
            _ => false,
        }
    }
}

impl Error {
    /// True for failures of the task itself on this machine — its data set
    /// missing or unreadable, its checkpoint or spec unusable, training
    /// failing — which the trainer reports to the orchestrator when it gives
    /// the task up (`POST /v1/failures`). Network, chain and journal
    /// failures are not the task's, and are not reported.
    pub fn is_task_failure(&self) -> bool {
        match self {
            Error::Participant(e) => matches!(
                e,
                funetun_participant::Error::Ml(_) | funetun_participant::Error::Blob { .. }
            ),
            Error::Ml(_) | Error::BadTask { .. } => true,
            Error::Client(_)
            | Error::Chain(_)
            | Error::Io { .. }
            | Error::Config(_)
            | Error::OwnUpdateRejected(_) => false,
        }
    }
}

/// Result alias of the trainer crate.
pub type Result<T> = std::result::Result<T, Error>;
