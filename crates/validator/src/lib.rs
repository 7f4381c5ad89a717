//! Funetun's checks on other people's work.
//!
//! - [`proof`]: proof of training, the six checks over a job's chain of
//!   checkpoints.
pub mod proof;
