//! What Funetun's participant processes share. The trainer
//! (`funetun-trainer`), the validator and the challenger
//! (`funetun-validator`) are siblings built on this crate; none depends on
//! another role.
//!
//! - [`session`]: a participant's connection to the chain and the
//!   orchestrator — endpoints, registration with a stake, job choice.
//! - [`pacing`]: exponential backoff through outages, the idle pause, and
//!   the stop signal checked between units of work.
//! - [`worker`]: the participant loop, once for every role — a [`Worker`]
//!   with its [`Workbench`], driven by [`run_loop`].
//! - [`blobs`]: the content-addressed blob cache (checkpoints and deltas by
//!   hash, checked, atomic, write-once).
//! - [`data`]: data sets loaded once per process.
//! - [`compute`]: [`compute_delta`], a task's training run off the async
//!   runtime — what a trainer submits and a validator replays, bit for bit.
//! - [`error`]: the crate's error type.
//!
//! Reading a task as a training run and decoding a model's bytes are
//! `funetun_ml`'s ([`funetun_ml::task_spec`], [`funetun_ml::Architecture::decode`]).

pub mod blobs;
pub mod compute;
pub mod data;
pub mod error;
pub mod pacing;
pub mod session;
pub mod worker;

pub use blobs::BlobCache;
pub use compute::{Computed, compute_delta};
pub use data::{DataConfig, Datasets};
pub use error::{Error, Result};
pub use pacing::{Backoff, Stop, pace};
pub use session::{
    Endpoints, JobChoice, JobPicker, Participant, Role, ensure_registered, pick_job,
};
pub use worker::{Workbench, Worker, run_loop};
