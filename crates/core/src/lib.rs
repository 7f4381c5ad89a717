//! Funetun's shared vocabulary, with no knowledge of HTTP, chains or candle.
//!
//! - [`tensors`]: named f32 tensors ([`TensorSet`]), the in-memory form of
//!   checkpoints and deltas.
//! - [`encoding`]: the canonical safetensors bytes of a [`TensorSet`] and a
//!   strict decoder, so the same weights always give the same keccak256.
//! - [`hash`]: keccak256, the chain's own hash, and the [`Hash`] type.
//! - [`spec`]: the job spec (TOML) an owner writes, with field-naming errors.
//! - [`api`]: every request and response body of the orchestrator's HTTP API.
//! - [`model`]: a model as the protocol names it, with a transformer's
//!   numbers checked.
//! - [`lora`]: low-rank adapters as a job names them (rank, alpha,
//!   target projections), checked.
//! - [`protocol`]: the protocol's words (statuses, validation modes, model
//!   and data set identifiers, roles) as enums parsed once at the edge.
//! - [`auth`]: the signed-request format (EIP-191 over method, path, body
//!   hash, timestamp and nonce); the `signing` feature, on by default.
//! - [`blobs`]: the content-addressed blob directory (checked, atomic,
//!   write-once) behind the orchestrator's store and participants' caches.
//! - [`sync`]: how a job's rounds synchronise (`sync`, `stale:S`) and the
//!   manifest of what each checkpoint was built from.
//! - [`compute`]: generic verified compute's wire types (tasks, replicas,
//!   redundancy settings).
//! - [`amount`]: ether amounts with units, and wei as decimal JSON strings.
//! - [`error`]: the crate's error type.

pub mod amount;
pub mod api;
#[cfg(feature = "signing")]
pub mod auth;
pub mod blobs;
pub mod compute;
pub mod encoding;
pub mod error;
pub mod hash;
pub mod lora;
pub mod model;
pub mod protocol;
pub mod spec;
pub mod sync;
pub mod tensors;

pub use encoding::{DecodeLimits, decode, encode};
pub use error::{Error, Result};
pub use hash::{Hash, keccak256};
pub use model::{Model, TransformerConfig};
pub use protocol::{DatasetName, ModelKind, TextTokenizer, Tokenizer, ValidationMode, WordError};
pub use spec::{JobSpec, TransformerSpec};
pub use tensors::{Tensor, TensorSet};
