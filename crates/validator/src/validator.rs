//! The validator loop: ask the orchestrator for an update to check, check it
//! (replay or spot-check, per the job), vote `validateUpdate` on-chain,
//! report the vote.
//!
//! A validator that cannot fetch a blob it needs votes nothing: it logs why
//! and moves on (the update stays undecided for another validator, or a
//! challenger, to settle).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::JobManager::JobManagerErrors;
use funetun_core::api::{ValidationAssignment, ValidationReport, ValidationRequest};
use funetun_participant::{
    Backoff, DataConfig, Endpoints, JobChoice, JobPicker, Role, Stop, Workbench, Worker, pick_job,
    run_loop,
};
use serde::Serialize;
use tracing::{info, instrument, warn};

#[cfg(feature = "byzantine")]
pub use crate::attack::ValidatorAttack;
use crate::error::{Error, Result};
use crate::voter::{Checker, Voter};

/// How a validator runs.
#[derive(Clone, Debug)]
pub struct ValidatorConfig {
    /// Orchestrator, chain and contract.
    pub endpoints: Endpoints,
    /// The validator's key.
    pub key: PrivateKeySigner,
    /// Compute threads for replays.
    pub threads: usize,
    /// Where data sets are found.
    pub data: DataConfig,
    /// Checkpoint cache directory.
    pub cache_dir: PathBuf,
    /// Stake to hold (the contract minimum if lower).
    pub stake: U256,
    /// Check only this job's updates.
    pub job_id: Option<u64>,
    /// Exit once the job is over.
    pub exit_when_over: bool,
    /// Pause between polls when there is nothing to check.
    pub poll: Duration,
    /// Vote without checking (tests of the quorum).
    #[cfg(feature = "byzantine")]
    pub attack: Option<ValidatorAttack>,
}

impl ValidatorConfig {
    /// How this validator votes: by checking, or with `attack` (feature
    /// `byzantine`) without.
    fn voter(&self) -> Arc<dyn Voter> {
        #[cfg(feature = "byzantine")]
        if let Some(attack) = self.attack {
            return Arc::new(attack);
        }
        Arc::new(Checker)
    }
}

/// What a validator did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ValidatorReport {
    /// The validator's address.
    pub address: Address,
    /// Votes cast on-chain.
    pub votes: u64,
    /// Votes that said invalid.
    pub invalid_votes: u64,
    /// Assignments left without a vote (missing blob, already decided).
    pub skipped: u64,
    /// Training steps spent replaying.
    pub replay_steps: u64,
}

struct Validator {
    config: ValidatorConfig,
    bench: Workbench,
    voter: Arc<dyn Voter>,
    report: ValidatorReport,
    /// Without `--job`: the jobs asked in turn, those whose checks keep
    /// failing here set aside for a while.
    picker: JobPicker,
}

