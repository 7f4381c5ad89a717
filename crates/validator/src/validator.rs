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
use funetun_core::api::{CheckReason, ValidationAssignment, ValidationReport, ValidationRequest};
use funetun_ml::Compute;
use funetun_ml::platform::platform_class;
use funetun_trainer::session::{
    Backoff, Endpoints, JobChoice, Participant, Role, Stop, pace, pick_job, register_until_ready,
};
use funetun_trainer::work::{BlobCache, DataConfig, Datasets, task_spec};
use serde::Serialize;
use tracing::{info, instrument, warn};

use crate::check::{Verdict, replay, spot_check};
use crate::error::{Error, Result};

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
    pub attack: Option<ValidatorAttack>,
}

/// How a dishonest validator votes: without checking anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidatorAttack {
    /// Every update valid.
    AlwaysValid,
    /// Every update invalid.
    AlwaysInvalid,
    /// A coin flip per update.
    Random,
}

impl std::str::FromStr for ValidatorAttack {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "always-valid" => Ok(Self::AlwaysValid),
            "always-invalid" => Ok(Self::AlwaysInvalid),
            "random" => Ok(Self::Random),
            _ => Err(format!(
                "unknown validator attack `{s}`; use always-valid, always-invalid or random"
            )),
        }
    }
}

impl std::fmt::Display for ValidatorAttack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::AlwaysValid => "always-valid",
            Self::AlwaysInvalid => "always-invalid",
            Self::Random => "random",
        })
    }
}

impl ValidatorAttack {
    /// The vote on update `index` (the coin of `random` is keccak256 of
    /// the validator and the index, so a rerun votes the same).
    pub fn vote(self, validator: Address, index: U256) -> bool {
        match self {
            Self::AlwaysValid => true,
            Self::AlwaysInvalid => false,
            Self::Random => {
                let mut msg = validator.to_vec();
                msg.extend_from_slice(&index.to_be_bytes::<32>());
                funetun_core::keccak256(&msg)[0] & 1 == 1
            }
        }
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
    me: Participant,
    datasets: Datasets,
    blobs: BlobCache,
    compute: Arc<Compute>,
    platform: String,
    report: ValidatorReport,
}

/// Runs a validator until `shutdown` completes or (with `exit_when_over`)
/// the job is over.
pub async fn run(
    config: ValidatorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<ValidatorReport> {
    let stop = Stop::on(shutdown);
    let me = Participant::connect(&config.endpoints, config.key.clone()).await?;
    let mut v = Validator {
        blobs: BlobCache::new(config.cache_dir.join("blobs")),
        datasets: Datasets::new(config.data.clone()),
        compute: Arc::new(Compute::new(config.threads)?),
        platform: platform_class(),
        report: ValidatorReport {
            address: me.address(),
            ..Default::default()
        },
        me,
        config,
    };
    v.run(&stop).await?;
    Ok(v.report)
}

impl Validator {
    async fn run(&mut self, stop: &Stop) -> Result<()> {
        if !register_until_ready(&self.me.ledger, Role::Validator, self.config.stake, stop).await? {
            return Ok(());
        }
        info!(address = %self.report.address, "validator ready");
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        while !stop.is_raised() {
            let outcome = self.step().await;
            if !pace(
                outcome,
                Error::is_transient,
                &mut backoff,
                stop,
                self.config.poll,
                "check",
            )
            .await
            {
                break;
            }
        }
        info!(report = ?self.report, "validator stopped");
        Ok(())
    }

    async fn step(&mut self) -> Result<Option<bool>> {
        let job_id = match pick_job(&self.me.client, self.config.job_id).await? {
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
            platform: Some(self.platform.clone()),
        };
        let Some(assignment) = self.me.client.next_validation(&request).await? else {
            return Ok(Some(false));
        };
        self.check_and_vote(&assignment).await?;
        Ok(Some(true))
    }

    async fn next(&self) -> Result<Option<ValidationAssignment>> {
        let request = ValidationRequest {
            job_id: self.config.job_id,
            platform: Some(self.platform.clone()),
        };
        Ok(self.me.client.next_validation(&request).await?)
    }

    #[instrument(skip_all, fields(job = a.job_id, round = a.task.round, trainer = %a.trainer))]
    async fn check_and_vote(&mut self, a: &ValidationAssignment) -> Result<()> {
        let checked = match self.config.attack {
            Some(attack) => Ok(Verdict {
                valid: attack.vote(self.report.address, a.update_index),
                detail: format!("not checked ({attack})"),
                steps: 0,
            }),
            None => self.check(a).await,
        };
        let verdict = match checked {
            Ok(v) => v,
            Err(e) if !e.is_transient() => {
                // Nothing to vote on with confidence: say why, vote nothing.
                warn!(index = %a.update_index, error = %e, "cannot check this update; not voting");
                self.report.skipped += 1;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.report.replay_steps += verdict.steps;
        let job = U256::from(a.job_id);
        let tx_hash = match self
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
                    return Ok(());
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
            match self.me.client.report_validation(&report).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_transient() && backoff.failures() < 8 => backoff.wait(&e).await,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn check(&self, a: &ValidationAssignment) -> Result<Verdict> {
        let spec = task_spec(&a.task)?;
        let model = spec.model;
        if a.reason == CheckReason::KnownHash
            && let Some(earlier) = a.duplicate_of
            && earlier != a.update_index
            && self
                .me
                .ledger
                .matches_hash(U256::from(a.job_id), earlier, a.update_hash)
                .await?
        {
            return Ok(Verdict {
                valid: false,
                detail: format!(
                    "hash {} was already committed by update {earlier:#x} for another task (copied or stale)",
                    a.update_hash
                ),
                steps: 0,
            });
        }
        // The delta must be available and well-formed: a committed hash
        // whose delta was never stored (or does not decode) is invalid.
        match self
            .blobs
            .tensors(&self.me.client, a.update_hash, model)
            .await
        {
            Ok(_) => {}
            Err(funetun_trainer::Error::Client(e)) if e.code() == Some("unknown_blob") => {
                return Ok(Verdict {
                    valid: false,
                    detail: format!("delta {} is not available", a.update_hash),
                    steps: 0,
                });
            }
            Err(funetun_trainer::Error::Blob { source, .. }) => {
                return Ok(Verdict {
                    valid: false,
                    detail: format!(
                        "delta {} is not a valid tensor file: {source}",
                        a.update_hash
                    ),
                    steps: 0,
                });
            }
            Err(e) => return Err(e.into()),
        }
        let data = self.datasets.get(&a.task.dataset).await?;
        let base = self
            .blobs
            .tensors(&self.me.client, a.task.base_hash, model)
            .await?;
        let fetch_delta = || async {
            Ok::<_, Error>(
                self.blobs
                    .tensors(&self.me.client, a.update_hash, model)
                    .await?,
            )
        };
        if a.mode == funetun_core::protocol::ValidationMode::SpotCheck {
            let delta = fetch_delta().await?;
            spot_check(a, base, delta, data, spec, self.compute.clone()).await
        } else {
            replay(a, base, data, spec, self.compute.clone(), fetch_delta).await
        }
    }
}
