//! Funetun's checks on other people's work: the validator and the
//! challenger roles, built on `funetun_participant` (siblings of the
//! trainer, not users of it), and proof of training.
//!
//! - [`check`]: checking one update — exact replay with a rounding
//!   tolerance across platforms, or a spot-check of the reported loss.
//! - [`voter`]: the [`Voter`] seam — how a validator reaches its vote —
//!   and [`Checker`], the honest voter that runs the checks.
//! - [`validator`]: the validator loop, a `funetun_participant::Worker`:
//!   ask, judge, vote on-chain, report.
//! - [`challenger`]: the challenger loop: replay public updates during
//!   their challenge window, challenge mismatches with a bond.
//! - [`proof`]: proof of training, the six checks over a job's chain of
//!   checkpoints.
//! - `attack` (feature `byzantine`): `ValidatorAttack`, voters that vote
//!   without checking (tests of the quorum).
//! - [`error`]: the crate's error type.

#[cfg(feature = "byzantine")]
pub mod attack;
pub mod challenger;
pub mod check;
pub mod error;
pub mod proof;
pub mod validator;
pub mod voter;

pub use error::{Error, Result};
pub use validator::{ValidatorConfig, ValidatorReport, run};
pub use voter::{Checker, Voter};
