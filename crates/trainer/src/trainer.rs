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
use funetun_core::TensorSet;
use funetun_core::api::{Capacity, LeaseRequest, Task, UpdateReport};
use funetun_ml::platform::platform_class;
use funetun_ml::{Compute, Dataset, TaskSpec};
use serde::{Deserialize, Serialize};
use tracing::{info, instrument, warn};

use crate::attack::Attack;
use crate::error::{Error, Result};
use crate::session::{
    Backoff, Endpoints, JobChoice, Participant, Role, Stop, ensure_registered, pace, pick_job,
    register_until_ready,
};
use crate::work::{BlobCache, DataConfig, Datasets, compute_delta, decode_tensors, task_spec};

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
    /// Forge every update this way (tests and demos of the defences).
    pub attack: Option<Attack>,
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
    /// Forged updates submitted (with an attack).
    pub forged: u64,
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
    /// Submitted under an attack (not what the task asked for).
    #[serde(default)]
    forged: bool,
}

/// One line of a trainer's journal, as tools read it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalLine {
    /// The job.
    pub job_id: u64,
    /// The round.
    pub round: u64,
    /// The committed hash.
    pub update_hash: B256,
    /// Whether the update was forged by an attack.
    pub forged: bool,
}

/// Reads the journal `path` (missing: empty; torn lines skipped).
pub fn read_journal(path: &std::path::Path) -> Result<Vec<JournalLine>> {
    Ok(Journal::open(path.to_path_buf())?
        .entries
        .into_values()
        .map(|e| JournalLine {
            job_id: e.job_id,
            round: e.round,
            update_hash: e.update_hash,
            forged: e.forged,
        })
        .collect())
}

/// The journal file of `address` in a cache directory.
pub fn journal_path(cache_dir: &std::path::Path, address: Address) -> PathBuf {
    cache_dir.join(format!("journal-{address}.jsonl"))
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
    /// The last delta this run submitted (bytes, hash), for `stale`.
    last_delta: Option<(Vec<u8>, B256)>,
}

fn forge_error(e: funetun_core::Error) -> Error {
    Error::Config(format!("cannot forge the delta: {e}"))
}

