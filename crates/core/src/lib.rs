//! Funetun's shared vocabulary, with no knowledge of HTTP, chains or candle.
//!
//! - [`tensors`]: named f32 tensors ([`TensorSet`]), the in-memory form of
//!   checkpoints and deltas.
//! - [`encoding`]: the canonical safetensors bytes of a [`TensorSet`] and a
//!   strict decoder, so the same weights always give the same keccak256.
//! - [`hash`]: keccak256, the chain's own hash, and the [`Hash`] type.
//! - [`error`]: the crate's error type.

pub mod encoding;
pub mod error;
pub mod hash;
pub mod tensors;

pub use encoding::{DecodeLimits, decode, encode};
pub use error::{Error, Result};
pub use hash::{Hash, keccak256};
pub use tensors::{Tensor, TensorSet};
