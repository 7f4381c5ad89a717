//! The trainer loop: lease a task, fetch its base checkpoint (cached by
//! hash), train, upload Δ, `submitUpdate` on-chain, report to the
//! orchestrator.
//!
//! Crash safety: after `submitUpdate` returns, the submission is appended to
//! a journal (`journal-<address>.jsonl` in the cache directory) before it is
//! reported. A restarted trainer that is handed the same lease looks its
//! update up on-chain (`round << 160 | trainer`) and reports it from the
//! journal — or, if it died between the transaction and the journal line,
//! recomputes the (deterministic) delta and finds the transaction from the
//! `UpdateSubmitted` event — so it never submits twice.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::JobManager::JobManagerErrors;
use funetun_chain::bindings::{update_index, update_status};
use funetun_core::api::{Capacity, LeaseRequest, Task, UpdateReport};
use funetun_ml::Compute;
use funetun_ml::platform::platform_class;
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use crate::error::{Error, Result};
use crate::session::{
    Backoff, Endpoints, JobChoice, Participant, Role, Stop, pace, pick_job, register_until_ready,
};
use crate::work::{BlobCache, DataConfig, Datasets, compute_delta, task_spec};

/// How a trainer runs.
#[derive(Clone, Debug)]
pub struct TrainerConfig {
    /// Orchestrator, chain and contract.
    pub endpoints: Endpoints,
    /// The trainer's key (its identity and its stake).
    pub key: PrivateKeySigner,
    /// Declared size class.
    pub capacity: Capacity,
    /// Compute threads for training.
    pub threads: usize,
    /// Where data sets are found.
    pub data: DataConfig,
    /// Checkpoint cache and journal directory.
    pub cache_dir: PathBuf,
    /// Stake to hold (the contract minimum if lower).
    pub stake: U256,
    /// Work only on this job (else the oldest active one).
    pub job_id: Option<u64>,
    /// Exit once the job is over (finished, closed or invalid).
    pub exit_when_over: bool,
    /// Stop after this many tasks.
    pub max_tasks: Option<u64>,
    /// Pause between polls when there is nothing to do.
    pub poll: Duration,
}

/// What a trainer did, printed when it stops.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrainerReport {
    /// The trainer's address.
    pub address: Address,
    /// Updates submitted on-chain by this run.
    pub submitted: u64,
    /// Submissions of an earlier run reported by this one.
    pub resumed: u64,
    /// Tasks given up (the round moved on, the job closed).
    pub dropped: u64,
    /// Training steps run.
    pub steps: u64,
    /// Seconds spent training.
    pub training_seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct JournalEntry {
    job_id: u64,
    round: u64,
    task_id: u64,
    update_hash: B256,
    tx_hash: B256,
    loss_before: f32,
    loss_after: f32,
}

struct Journal {
    path: PathBuf,
    entries: HashMap<(u64, u64), JournalEntry>,
}

impl Journal {
    fn open(path: PathBuf) -> Result<Self> {
        let mut entries = HashMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                // A torn last line (crash mid-write) is skipped.
                for entry in text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<JournalEntry>(l).ok())
                {
                    entries.insert((entry.job_id, entry.round), entry);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
        Ok(Self { path, entries })
    }

    fn append(&mut self, entry: JournalEntry) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.display().to_string(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        let line = serde_json::to_string(&entry).expect("journal entries serialize");
        writeln!(f, "{line}").map_err(io)?;
        f.sync_data().map_err(io)?;
        self.entries.insert((entry.job_id, entry.round), entry);
        Ok(())
    }
}

enum TaskEnd {
    Submitted,
    Resumed,
    Dropped(String),
}

struct Trainer {
    config: TrainerConfig,
    me: Participant,
    datasets: Datasets,
    blobs: BlobCache,
    compute: Arc<Compute>,
    journal: Journal,
    report: TrainerReport,
    platform: String,
}

