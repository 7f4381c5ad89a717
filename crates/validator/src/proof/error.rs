//! Errors of proof-of-training verification.
//!
//! A check that *fails* is not an error: it is a [`super::CheckResult`]
//! with `passed: false`. Errors are inputs that cannot be checked at all.

/// What stops a chain from being checked.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// Fewer than two checkpoints: there is no training to check.
    #[error("a chain needs at least two checkpoints (θ₀ and one trained round), got {0}")]
    TooShort(usize),
    /// A checkpoint does not fit the declared model or holds non-finite values.
    #[error("checkpoint {index} does not fit the declared model: {source}")]
    Checkpoint {
        /// Position in the chain (= its round).
        index: usize,
        /// What is wrong with it.
        #[source]
        source: funetun_core::Error,
    },
    /// A threshold or setting is out of range.
    #[error("proof configuration: `{field}` {detail}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong and what would be right.
        detail: String,
    },
    /// Evaluating or training failed.
    #[error(transparent)]
    Ml(#[from] funetun_ml::Error),
}

/// Result alias of the proof module.
pub type Result<T> = std::result::Result<T, ProofError>;
