//! A participant's connection to the chain and the orchestrator: endpoints,
//! staking for a role, and which job to work on.

use std::time::Duration;

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::bindings::roles;
use funetun_chain::{Ledger, LedgerConfig, TxOutcome};
use funetun_client::Client;
use funetun_core::api::JobSummary;
use tracing::info;

use crate::error::Result;
use crate::pacing::{Backoff, Stop};

/// Where a participant connects and with which key.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// Base URL of the orchestrator, e.g. `http://127.0.0.1:8080`.
    pub orchestrator: String,
    /// Ethereum JSON-RPC URL.
    pub rpc_url: String,
    /// Address of the `JobManager` contract.
    pub contract: Address,
    /// Blocks a transaction must be under before it counts (1 = included).
    pub confirmations: u64,
}

/// A participant: its signed API client and its ledger.
pub struct Participant {
    /// Signed client of the orchestrator.
    pub client: Client,
    /// The contract, with this participant's key.
    pub ledger: Ledger,
}

impl Participant {
    /// Connects both sides. Fails when the RPC URL is unusable or no contract
    /// is deployed at the address; the orchestrator is not contacted yet.
    pub async fn connect(endpoints: &Endpoints, key: PrivateKeySigner) -> Result<Self> {
        let config = LedgerConfig {
            confirmations: endpoints.confirmations.max(1),
            ..LedgerConfig::default()
        };
        let ledger =
            Ledger::connect(&endpoints.rpc_url, endpoints.contract, key.clone(), config).await?;
        Ok(Self {
            client: Client::new(&endpoints.orchestrator, Some(key)),
            ledger,
        })
    }

    /// This participant's address.
    pub fn address(&self) -> Address {
        self.ledger.address()
    }
}

/// An on-chain role a participant stakes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Submits updates.
    Trainer,
    /// Votes on updates.
    Validator,
}

/// Registers `role` unless the account already holds it with at least the
/// contract's minimum stake; tops the stake up to `max(stake, minimum)`.
/// Returns the registration transaction when one was sent.
pub async fn ensure_registered(
    ledger: &Ledger,
    role: Role,
    stake: U256,
) -> Result<Option<TxOutcome>> {
    let account = ledger.account(ledger.address()).await?;
    let minimum = ledger.params().await?.min_stake;
    let bit = match role {
        Role::Trainer => roles::TRAINER,
        Role::Validator => roles::VALIDATOR,
    };
    let target = stake.max(minimum);
    if account.roles & bit != 0 && account.stake >= target {
        return Ok(None);
    }
    let top_up = target.saturating_sub(account.stake);
    let outcome = match role {
        Role::Trainer => ledger.register_trainer(top_up).await?,
        Role::Validator => ledger.register_validator(top_up).await?,
    };
    info!(address = %ledger.address(), ?role, stake = %target, tx = %outcome.tx_hash, "registered");
    Ok(Some(outcome))
}

/// Registers `role` (see [`ensure_registered`]), retrying through chain
/// outages. Returns false when `stop` was raised first.
pub async fn register_until_ready(
    ledger: &Ledger,
    role: Role,
    stake: U256,
    stop: &Stop,
) -> Result<bool> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match ensure_registered(ledger, role, stake).await {
            Ok(_) => return Ok(true),
            Err(e) if e.is_transient() => backoff.wait(&e).await,
            Err(e) => return Err(e),
        }
        if stop.is_raised() {
            return Ok(false);
        }
    }
}

/// What the participant should do about jobs right now.
#[derive(Clone, Debug, PartialEq)]
pub enum JobChoice {
    /// Work on this job.
    Work(JobSummary),
    /// The wanted job is over (finished, closed or invalid).
    Over(JobSummary),
    /// Nothing to work on yet.
    Wait,
}

/// True when a job takes no more work.
pub fn job_is_over(job: &JobSummary) -> bool {
    job.status.is_over()
}

/// Picks `wanted`, or else the oldest active job the orchestrator leads.
pub async fn pick_job(client: &Client, wanted: Option<u64>) -> Result<JobChoice> {
    match wanted {
        Some(id) => match client.job(id).await {
            Ok(job) if job_is_over(&job.summary) => Ok(JobChoice::Over(job.summary)),
            Ok(job) => Ok(JobChoice::Work(job.summary)),
            // The orchestrator has not seen the job's creation yet.
            Err(e) if e.code() == Some("unknown_job") => Ok(JobChoice::Wait),
            // It has, but holds no usable spec: still fetching it (pending),
            // or it refused it (invalid), which the job list tells apart.
            Err(e) if e.code() == Some("spec_unavailable") => Ok(client
                .jobs()
                .await?
                .into_iter()
                .find(|j| j.job_id == id && job_is_over(j))
                .map(JobChoice::Over)
                .unwrap_or(JobChoice::Wait)),
            Err(e) => Err(e.into()),
        },
        None => {
            let mut jobs = client.jobs().await?;
            jobs.sort_by_key(|j| j.job_id);
            Ok(jobs
                .into_iter()
                .find(|j| !job_is_over(j))
                .map(JobChoice::Work)
                .unwrap_or(JobChoice::Wait))
        }
    }
}
