//! A participant's connection to the chain and the orchestrator: endpoints,
//! staking for a role, and which job to work on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::bindings::roles;
use funetun_chain::{Ledger, LedgerConfig, TxOutcome};
use funetun_client::Client;
use funetun_core::api::JobSummary;
use tracing::{info, warn};

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

/// Longest a job that keeps failing for a participant is set aside.
pub const MAX_JOB_PAUSE: Duration = Duration::from_secs(300);

/// Chooses a trainer's next job: one wanted job, or else the active jobs in
/// turn (round-robin by id, so an old job cannot starve a newer one), with
/// a job whose work keeps failing here set aside for a while — 2, 4, 8 …
/// seconds after consecutive failures, at most [`MAX_JOB_PAUSE`] — so one
/// bad job does not stall the others. The reason is logged each time.
#[derive(Debug, Default)]
pub struct JobPicker {
    last: Option<u64>,
    paused: HashMap<u64, Paused>,
    refused: std::collections::BTreeSet<u64>,
}

#[derive(Debug)]
struct Paused {
    failures: u32,
    until: Instant,
}

impl JobPicker {
    /// The job to work on now (see [`pick_job`] for a wanted job).
    pub async fn pick(&mut self, client: &Client, wanted: Option<u64>) -> Result<JobChoice> {
        if wanted.is_some() {
            return pick_job(client, wanted).await;
        }
        let jobs = client.jobs().await?;
        Ok(self.choose(jobs, Instant::now()))
    }

    /// The next active job after the last one picked, skipping paused ones.
    pub fn choose(&mut self, jobs: Vec<JobSummary>, now: Instant) -> JobChoice {
        match self.rotation(jobs, now).into_iter().next() {
            Some(job) => {
                self.last = Some(job.job_id);
                JobChoice::Work(job)
            }
            None => JobChoice::Wait,
        }
    }

    /// The active jobs not paused or refused, in the order to try them:
    /// starting after the last one picked, round-robin by id. A validator
    /// asks each in turn for a check and marks the one that had work with
    /// [`JobPicker::picked`].
    pub fn rotation(&self, mut jobs: Vec<JobSummary>, now: Instant) -> Vec<JobSummary> {
        jobs.retain(|j| !job_is_over(j) && !self.refused.contains(&j.job_id));
        jobs.sort_by_key(|j| j.job_id);
        jobs.retain(|j| self.paused.get(&j.job_id).is_none_or(|p| p.until <= now));
        let next = match self.last {
            Some(last) => jobs.iter().position(|j| j.job_id > last).unwrap_or(0),
            None => 0,
        };
        jobs.rotate_left(next);
        jobs
    }

    /// Records that `job` was the one worked on, so the next rotation
    /// starts after it.
    pub fn picked(&mut self, job: u64) {
        self.last = Some(job);
    }

    /// Records that work on `job` failed (`why`), setting it aside.
    pub fn failed(&mut self, job: u64, why: &dyn std::fmt::Display, now: Instant) {
        let p = self.paused.entry(job).or_insert(Paused {
            failures: 0,
            until: now,
        });
        p.failures += 1;
        let pause = Duration::from_secs(1u64 << p.failures.min(9)).min(MAX_JOB_PAUSE);
        p.until = now + pause;
        warn!(
            job,
            failures = p.failures,
            pause_secs = pause.as_secs(),
            "work on job {job} failed here ({why}); trying other jobs first"
        );
    }

    /// Records that work on `job` succeeded: it is no longer set aside.
    pub fn succeeded(&mut self, job: u64) {
        self.paused.remove(&job);
    }

    /// Never picks `job` again in this process (the participant's own work
    /// on it was rejected).
    pub fn refuse(&mut self, job: u64) {
        self.refused.insert(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use funetun_core::protocol::JobStatus;

    fn job(id: u64, status: JobStatus) -> JobSummary {
        JobSummary {
            job_id: id,
            name: "j".into(),
            owner: Address::ZERO,
            leader: Address::ZERO,
            spec_hash: alloy_primitives::B256::ZERO,
            status,
            round: 0,
            rounds: 1,
            deposit_wei: U256::ZERO,
            paid_wei: U256::ZERO,
            slashed_wei: U256::ZERO,
            remaining_wei: U256::ZERO,
            latest_checkpoint: None,
            test_accuracy: None,
            created_at: 0,
        }
    }

    fn picked(c: JobChoice) -> Option<u64> {
        match c {
            JobChoice::Work(j) => Some(j.job_id),
            _ => None,
        }
    }

    #[test]
    fn jobs_are_taken_in_turn_and_a_failing_one_is_set_aside() {
        let jobs = || {
            vec![
                job(3, JobStatus::Active),
                job(1, JobStatus::Active),
                job(2, JobStatus::Finished),
            ]
        };
        let mut p = JobPicker::default();
        let t = Instant::now();
        // Round-robin over the active jobs, finished ones skipped.
        assert_eq!(picked(p.choose(jobs(), t)), Some(1));
        assert_eq!(picked(p.choose(jobs(), t)), Some(3));
        assert_eq!(picked(p.choose(jobs(), t)), Some(1));
        // Job 1 fails: job 3 only, until the pause ends.
        p.failed(1, &"no data", t);
        assert_eq!(picked(p.choose(jobs(), t)), Some(3));
        assert_eq!(picked(p.choose(jobs(), t)), Some(3));
        let later = t + Duration::from_secs(2);
        assert_eq!(picked(p.choose(jobs(), later)), Some(1));
        // Failing again doubles the pause; success clears it.
        p.failed(1, &"no data", later);
        assert_eq!(
            picked(p.choose(jobs(), later + Duration::from_secs(3))),
            Some(3)
        );
        p.succeeded(1);
        assert_eq!(picked(p.choose(jobs(), later)), Some(1));
        // With every job set aside there is nothing to do.
        p.failed(1, &"x", t);
        p.failed(3, &"x", t);
        assert_eq!(p.choose(jobs(), t), JobChoice::Wait);
    }

    #[test]
    fn a_rotation_starts_after_the_last_pick_and_leaves_out_refused_jobs() {
        let jobs = || {
            vec![
                job(4, JobStatus::Active),
                job(1, JobStatus::Active),
                job(2, JobStatus::Active),
                job(3, JobStatus::Closed),
            ]
        };
        let ids = |v: Vec<JobSummary>| v.into_iter().map(|j| j.job_id).collect::<Vec<_>>();
        let mut p = JobPicker::default();
        let t = Instant::now();
        assert_eq!(ids(p.rotation(jobs(), t)), vec![1, 2, 4]);
        p.picked(2);
        assert_eq!(ids(p.rotation(jobs(), t)), vec![4, 1, 2]);
        p.picked(4);
        assert_eq!(ids(p.rotation(jobs(), t)), vec![1, 2, 4]);
        p.failed(1, &"cannot replay", t);
        assert_eq!(ids(p.rotation(jobs(), t)), vec![2, 4]);
        p.refuse(2);
        assert_eq!(ids(p.rotation(jobs(), t)), vec![4]);
        assert_eq!(picked(p.choose(jobs(), t)), Some(4));
    }
}
