//! The trainer role: lease a task, train, upload the delta, commit its hash
//! on-chain, report. The plumbing every participant shares (connection,
//! staking, pacing, blob cache, data sets, `compute_delta`) is
//! `funetun_participant`'s; this crate is the trainer's own part.
//!
//! - [`trainer`]: the trainer loop, a `funetun_participant::Worker`:
//!   lease, produce, upload, `submitUpdate`, journal, report; resumable
//!   after a crash without a second submission.
//! - [`source`]: the [`DeltaSource`] seam — where a delta comes from —
//!   and [`Honest`], which trains the task as given.
//! - [`journal`]: the fsynced journal of submissions that makes restarts
//!   safe.
//! - `attack` (feature `byzantine`): the attack modes and `Forger`, the
//!   delta source that forges every update (tests and demos of the
//!   defences).
//! - [`error`]: the crate's error type.

#[cfg(feature = "byzantine")]
pub mod attack;
pub mod error;
pub mod journal;
pub mod source;
pub mod trainer;

pub use error::{Error, Result};
pub use source::{DeltaSource, Honest};
pub use trainer::{TrainerConfig, TrainerReport, run};
