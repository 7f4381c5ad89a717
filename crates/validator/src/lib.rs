//! Funetun's checks on other people's work.
//!
//! - [`check`]: checking one update — exact replay with a rounding
//!   tolerance across platforms, or a spot-check of the reported loss.
//! - [`validator`]: the validator loop: ask, check, vote on-chain, report.
//! - [`proof`]: proof of training, the six checks over a job's chain of
//!   checkpoints.
//! - [`error`]: the crate's error type.

pub mod challenger;
pub mod check;
pub mod error;
pub mod proof;
pub mod validator;

pub use error::{Error, Result};
pub use validator::{ValidatorConfig, ValidatorReport, run};
