//! The challenger: an independent fraud-proofer. It needs no role and no
//! stake: it reads the job's updates from the orchestrator's public API,
//! replays a sample of those still inside their challenge window (the task
//! is public: `GET /v1/tasks/{id}`), and when a replay disagrees it calls
//! `challenge` with the contract's bond. A challenged update is decided only
//! by a validator quorum (the orchestrator sends it to validators at once);
//! a rejection pays the challenger its bond back plus the trainer's slashed
//! stake less the validators' share, an acceptance forfeits the bond to the
//! trainer.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use alloy_primitives::{Address, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::JobManager::JobManagerErrors;
use funetun_chain::bindings::update_status;
use funetun_core::api::{CheckReason, UpdateInfo, ValidationAssignment};
use funetun_ml::task_spec;
use funetun_participant::{
    DataConfig, Endpoints, JobChoice, Role, Stop, Workbench, Worker, pick_job, run_loop,
};
use serde::Serialize;
use tracing::{info, instrument, warn};

use crate::check::replay;
use crate::error::{Error, Result};

/// How a challenger runs.
#[derive(Clone, Debug)]
pub struct ChallengerConfig {
    /// Orchestrator, chain and contract.
    pub endpoints: Endpoints,
    /// The challenger's key (pays the bonds).
    pub key: PrivateKeySigner,
    /// Compute threads for replays.
    pub threads: usize,
    /// Where data sets are found.
    pub data: DataConfig,
    /// Checkpoint cache directory.
    pub cache_dir: PathBuf,
    /// Watch only this job.
    pub job_id: Option<u64>,
    /// Share of updates replayed, in [0, 1] (1: all).
    pub sample: f64,
    /// Exit once the job is over.
    pub exit_when_over: bool,
    /// Pause between polls.
    pub poll: Duration,
}

/// What a challenger did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChallengerReport {
    /// The challenger's address.
    pub address: Address,
    /// Updates replayed.
    pub replayed: u64,
    /// Challenges sent.
    pub challenges: u64,
    /// Updates whose window closed before the replay finished.
    pub too_late: u64,
    /// Training steps spent replaying.
    pub replay_steps: u64,
}

struct Challenger {
    config: ChallengerConfig,
    bench: Workbench,
    seen: BTreeSet<(u64, U256)>,
    report: ChallengerReport,
}

/// Runs a challenger until `shutdown` completes or (with `exit_when_over`)
/// the job is over.
pub async fn run(
    config: ChallengerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<ChallengerReport> {
    if !(0.0..=1.0).contains(&config.sample) {
        return Err(Error::Check(format!(
            "--sample {} is not a share in [0, 1]",
            config.sample
        )));
    }
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
        return Ok(ChallengerReport::default());
    };
    let mut c = Challenger {
        seen: BTreeSet::new(),
        report: ChallengerReport {
            address: bench.address(),
            ..Default::default()
        },
        bench,
        config,
    };
    info!(sample = c.config.sample, "challenger sampling");
    let poll = c.config.poll;
    run_loop(&mut c, &stop, poll).await?;
    info!(report = ?c.report, "challenger stopped");
    Ok(c.report)
}

impl Worker for Challenger {
    type Error = Error;
    const ROLE: funetun_core::protocol::Role = funetun_core::protocol::Role::Challenger;
    const STEP: &'static str = "challenge";

    fn bench(&self) -> &Workbench {
        &self.bench
    }

    /// A challenger holds no role and no stake; it pays bonds.
    fn registration(&self) -> Option<(Role, U256)> {
        None
    }

    async fn step(&mut self) -> Result<Option<bool>> {
        self.poll_updates().await
    }

    fn is_transient(error: &Error) -> bool {
        error.is_transient()
    }
}

/// Whether the challenger replays update `index` (a keccak draw of its own
/// address and the index, so trainers cannot tell in advance).
fn sampled(me: Address, job: u64, index: U256, share: f64) -> bool {
    if share >= 1.0 {
        return true;
    }
    let mut msg = me.to_vec();
    msg.extend_from_slice(&job.to_be_bytes());
    msg.extend_from_slice(&index.to_be_bytes::<32>());
    let h = funetun_core::keccak256(&msg);
    let u = (u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) >> 11) as f64
        / (1u64 << 53) as f64;
    u < share
}

