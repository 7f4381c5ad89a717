//! The trainer role, and the plumbing every participant process shares.
//!
//! - [`session`]: a participant's connection to the chain and the
//!   orchestrator — registration with a stake, job selection, retry with
//!   backoff.
//! - [`work`]: turning an API [`Task`](funetun_core::api::Task) into a
//!   deterministic training run — the data set cache, the checkpoint cache
//!   keyed by hash, and [`work::compute_delta`], which validators call to
//!   replay a task bit for bit.
//! - [`trainer`]: the trainer loop: lease, train, upload, `submitUpdate`,
//!   report; resumable after a crash without a second submission.
//! - [`error`]: the crate's error type.

pub mod attack;
pub mod error;
pub mod session;
pub mod trainer;
pub mod work;

pub use error::{Error, Result};
pub use trainer::{TrainerConfig, TrainerReport, run};
