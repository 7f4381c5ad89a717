//! Service logic shared by the HTTP handlers (`api`), the driver and the
//! watcher: each function reads and writes through the [`crate::store`] and
//! checks chain facts through `funetun_chain::Ledger`; none of them knows
//! HTTP. Handlers extract a request, call one of these, and map the result.
//!
//! - [`compute`]: generic WebAssembly tasks, their replicas and quorums.
//! - [`jobs`]: the scheduler's view of a job's open round.
//! - [`tasks`]: leasing tasks, and the task a participant sees.
//! - [`updates`]: accepting a trainer's report of its on-chain submission.
//! - [`validations`]: handing updates to validators and accepting their votes.

pub mod compute;
pub mod jobs;
pub mod tasks;
pub mod updates;
pub mod validations;