/// Runs a validator until `shutdown` completes or (with `exit_when_over`)
/// the job is over.
pub async fn run(
    config: ValidatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<ValidatorReport> {
    let stop = Stop::on(shutdown);
    let Some(bench) = Workbench::open_when_reachable(
        &config.endpoints,
        config.key.clone(),
        config.threads,
        config.data.clone(),
        &config.cache_dir,
        &stop,
    )
    .await?
    else {
        return Ok(ValidatorReport::default());
    };
    if let Some(job) = config.job_id {
        bench.preload(job);
    }
    let mut v = Validator {
        voter: config.voter(),
        report: ValidatorReport {
            address: bench.address(),
            ..Default::default()
        },
        bench,
        config,
        picker: JobPicker::default(),
    };
    let poll = v.config.poll;
    if run_loop(&mut v, &stop, poll).await? {
        info!(report = ?v.report, "validator stopped");
    }
    Ok(v.report)
}

impl Worker for Validator {
    type Error = Error;
    const ROLE: funetun_core::protocol::Role = funetun_core::protocol::Role::Validator;
    const STEP: &'static str = "check";

    fn bench(&self) -> &Workbench {
        &self.bench
    }

    fn registration(&self) -> Option<(Role, U256)> {
        Some((Role::Validator, self.config.stake))
    }

    async fn step(&mut self) -> Result<Option<bool>> {
        if self.config.job_id.is_none() {
            return self.step_any_job().await;
        }
        let job_id = match pick_job(&self.bench.me.client, self.config.job_id).await? {
            JobChoice::Work(job) => Some(job.job_id),
            JobChoice::Over(_) if self.config.exit_when_over => {
                // Votes may still be owed on the last round's updates.
                if self.next().await?.is_none() {
                    return Ok(None);
                }
                self.config.job_id
            }
            _ if self.config.job_id.is_some() => return Ok(Some(false)),
            _ => None,
        };
        let request = ValidationRequest {
            job_id,
            platform: Some(self.bench.platform.clone()),
        };
        let Some(assignment) = self.bench.me.client.next_validation(&request).await? else {
            return Ok(Some(false));
        };
        self.check_and_vote(&assignment).await?;
        Ok(Some(true))
    }

    fn is_transient(error: &Error) -> bool {
        error.is_transient()
    }
}

impl Validator {
    /// One check on whichever job has one, asking the active jobs in turn
    /// (round-robin from the one after the last checked), so an old job
    /// cannot starve a newer one; a job whose updates this machine cannot
    /// check is set aside for a while, with the reason logged.
    async fn step_any_job(&mut self) -> Result<Option<bool>> {
        let jobs = self.bench.me.client.jobs().await?;
        let order = self.picker.rotation(jobs, std::time::Instant::now());
        for job in order {
            let request = ValidationRequest {
                job_id: Some(job.job_id),
                platform: Some(self.bench.platform.clone()),
            };
            let Some(assignment) = self.bench.me.client.next_validation(&request).await? else {
                continue;
            };
            self.picker.picked(job.job_id);
            match self.check_and_vote(&assignment).await? {
                None => self.picker.succeeded(job.job_id),
                Some(why) => self
                    .picker
                    .failed(job.job_id, &why, std::time::Instant::now()),
            }
            return Ok(Some(true));
        }
        Ok(Some(false))
    }

    async fn next(&self) -> Result<Option<ValidationAssignment>> {
        let request = ValidationRequest {
            job_id: self.config.job_id,
            platform: Some(self.bench.platform.clone()),
        };
        Ok(self.bench.me.client.next_validation(&request).await?)
    }

    /// Checks the assignment and votes; `Some(why)` when this machine could
    /// not check it (nothing voted).
    #[instrument(skip_all, fields(job = a.job_id, round = a.task.round, trainer = %a.trainer))]
    async fn check_and_vote(&mut self, a: &ValidationAssignment) -> Result<Option<String>> {
        let voter = self.voter.clone();
        let checked = voter.judge(&self.bench, a).await;
        let verdict = match checked {
            Ok(v) => v,
            Err(e) if !e.is_transient() => {
                // Nothing to vote on with confidence: say why, vote nothing.
                warn!(index = %a.update_index, error = %e, "cannot check this update; not voting");
                self.report.skipped += 1;
                return Ok(Some(e.to_string()));
            }
            Err(e) => return Err(e),
        };
        self.report.replay_steps += verdict.steps;
        let job = U256::from(a.job_id);
        let tx_hash = match self
            .bench
            .me
            .ledger
            .validate_update(job, a.update_index, verdict.valid)
            .await
        {
            Ok(outcome) => outcome.tx_hash,
            Err(e) => match e.contract_error() {
                Some(JobManagerErrors::AlreadyDecided(_) | JobManagerErrors::AlreadyVoted(_)) => {
                    info!(index = %a.update_index, "already settled: {e}");
                    self.report.skipped += 1;
                    return Ok(None);
                }
                _ => return Err(e.into()),
            },
        };
        self.report.votes += 1;
        if !verdict.valid {
            self.report.invalid_votes += 1;
        }
        info!(valid = verdict.valid, tx = %tx_hash, detail = %verdict.detail, "voted");
        let report = ValidationReport {
            job_id: a.job_id,
            update_index: a.update_index,
            valid: verdict.valid,
            tx_hash,
            detail: verdict.detail,
        };
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match self.bench.me.client.report_validation(&report).await {
                Ok(_) => return Ok(None),
                Err(e) if e.is_transient() && backoff.failures() < 8 => backoff.wait(&e).await,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
