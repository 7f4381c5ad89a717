//! A participant's connection to the chain and the orchestrator: the pieces
//! the trainer, validator and challenger loops share.

use std::time::Duration;

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::bindings::roles;
use funetun_chain::{Ledger, LedgerConfig, TxOutcome};
use funetun_client::Client;
use funetun_core::api::JobSummary;
use tracing::{info, warn};

use crate::error::Result;

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

/// Paces a participant loop after one step whose outcome is `Some(true)`
/// (did work), `Some(false)` (nothing to do: sleep `poll`), `None` (done) or
/// an error: transient ones back off, others are logged as `what failed`
/// and paused on. Returns false when the loop should end.
pub async fn pace<E: std::fmt::Display>(
    outcome: std::result::Result<Option<bool>, E>,
    is_transient: impl Fn(&E) -> bool,
    backoff: &mut Backoff,
    stop: &Stop,
    poll: Duration,
    what: &str,
) -> bool {
    match outcome {
        Ok(Some(true)) => backoff.reset(),
        Ok(Some(false)) => {
            backoff.reset();
            stop.sleep(poll).await;
        }
        Ok(None) => return false,
        Err(e) if is_transient(&e) => backoff.wait(&e).await,
        Err(e) => {
            // A refused request or a bad task: say why, pause, go on.
            warn!(error = %e, "{what} failed");
            if stop.sleep(poll.max(Duration::from_secs(1))).await {
                return false;
            }
        }
    }
    true
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

/// Exponential backoff between retries of transient failures.
#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
    failures: u32,
}

impl Backoff {
    /// Starts at `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
            failures: 0,
        }
    }

    /// Forgets past failures after a success.
    pub fn reset(&mut self) {
        self.next = self.first;
        self.failures = 0;
    }

    /// Logs `what` and sleeps for the current pause, then doubles it.
    pub async fn wait(&mut self, what: &dyn std::fmt::Display) {
        self.failures += 1;
        warn!(
            retry_in_ms = self.next.as_millis() as u64,
            failures = self.failures,
            "{what}"
        );
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let start = tokio::time::Instant::now();
        b.wait(&"x").await;
        b.wait(&"x").await;
        b.wait(&"x").await;
        b.wait(&"x").await;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(100 + 200 + 350 + 350)
        );
        assert_eq!(b.failures(), 4);
        b.reset();
        let t = tokio::time::Instant::now();
        b.wait(&"x").await;
        assert_eq!(t.elapsed(), Duration::from_millis(100));
    }
}

/// A stop signal checked between units of work, so a task in flight (a
/// submission and its report) is never cut in half.
#[derive(Clone, Default)]
pub struct Stop {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    notify: std::sync::Arc<tokio::sync::Notify>,
}

impl Stop {
    /// A signal that is raised when `shutdown` completes.
    pub fn on(shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        let stop = Self::default();
        let raised = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            raised.raise();
        });
        stop
    }

    /// Raises the signal.
    pub fn raise(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// True once raised.
    pub fn is_raised(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sleeps for `d` or until the signal is raised; true if raised.
    pub async fn sleep(&self, d: Duration) -> bool {
        let notified = self.notify.notified();
        if self.is_raised() {
            return true;
        }
        tokio::select! {
            _ = notified => true,
            _ = tokio::time::sleep(d) => self.is_raised(),
        }
    }
}
