//! The contract's constructor parameters and its deployment.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use serde::Serialize;

use crate::error::Result;
use crate::ledger::{Ledger, LedgerConfig};

/// Constructor parameters of `JobManager`, fixed for the contract's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractParams {
    /// Smallest stake that lets an account submit or vote, in wei.
    pub min_stake: U256,
    /// Seconds between `requestLeave()` and the stake unlocking.
    pub leave_cooldown: u64,
    /// Exact bond of a challenge, in wei.
    pub challenge_bond: U256,
    /// Share of a trainer's stake slashed by a rejection, in basis points (1..=10000).
    pub trainer_slash_bps: u16,
    /// Share of a slash paid to the validators who voted invalid, in basis points.
    pub validator_share_bps: u16,
    /// Share of a validator's stake lost by voting against the verdict, in basis points.
    pub validator_penalty_bps: u16,
    /// Seconds after an update's window closes during which only the job's
    /// leader may finalize it; also the time a challenged update has to reach
    /// a quorum before it is void.
    pub decision_timeout: u64,
}

impl Default for ContractParams {
    fn default() -> Self {
        let milli_eth = U256::from(1_000_000_000_000_000u64);
        ContractParams {
            min_stake: milli_eth * U256::from(10u64),
            leave_cooldown: 3_600,
            challenge_bond: milli_eth * U256::from(10u64),
            trainer_slash_bps: 5_000,
            validator_share_bps: 2_000,
            validator_penalty_bps: 1_000,
            decision_timeout: 3_600,
        }
    }
}

/// Where a contract was deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// The contract's address.
    pub address: Address,
    /// The deploying transaction.
    pub tx_hash: B256,
    /// Gas it used.
    pub gas_used: u64,
    /// Block it landed in.
    pub block_number: u64,
}

/// Deploys `JobManager` from `signer` over `provider` and returns a [`Ledger`] bound to it.
pub async fn deploy_job_manager<P: Provider + Clone>(
    provider: P,
    signer: PrivateKeySigner,
    params: &ContractParams,
    config: LedgerConfig,
) -> Result<(Ledger<P>, Deployment)> {
    Ledger::deploy(provider, signer, params, config).await
}