impl Challenger {
    async fn poll_updates(&mut self) -> Result<Option<bool>> {
        let job = match pick_job(&self.bench.me.client, self.config.job_id).await? {
            JobChoice::Work(job) => job.job_id,
            JobChoice::Over(_) if self.config.exit_when_over => return Ok(None),
            _ => return Ok(Some(false)),
        };
        let updates = self.bench.me.client.updates(job).await?;
        let me = self.report.address;
        let fresh: Vec<UpdateInfo> = updates
            .into_iter()
            .filter(|u| {
                u.status == funetun_core::protocol::UpdateStatus::Pending
                    && !self.seen.contains(&(job, u.update_index))
            })
            .collect();
        if fresh.is_empty() {
            return Ok(Some(false));
        }
        for u in fresh {
            self.seen.insert((job, u.update_index));
            if u.trainer == me || !sampled(me, job, u.update_index, self.config.sample) {
                continue;
            }
            self.examine(&u).await?;
        }
        Ok(Some(true))
    }

    #[instrument(skip_all, fields(job = u.job_id, round = u.round, trainer = %u.trainer))]
    async fn examine(&mut self, u: &UpdateInfo) -> Result<()> {
        let task = self.bench.me.client.task(u.task_id).await?;
        let spec = task_spec(&task)?;
        let space = spec.space()?;
        let data = self.bench.dataset(&task.dataset).await?;
        let base = self.bench.start(&task, &spec).await?;
        let assignment = ValidationAssignment {
            job_id: u.job_id,
            update_index: u.update_index,
            trainer: u.trainer,
            task,
            update_hash: u.update_hash,
            mode: funetun_core::protocol::ValidationMode::Replay,
            loss_before: u.loss_before,
            loss_after: u.loss_after,
            tolerance: 0.0,
            reason: CheckReason::None,
            duplicate_of: None,
        };
        let blobs = self.bench.blobs.clone();
        let client = self.bench.me.client.clone();
        let hash = u.update_hash;
        let verdict = replay(
            &assignment,
            base,
            data,
            spec,
            self.bench.compute.clone(),
            || async move { Ok(blobs.tensors(&client, hash, &space).await?) },
        )
        .await;
        let verdict = match verdict {
            Ok(v) => v,
            // A delta that is missing or does not decode cannot be honest.
            Err(Error::Participant(e)) if e.malformed_blob().is_some() => crate::check::Verdict {
                valid: false,
                detail: format!("delta {hash} is malformed"),
                steps: 0,
            },
            Err(Error::Participant(e)) if e.is_missing_blob() => crate::check::Verdict {
                valid: false,
                detail: format!("delta {hash} is unavailable"),
                steps: 0,
            },
            Err(e) => return Err(e),
        };
        self.report.replayed += 1;
        self.report.replay_steps += verdict.steps;
        if verdict.valid {
            return Ok(());
        }
        let job = U256::from(u.job_id);
        let view = self.bench.me.ledger.update(job, u.update_index).await?;
        if view.status != update_status::PENDING {
            info!(
                status = view.status,
                "already under review or decided; no challenge"
            );
            return Ok(());
        }
        let bond = self.bench.me.ledger.params().await?.challenge_bond;
        match self
            .bench
            .me
            .ledger
            .challenge(job, u.update_index, bond)
            .await
        {
            Ok(outcome) => {
                self.report.challenges += 1;
                info!(index = %u.update_index, tx = %outcome.tx_hash, detail = %verdict.detail, "challenged");
            }
            Err(e) => match e.contract_error() {
                Some(JobManagerErrors::WindowClosed(_)) => {
                    self.report.too_late += 1;
                    warn!(index = %u.update_index, "the window closed before the replay finished");
                }
                Some(
                    JobManagerErrors::AlreadyChallenged(_) | JobManagerErrors::AlreadyDecided(_),
                ) => info!(index = %u.update_index, "settled meanwhile: {e}"),
                _ => return Err(e.into()),
            },
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_share_is_respected() {
        let me = Address::repeat_byte(3);
        assert!(sampled(me, 1, U256::from(5u64), 1.0));
        assert!(!sampled(me, 1, U256::from(5u64), 0.0));
        let hits = (0..2000u64)
            .filter(|i| sampled(me, 1, U256::from(*i), 0.3))
            .count();
        assert!((500..700).contains(&hits), "{hits}");
    }
}