/// Runs a trainer until `shutdown` completes, the job is over (with
/// `exit_when_over`) or `max_tasks` tasks are done.
pub async fn run(
    config: TrainerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<TrainerReport> {
    let stop = Stop::on(shutdown);
    let me = Participant::connect(&config.endpoints, config.key.clone()).await?;
    let address = me.address();
    let compute = Arc::new(Compute::new(config.threads)?);
    let journal = Journal::open(config.cache_dir.join(format!("journal-{address}.jsonl")))?;
    let mut trainer = Trainer {
        blobs: BlobCache::new(config.cache_dir.join("blobs")),
        datasets: Datasets::new(config.data.clone()),
        me,
        compute,
        journal,
        report: TrainerReport {
            address,
            ..Default::default()
        },
        platform: platform_class(),
        config,
    };
    trainer.run(&stop).await?;
    Ok(trainer.report)
}

impl Trainer {
    async fn run(&mut self, stop: &Stop) -> Result<()> {
        // Registration retries through chain outages like everything else.
        if !register_until_ready(&self.me.ledger, Role::Trainer, self.config.stake, stop).await? {
            return Ok(());
        }
        info!(address = %self.report.address, capacity = %self.config.capacity, "trainer ready");
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        while !stop.is_raised() {
            if let Some(max) = self.config.max_tasks
                && self.report.submitted + self.report.resumed >= max
            {
                break;
            }
            let outcome = self.step().await;
            if !pace(
                outcome,
                Error::is_transient,
                &mut backoff,
                stop,
                self.config.poll,
                "task",
            )
            .await
            {
                break;
            }
        }
        info!(report = ?self.report, "trainer stopped");
        Ok(())
    }

    /// One lease attempt. `Some(true)`: did work; `Some(false)`: nothing to
    /// do now; `None`: the job is over and the trainer should exit.
    async fn step(&mut self) -> Result<Option<bool>> {
        let job = match pick_job(&self.me.client, self.config.job_id).await? {
            JobChoice::Work(job) => job,
            JobChoice::Over(job) => {
                if self.config.exit_when_over {
                    info!(job = job.job_id, status = %job.status, "job is over");
                    return Ok(None);
                }
                return Ok(Some(false));
            }
            JobChoice::Wait => return Ok(Some(false)),
        };
        let lease = LeaseRequest {
            job_id: job.job_id,
            capacity: self.config.capacity,
            platform: Some(self.platform.clone()),
        };
        let Some(task) = self.me.client.lease_task(&lease).await? else {
            return Ok(Some(false));
        };
        match self.do_task(&task).await? {
            TaskEnd::Submitted => self.report.submitted += 1,
            TaskEnd::Resumed => self.report.resumed += 1,
            TaskEnd::Dropped(why) => {
                info!(
                    task = task.task_id,
                    round = task.round,
                    "task dropped: {why}"
                );
                self.report.dropped += 1;
            }
        }
        Ok(Some(true))
    }

    #[instrument(skip_all, fields(task = task.task_id, job = task.job_id, round = task.round, shard = task.shard))]
    async fn do_task(&mut self, task: &Task) -> Result<TaskEnd> {
        let spec = task_spec(task)?;
        let job = U256::from(task.job_id);
        let me = self.report.address;
        let index = update_index(task.round, me);
        let on_chain = self.me.ledger.update(job, index).await?;
        let already = on_chain.status != update_status::NONE;
        if already
            && let Some(entry) = self
                .journal
                .entries
                .get(&(task.job_id, task.round))
                .cloned()
        {
            self.report_update(&entry).await?;
            return Ok(TaskEnd::Resumed);
        }

        let data = self.datasets.get(&task.dataset).await?;
        let base = self
            .blobs
            .tensors(&self.me.client, task.base_hash, spec.model)
            .await?;
        let started = Instant::now();
        let computed = compute_delta(base, data, spec, self.compute.clone()).await?;
        self.report.training_seconds += started.elapsed().as_secs_f64();
        self.report.steps += computed.steps as u64;
        self.me
            .client
            .put_blob(task.job_id, computed.bytes.clone())
            .await?;

        let tx_hash = if already {
            self.find_submission(task, computed.hash).await?
        } else {
            match self
                .me
                .ledger
                .submit_update(job, task.round, computed.hash)
                .await
            {
                Ok((_, outcome)) => {
                    info!(hash = %computed.hash, tx = %outcome.tx_hash, gas = outcome.gas_used, "update submitted");
                    outcome.tx_hash
                }
                Err(e) => match e.contract_error() {
                    Some(JobManagerErrors::AlreadySubmitted(_)) => {
                        self.find_submission(task, computed.hash).await?
                    }
                    Some(
                        JobManagerErrors::WrongRound(_)
                        | JobManagerErrors::JobNotActive(_)
                        | JobManagerErrors::InsufficientDeposit(_),
                    ) => return Ok(TaskEnd::Dropped(e.to_string())),
                    _ => return Err(e.into()),
                },
            }
        };
        let entry = JournalEntry {
            job_id: task.job_id,
            round: task.round,
            task_id: task.task_id,
            update_hash: computed.hash,
            tx_hash,
            loss_before: computed.loss_before,
            loss_after: computed.loss_after,
        };
        self.journal.append(entry.clone())?;
        self.report_update(&entry).await?;
        Ok(if already {
            TaskEnd::Resumed
        } else {
            TaskEnd::Submitted
        })
    }

    /// The transaction of this trainer's earlier submission for the task's
    /// round; refuses when its hash is not the recomputed one.
    async fn find_submission(&self, task: &Task, hash: B256) -> Result<B256> {
        let found = self
            .me
            .ledger
            .update_submission(U256::from(task.job_id), task.round, self.report.address, 0)
            .await?;
        match found {
            Some((on_chain, tx)) if on_chain == hash => Ok(tx),
            Some((on_chain, _)) => Err(Error::BadTask {
                task_id: task.task_id,
                detail: format!(
                    "an earlier submission for round {} committed {on_chain}, but the task now computes {hash}",
                    task.round
                ),
            }),
            None => Err(Error::BadTask {
                task_id: task.task_id,
                detail: format!("no UpdateSubmitted event found for round {}", task.round),
            }),
        }
    }

    async fn report_update(&self, entry: &JournalEntry) -> Result<()> {
        // The task the submission answers: a restarted trainer whose lease
        // expired may hold a new lease (another shard) for the same round,
        // and reporting the old delta under it would have honest replays of
        // the new task reject it.
        let report = UpdateReport {
            task_id: entry.task_id,
            update_hash: entry.update_hash,
            tx_hash: entry.tx_hash,
            loss_before: entry.loss_before,
            loss_after: entry.loss_after,
            platform: Some(self.platform.clone()),
        };
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match self.me.client.report_update(&report).await {
                Ok(ack) => {
                    info!(index = %ack.update_index, status = %ack.status, "update reported");
                    return Ok(());
                }
                Err(e) if e.is_transient() && backoff.failures() < 8 => backoff.wait(&e).await,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
