//! Errors of the chain crate.

use alloy::primitives::{Address, B256};

use crate::bindings::JobManager::JobManagerErrors;

/// Result alias of the chain crate.
pub type Result<T, E = ChainError> = std::result::Result<T, E>;

/// Everything that can go wrong talking to the contract or running the dev chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The contract reverted with one of its custom errors.
    #[error("the contract refused: {}", crate::explain::explain(.0))]
    Revert(JobManagerErrors),
    /// The call reverted with data that is not one of the contract's errors.
    #[error("execution reverted (data 0x{})", hex::encode(.0))]
    RevertData(Vec<u8>),
    /// A mined transaction failed; `error` is the decoded reason when a replay found one.
    #[error("transaction {tx_hash} failed on-chain{}", .error.as_ref().map(|e| format!(": {}", crate::explain::explain(e))).unwrap_or_default())]
    TxFailed {
        /// The failed transaction.
        tx_hash: B256,
        /// The reason, when a replay of the call decoded it.
        error: Option<JobManagerErrors>,
    },
    /// The node refused the request (e.g. nonce too low, insufficient funds).
    #[error("node error {code}: {message}")]
    Rpc {
        /// JSON-RPC error code.
        code: i64,
        /// The node's message.
        message: String,
    },
    /// The node could not be reached after every retry.
    #[error("transport error after {attempts} attempts: {message}")]
    Transport {
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        message: String,
    },
    /// No receipt arrived in time; the transaction may still land.
    #[error("no receipt for {0} before the timeout")]
    ReceiptTimeout(B256),
    /// A receipt or log did not have the expected shape.
    #[error("unexpected chain data: {0}")]
    Unexpected(String),
    /// No contract code at the address.
    #[error("no contract code at {0}")]
    NoContract(Address),
    /// A key could not be parsed.
    #[error("invalid private key: {0}")]
    InvalidKey(String),
    /// Dev chain storage failed.
    #[error("dev chain storage at {path}: {message}")]
    Storage {
        /// The file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The dev chain's data directory holds a chain that does not replay to the same results.
    #[error("dev chain data does not replay: {0}")]
    Replay(String),
    /// I/O error (binding the RPC socket, files).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl ChainError {
    /// True for failures worth retrying later: the node was unreachable, refused the
    /// request for a reason of the moment, or a receipt was slow.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ChainError::Transport { .. } | ChainError::ReceiptTimeout(_) | ChainError::Rpc { .. }
        )
    }

    /// True when the node did not answer at all (unreachable after every
    /// retry, a transport failure, or no receipt in time), as opposed to
    /// answering with a refusal.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ChainError::Transport { .. }
                | ChainError::ReceiptTimeout(_)
                | ChainError::Rpc { code: 0, .. }
        )
    }

    /// The contract error, when this is a decoded revert (directly or of a failed transaction).
    pub fn contract_error(&self) -> Option<&JobManagerErrors> {
        match self {
            ChainError::Revert(e) => Some(e),
            ChainError::TxFailed { error: Some(e), .. } => Some(e),
            _ => None,
        }
    }
}
