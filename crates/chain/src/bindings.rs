//! Typed bindings of the `JobManager` contract, generated from the committed artifact
//! `contracts/out/JobManager.json` (its ABI, creation and runtime bytecode).
//!
//! `JobManager::JobManagerErrors` holds every custom error, `JobManager::JobManagerEvents`
//! every event, and `JobManager::BYTECODE` the creation code the dev chain and `deploy` use.

#![allow(missing_docs, clippy::too_many_arguments)]

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    JobManager,
    "../../contracts/out/JobManager.json"
);

/// The committed artifact, as text (ABI, bytecode, compiler settings, source).
pub const ARTIFACT_JSON: &str = include_str!("../../../contracts/out/JobManager.json");

/// Job status values (`JobView::status`).
pub mod job_status {
    /// No such job.
    pub const NONE: u8 = 0;
    /// Accepts updates.
    pub const ACTIVE: u8 = 1;
    /// Accepts no new updates.
    pub const CLOSED: u8 = 2;
}

/// Update status values (`UpdateView::status`).
pub mod update_status {
    /// No such update.
    pub const NONE: u8 = 0;
    /// Submitted, awaiting votes or the end of its window.
    pub const PENDING: u8 = 1;
    /// Challenged; only a quorum verdict decides it.
    pub const CHALLENGED: u8 = 2;
    /// Accepted and paid.
    pub const ACCEPTED: u8 = 3;
    /// Rejected; the trainer was slashed.
    pub const REJECTED: u8 = 4;
    /// Accepted with the leader's bonus.
    pub const BONUSED: u8 = 5;
    /// No quorum by the decision timeout after a challenge or an objection:
    /// neither paid nor slashed.
    pub const VOID: u8 = 6;
}

/// Role bits (`AccountView::roles`).
pub mod roles {
    /// Trainer.
    pub const TRAINER: u8 = 1;
    /// Validator.
    pub const VALIDATOR: u8 = 2;
}

/// The update index of `trainer`'s update on `shard` in `round`:
/// `round << 192 | shard << 160 | trainer`.
pub fn update_index(
    round: u64,
    shard: u32,
    trainer: alloy::primitives::Address,
) -> alloy::primitives::U256 {
    (alloy::primitives::U256::from(round) << 192)
        | (alloy::primitives::U256::from(shard) << 160)
        | alloy::primitives::U256::from_be_slice(trainer.as_slice())
}

/// The parts of an update index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexParts {
    /// The round it was submitted in.
    pub round: u64,
    /// The shard it was trained on.
    pub shard: u32,
    /// Its trainer.
    pub trainer: alloy::primitives::Address,
}

/// Splits an update index into its round, shard and trainer.
pub fn split_update_index(index: alloy::primitives::U256) -> IndexParts {
    let bytes = index.to_be_bytes::<32>();
    IndexParts {
        round: (index >> 192usize).saturating_to(),
        shard: ((index >> 160usize) & alloy::primitives::U256::from(u32::MAX)).saturating_to(),
        trainer: alloy::primitives::Address::from_slice(&bytes[12..]),
    }
}
