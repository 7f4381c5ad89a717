//! Errors of the ML crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading data, building models or training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file exists but is not what it claims to be.
    #[error("{path}: {problem}")]
    BadDataFile {
        /// The file that failed to parse.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A data set could be neither found locally nor downloaded.
    #[error("{0}")]
    DataUnavailable(String),
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A parameter is out of range or a name is unknown.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// Which input was wrong (a flag, a field).
        what: &'static str,
        /// What is wrong and what to do.
        detail: String,
    },
    /// Weights do not fit the model.
    #[error(transparent)]
    Core(#[from] funetun_core::Error),
    /// Training diverged: the loss or a weight became NaN or infinite.
    #[error("training diverged at step {step}: {detail}; lower the learning rate")]
    Diverged {
        /// The step at which it happened.
        step: usize,
        /// What was found.
        detail: String,
    },
    /// A task from the orchestrator cannot be run as given.
    #[error("task {task_id}: {detail}")]
    BadTask {
        /// The lease.
        task_id: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// The candle reference implementation failed.
    #[error("candle: {0}")]
    #[cfg(feature = "host")]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(what: &'static str, detail: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            detail: detail.into(),
        }
    }
}

/// Result alias for the ML crate.
pub type Result<T> = std::result::Result<T, Error>;

impl From<funetun_core::WordError> for Error {
    fn from(e: funetun_core::WordError) -> Self {
        Error::Invalid {
            what: e.what,
            detail: e.detail,
        }
    }
}
