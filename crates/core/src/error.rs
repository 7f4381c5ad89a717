//! Errors of the core crate.

/// Everything that can go wrong in the core crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor file's bytes are not canonical Funetun safetensors.
    #[error("invalid tensor file: {0}")]
    Encoding(String),
    /// A tensor's shape does not match its data or an expected layout.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A tensor holds NaN or infinite values.
    #[error("tensor `{name}` holds a non-finite value at element {index}")]
    NonFinite {
        /// Name of the offending tensor.
        name: String,
        /// Flat index of the first non-finite element.
        index: usize,
    },
    /// Bytes offered under a name that is not their keccak256.
    #[error("blob named {named} hashes to {actual}")]
    BlobHash {
        /// The name they were offered under.
        named: crate::hash::Hash,
        /// Their keccak256.
        actual: crate::hash::Hash,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for the core crate.
pub type Result<T> = std::result::Result<T, Error>;
