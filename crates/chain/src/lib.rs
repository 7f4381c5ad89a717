//! Funetun's chain crate: everything that touches the `JobManager` contract.
//!
//! - [`bindings`]: typed `sol!` bindings generated from the committed artifact
//!   `contracts/out/JobManager.json` (ABI, bytecode, custom errors, events).
//! - [`ledger`]: [`Ledger`], a client over any alloy provider: typed calls, revert
//!   decoding into [`bindings::JobManager::JobManagerErrors`], local nonces, retries with
//!   backoff that never resend a transaction without checking whether it landed, and a
//!   confirmation depth; [`Ledger::verify_submission`] and [`Ledger::verify_vote`] check
//!   what a named transaction proves.
//! - [`accounts`]: a job's books from its events and view: paid, slashed,
//!   reserved, per-account tallies and the conservation check.
//! - [`events`]: typed contract events, range queries and a polling stream from a block.
//! - [`deploy`]: the contract's constructor parameters and deployment.
//! - [`devchain`]: the embedded dev chain: the committed bytecode on revm behind Ethereum
//!   JSON-RPC on loopback, with state kept in a data directory.
//! - [`keys`]: the standard test mnemonic's dev accounts and fresh keys.
//! - [`bench`]: the measurements behind `funetun bench gas` and `funetun bench chain`.
//! - [`error`]: [`ChainError`] and the crate's [`Result`]; [`explain`]: the
//!   contract's custom errors in words, with the next step.

pub mod accounts;
pub mod bench;
pub mod bindings;
pub mod deploy;
pub mod devchain;
pub mod error;
pub mod events;
pub mod explain;
pub mod keys;
pub mod ledger;

pub use accounts::{AccountTally, JobAccounts};
pub use bindings::JobManager;
pub use deploy::{ContractParams, Deployment, deploy_job_manager};
pub use devchain::{DevChain, DevChainConfig};
pub use error::{ChainError, Result};
pub use events::{LedgerEvent, LoggedEvent};
pub use keys::{DEV_MNEMONIC, DevAccount, dev_accounts};
pub use ledger::{Ledger, LedgerConfig, SubmissionCheck, TxOutcome, VoteCheck};