/// What a task produced for submission.
struct Produced {
    bytes: Vec<u8>,
    hash: B256,
    loss_before: f32,
    loss_after: f32,
    forged: bool,
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
    let journal = Journal::open(journal_path(&config.cache_dir, address))?;
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
        last_delta: None,
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
        let task = match self.me.client.lease_task(&lease).await {
            Ok(Some(task)) => task,
            Ok(None) => return Ok(Some(false)),
            Err(e) if e.code() == Some("not_trainer") => {
                // Slashed below the minimum stake (or never staked enough):
                // stake again; the orchestrator sees it within a second.
                warn!("the orchestrator says the stake is below the minimum; staking again");
                ensure_registered(&self.me.ledger, Role::Trainer, self.config.stake).await?;
                return Ok(Some(false));
            }
            Err(e) => return Err(e.into()),
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
        let produced = match self.config.attack {
            None => self.train(base, data, spec).await?,
            Some(attack) => self.forge(task, attack, base, data, spec).await?,
        };
        if let Err(e) = self
            .me
            .client
            .put_blob(task.job_id, produced.bytes.clone())
            .await
        {
            // A forged delta may be refused (NaN); the attacker commits it anyway.
            if !produced.forged {
                return Err(e.into());
            }
            warn!(error = %e, "the orchestrator refused the forged delta; committing it anyway");
        }
        let computed = produced;

        let tx_hash = if already {
            self.find_submission(task, computed.hash).await?
        } else {
            match self
                .me
                .ledger
                .submit_update(job, task.round, computed.hash)
                .await
            {
                Err(e) if matches!(e.contract_error(), Some(JobManagerErrors::StakeTooLow(_))) => {
                    // Slashed below the minimum: stake again, then submit.
                    ensure_registered(&self.me.ledger, Role::Trainer, self.config.stake).await?;
                    let (_, outcome) = self
                        .me
                        .ledger
                        .submit_update(job, task.round, computed.hash)
                        .await?;
                    info!(hash = %computed.hash, tx = %outcome.tx_hash, "update submitted after staking again");
                    outcome.tx_hash
                }
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
            forged: computed.forged,
        };
        self.journal.append(entry.clone())?;
        if computed.forged {
            self.report.forged += 1;
        }
        self.last_delta = Some((computed.bytes, computed.hash));
        match self.report_update(&entry).await {
            Ok(()) => {}
            // A cheater's report may be refused (its delta was never stored).
            Err(e) if entry.forged => warn!(error = %e, "the forged update's report was refused"),
            Err(e) => return Err(e),
        }
        Ok(if already {
            TaskEnd::Resumed
        } else {
            TaskEnd::Submitted
        })
    }

    /// Trains the task honestly.
    async fn train(
        &mut self,
        base: TensorSet,
        data: Arc<Dataset>,
        spec: TaskSpec,
    ) -> Result<Produced> {
        let started = Instant::now();
        let computed = compute_delta(base, data, spec, self.compute.clone()).await?;
        self.report.training_seconds += started.elapsed().as_secs_f64();
        self.report.steps += computed.steps as u64;
        Ok(Produced {
            bytes: computed.bytes,
            hash: computed.hash,
            loss_before: computed.loss_before,
            loss_after: computed.loss_after,
            forged: false,
        })
    }

    /// Produces the forged update of `attack` for `task`.
    async fn forge(
        &mut self,
        task: &Task,
        attack: Attack,
        base: TensorSet,
        data: Arc<Dataset>,
        mut spec: TaskSpec,
    ) -> Result<Produced> {
        let existing = match attack {
            Attack::Stale => self.last_delta.clone(),
            Attack::Copy => match self.copy_source(task).await? {
                Some(hash) => Some((self.blobs.bytes(&self.me.client, hash).await?, hash)),
                None => None,
            },
            _ => None,
        };
        if let Some((bytes, hash)) = existing {
            return Ok(Produced {
                bytes,
                hash,
                loss_before: 0.0,
                loss_after: 0.0,
                forged: true,
            });
        }
        if !attack.trains() && attack != Attack::Zero {
            // Nothing to re-submit or copy yet: this one is honest work.
            info!(%attack, "nothing to {attack} yet; training honestly");
            return self.train(base, data, spec).await;
        }
        spec.steps = attack.steps(spec.steps);
        spec.shard = attack.shard(spec.shard, spec.shards);
        let layout = base.clone();
        let honest = if attack.trains() {
            let trained = self.train(base, data, spec.clone()).await?;
            (
                decode_tensors(&trained.bytes, spec.model).map_err(|source| Error::Blob {
                    hash: trained.hash.to_string(),
                    source,
                })?,
                trained.loss_before,
                trained.loss_after,
            )
        } else {
            (
                layout
                    .from_flat_like(&vec![0.0; layout.num_params()])
                    .map_err(forge_error)?,
                0.0,
                0.0,
            )
        };
        let forged = attack.forge(&honest.0, task.seed).map_err(forge_error)?;
        let bytes = funetun_core::encode(&forged);
        info!(%attack, "update forged");
        Ok(Produced {
            hash: funetun_core::keccak256(&bytes),
            bytes,
            loss_before: honest.1,
            loss_after: honest.2,
            forged: true,
        })
    }

    /// Another trainer's delta to copy: one of this round once someone
    /// reported it (waiting up to 20 s), else the latest of an earlier round.
    async fn copy_source(&self, task: &Task) -> Result<Option<B256>> {
        let me = self.report.address;
        let started = Instant::now();
        loop {
            let updates = self.me.client.updates(task.job_id).await?;
            let others = updates.iter().filter(|u| {
                u.trainer != me && u.status != funetun_core::protocol::UpdateStatus::Rejected
            });
            let mut earlier = None;
            for u in others {
                if u.round == task.round {
                    return Ok(Some(u.update_hash));
                }
                if u.round < task.round {
                    earlier = Some(u.update_hash);
                }
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Ok(earlier);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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
