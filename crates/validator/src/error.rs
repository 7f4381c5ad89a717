//! Errors of the validator crate.

/// Everything that can go wrong while checking work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shared participant plumbing (orchestrator, chain, data, blobs).
    #[error(transparent)]
    Participant(#[from] funetun_participant::Error),
    /// Training or evaluation failed.
    #[error(transparent)]
    Ml(#[from] funetun_ml::Error),
    /// Chain access failed.
    #[error("chain: {0}")]
    Chain(#[from] funetun_chain::ChainError),
    /// The orchestrator refused or was unreachable.
    #[error(transparent)]
    Client(#[from] funetun_client::ClientError),
    /// A check could not be carried out.
    #[error("check: {0}")]
    Check(String),
}

impl Error {
    /// True for failures worth retrying after a pause.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Participant(e) => e.is_transient(),
            Error::Client(e) => e.is_transient(),
            Error::Chain(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Result alias of the validator crate.
pub type Result<T> = std::result::Result<T, Error>;
