//! The trainer loop: lease a task, fetch its base checkpoint (cached by
//! hash), train, upload Δ, `submitUpdate` on-chain, report to the
//! orchestrator. Under a `stale:S` job the loop is pipelined: a trained
//! task is held while the next one is leased and trained, and its upload,
//! submission (in the next round open to this trainer) and report run
//! meanwhile, so compute does not wait on rounds (docs/sync.md).
//!
//! Crash safety: after `submitUpdate` returns, the submission is appended to
//! a journal (`journal-<address>.jsonl` in the cache directory) before it is
//! reported. A restarted trainer that is handed the same lease looks its
//! update up on-chain (`round << 160 | trainer`) and reports it from the
//! journal — or, if it died between the transaction and the journal line,
//! recomputes the (deterministic) delta and finds the transaction from the
//! `UpdateSubmitted` event — so it never submits twice.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::JobManager::JobManagerErrors;
use funetun_chain::bindings::{update_index, update_status};
use funetun_core::api::{
    Capacity, FailureReport, LeaseRequest, MAX_FAILURE_REASON, Task, UpdateReport,
};
use funetun_ml::task_spec;
use funetun_participant::session::ensure_registered;
use funetun_participant::{
    Backoff, DataConfig, Endpoints, JobChoice, JobPicker, Role, Stop, Workbench, Worker, run_loop,
};
use serde::Serialize;
use tracing::{debug, info, instrument, warn};

use crate::error::{Error, Result};
use crate::journal::{Journal, JournalEntry};
pub use crate::journal::{JournalLine, journal_path, read_journal};
use crate::source::{DeltaSource, Honest, Produced, Work};

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
    /// Run this many times slower than the machine can (≥ 1): after
    /// training a task, wait (slowdown − 1) × its training time. The delta
    /// is unchanged; tests and measurements of stragglers use it.
    pub slowdown: f64,
    /// Keep taking work for a job after validators rejected one of this
    /// trainer's own updates there. Off by default: a rejected honest update
    /// means this machine computes what others cannot replay (a corrupted
    /// data set, another build, faulty hardware), and every further update
    /// would cost stake too. An attack keeps going regardless.
    pub continue_after_rejection: bool,
    /// Forge every update this way (tests and demos of the defences).
    #[cfg(feature = "byzantine")]
    pub attack: Option<crate::attack::Attack>,
}

impl TrainerConfig {
    /// Whether a rejection of its own update stops work on that job.
    fn stops_after_rejection(&self) -> bool {
        #[cfg(feature = "byzantine")]
        if self.attack.is_some() {
            return false;
        }
        !self.continue_after_rejection
    }
}

impl TrainerConfig {
    /// Where this trainer's deltas come from: honest training, or with
    /// `attack` (feature `byzantine`) a forger.
    fn delta_source(&self) -> Arc<dyn DeltaSource> {
        #[cfg(feature = "byzantine")]
        if let Some(attack) = self.attack {
            return Arc::new(crate::attack::Forger::new(attack));
        }
        Arc::new(Honest)
    }
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
    /// Seconds spent on tasks (fetching, training, any slowdown, uploading,
    /// submitting, reporting): wall time minus this is idle time.
    pub busy_seconds: f64,
    /// Of `busy_seconds`, seconds a finished `stale:S` update waited for a
    /// round it could be submitted in (one per trainer and slot per round).
    pub wait_seconds: f64,
    /// Seconds between its first task and the end of the job without a
    /// task (no lease available): what a synchronous round's barrier costs.
    pub idle_seconds: f64,
    /// Forged updates submitted (with an attack).
    pub forged: u64,
    /// Jobs this trainer stopped working on because validators rejected one
    /// of its own updates there.
    pub refused_jobs: Vec<u64>,
}

/// How a submission ended.
enum TaskEnd {
    Submitted,
    /// An earlier run's submission, reported by this one.
    Resumed,
    /// Given up (the round moved on, the job closed): logged with why.
    Dropped,
}

/// A trained `stale:S` task waiting to be uploaded and submitted.
struct Held {
    task: Task,
    produced: Produced,
}

/// A task made ready for submission.
enum Prepared {
    /// The journal shows it submitted; it was reported again.
    Resumed,
    /// Trained; `already` when the chain has this trainer's update of the
    /// (synchronous) round, from a run that died before its journal line.
    Trained { produced: Produced, already: bool },
}

/// A submission's outcome.
struct Finished {
    end: TaskEnd,
    /// Seconds it waited for a round it could be submitted in.
    wait_seconds: f64,
    forged: bool,
}

struct Trainer {
    config: TrainerConfig,
    bench: Workbench,
    source: Arc<dyn DeltaSource>,
    /// Locked only between awaits: a held task's submission appends to it
    /// while the next task is prepared.
    journal: std::sync::Mutex<Journal>,
    report: TrainerReport,
    picker: JobPicker,
    /// A trained `stale:S` task not yet submitted.
    held: Option<Held>,
    /// Since when it has had no task (after its first one).
    idle_since: Option<std::time::Instant>,
    /// Steps `--capacity` asks for, per job (from its spec).
    asked_steps: std::collections::BTreeMap<u64, u32>,
    /// The last downsized task's job and steps, said once.
    last_size: Option<(u64, u32)>,
    /// How many of the journal's entries of this run were taken into
    /// `undecided`.
    verdict_cursor: usize,
    /// This run's submissions whose verdict is not known yet.
    undecided: Vec<(u64, u64, u32)>,
    /// Why the trainer stopped on its own: validators rejected its update of
    /// the one job it works on.
    stopped_by: Option<String>,
    /// `stale:S`: the job and round whose checkpoint this trainer's first
    /// update was trained on and submitted in; it leases again once the
    /// round has closed ([`Trainer::first_update_goes_first`]).
    after_first: Option<(u64, u64)>,
}

/// Runs a trainer until `shutdown` completes, the job is over (with
/// `exit_when_over`) or `max_tasks` tasks are done.
pub async fn run(
    config: TrainerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<TrainerReport> {
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
        return Ok(TrainerReport::default());
    };
    if let Some(job) = config.job_id {
        bench.preload(job);
    }
    let address = bench.address();
    let journal = Journal::open(journal_path(&config.cache_dir, address))?;
    let mut trainer = Trainer {
        source: config.delta_source(),
        bench,
        journal: std::sync::Mutex::new(journal),
        held: None,
        report: TrainerReport {
            address,
            ..Default::default()
        },
        picker: JobPicker::default(),
        idle_since: None,
        asked_steps: Default::default(),
        last_size: None,
        verdict_cursor: 0,
        undecided: Vec::new(),
        stopped_by: None,
        after_first: None,
        config,
    };
    let poll = trainer.config.poll;
    let ready = run_loop(&mut trainer, &stop, poll).await?;
    if trainer.held.is_some() {
        // Stopped by the signal with a trained update in hand: it is work
        // the job pays for, so it is submitted (in the next round open to
        // this trainer, at most S rounds late) before the process exits.
        info!("stopping: submitting the update in hand first");
        if let Err(e) = trainer.finish_held().await {
            warn!(error = %e, "the update in hand was not submitted; its lease lapses");
        }
    }
    if ready {
        info!(report = ?trainer.report, "trainer stopped");
    }
    if let Some(why) = trainer.stopped_by {
        return Err(Error::OwnUpdateRejected(why));
    }
    Ok(trainer.report)
}

impl Worker for Trainer {
    type Error = Error;
    const ROLE: funetun_core::protocol::Role = funetun_core::protocol::Role::Trainer;
    const STEP: &'static str = "task";

    fn bench(&self) -> &Workbench {
        &self.bench
    }

    fn registration(&self) -> Option<(Role, U256)> {
        Some((Role::Trainer, self.config.stake))
    }

    async fn step(&mut self) -> Result<Option<bool>> {
        if let Some(max) = self.config.max_tasks
            && self.report.submitted + self.report.resumed + u64::from(self.held.is_some()) >= max
        {
            if self.held.is_some() {
                self.finish_held().await?;
                return Ok(Some(true));
            }
            return Ok(None);
        }
        self.lease_and_work().await
    }

    fn is_transient(error: &Error) -> bool {
        error.is_transient()
    }
}

impl Trainer {
    /// The journal (a panic elsewhere cannot poison it: every write is one
    /// appended line).
    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends an idle stretch, if one is running.
    fn end_idle(&mut self) {
        if let Some(since) = self.idle_since.take() {
            self.report.idle_seconds += since.elapsed().as_secs_f64();
        }
    }

    /// One lease attempt. `Some(true)`: did work; `Some(false)`: nothing to
    /// do now; `None`: the job is over and the trainer should exit.
    async fn lease_and_work(&mut self) -> Result<Option<bool>> {
        if self.config.stops_after_rejection() {
            self.check_own_verdicts().await?;
            if self.stopped_by.is_some() {
                return Ok(None);
            }
        }
        let choice = self
            .picker
            .pick(&self.bench.me.client, self.config.job_id)
            .await?;
        let job = match choice {
            JobChoice::Work(job) => job,
            JobChoice::Over(job) => {
                self.finish_held().await?;
                self.end_idle();
                if self.config.exit_when_over {
                    info!(job = job.job_id, status = %job.status, "job is over");
                    return Ok(None);
                }
                return Ok(Some(false));
            }
            JobChoice::Wait => return Ok(Some(false)),
        };
        if self
            .held
            .as_ref()
            .is_some_and(|h| h.task.job_id != job.job_id)
        {
            // One job's pipeline at a time.
            self.finish_held().await?;
            return Ok(Some(true));
        }
        if self.first_update_goes_first(job.job_id).await? {
            if self.held.is_some() {
                self.finish_held().await?;
            } else {
                self.wait_for_next_round().await;
            }
            return Ok(Some(true));
        }
        if let Some(held) = &self.held
            && self.held_waits_for_its_round(&held.task).await?
        {
            // A task leased now would train on the checkpoint the held one
            // was trained on, which the next round supersedes: wait for it.
            self.wait_for_next_round().await;
            return Ok(Some(true));
        }
        let lease = LeaseRequest {
            job_id: job.job_id,
            capacity: self.config.capacity,
            platform: Some(self.bench.platform.clone()),
            holding: self.held.as_ref().map(|h| h.task.task_id),
        };
        let task = match self.bench.me.client.lease_task(&lease).await {
            Ok(Some(task)) => task,
            Ok(None) if self.held.is_some() => {
                // Nothing new to train: submit what is in hand now.
                self.finish_held().await?;
                return Ok(Some(true));
            }
            Ok(None) => {
                if self.report.busy_seconds > 0.0 && self.idle_since.is_none() {
                    self.idle_since = Some(std::time::Instant::now());
                }
                return Ok(Some(false));
            }
            Err(e) if e.code() == Some("not_trainer") => {
                // Slashed below the minimum stake (or never staked enough):
                // stake again; the orchestrator sees it within a second.
                warn!("the orchestrator says the stake is below the minimum; staking again");
                ensure_registered(&self.bench.me.ledger, Role::Trainer, self.config.stake).await?;
                return Ok(Some(false));
            }
            Err(e) if e.code() == Some("job_closed") => {
                // The job ended between the pick and the lease; the next
                // pick sees it over.
                debug!(job = job.job_id, "job closed while leasing");
                return Ok(Some(false));
            }
            Err(e) => return Err(e.into()),
        };
        self.end_idle();
        self.say_if_downsized(&task).await;
        let started = std::time::Instant::now();
        let outcome = if task.sync.is_sync() {
            self.do_task(&task).await
        } else {
            let held = self.held.take();
            self.do_task_pipelined(&task, held).await
        };
        self.report.busy_seconds += started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => self.picker.succeeded(job.job_id),
            Err(e) => {
                if !e.is_transient() {
                    // Other jobs go first for a while (a bad data set, a
                    // broken task): one job cannot stall this trainer.
                    self.picker
                        .failed(job.job_id, &e, std::time::Instant::now());
                }
                if e.is_task_failure() {
                    self.give_up(&task, &e).await;
                }
                return Err(e);
            }
        }
        Ok(Some(true))
    }

    /// Looks up the verdicts of this run's submissions still undecided; a
    /// rejected one stops work on its job: the job is never picked again in
    /// this process, and the operator is told why and what to do. When the
    /// trainer was told to work on that job only, it stops, and `run` ends
    /// with [`Error::OwnUpdateRejected`].
    async fn check_own_verdicts(&mut self) -> Result<()> {
        let new: Vec<(u64, u64, u32)> = self.journal().appended[self.verdict_cursor..].to_vec();
        self.verdict_cursor += new.len();
        self.undecided.extend(new);
        let me = self.report.address;
        let mut still = Vec::new();
        for (job, round, slot) in std::mem::take(&mut self.undecided) {
            let view = self
                .bench
                .me
                .ledger
                .update(U256::from(job), update_index(round, slot, me))
                .await?;
            match view.status {
                update_status::PENDING | update_status::CHALLENGED => {
                    still.push((job, round, slot));
                }
                update_status::REJECTED if !self.report.refused_jobs.contains(&job) => {
                    let why = format!(
                        "validators rejected this trainer's update of job {job} round {round} \
                         (slot {slot}) and its stake was slashed: what this machine computes \
                         does not replay elsewhere (a corrupted data set, another build, faulty \
                         hardware). It takes no more work for job {job}; check the data files \
                         (--data-dir, FUNETUN_DATA_DIR) and the build, then restart (or pass \
                         --continue-after-rejection to go on regardless)"
                    );
                    tracing::error!(job, round, slot, "{why}");
                    self.report.refused_jobs.push(job);
                    self.picker.refuse(job);
                    if self.config.job_id == Some(job) {
                        self.stopped_by = Some(why);
                    }
                }
                _ => {}
            }
        }
        self.undecided.extend(still);
        Ok(())
    }

    /// Trains `task` (or finds it already submitted), then submits it.
    async fn do_task(&mut self, task: &Task) -> Result<()> {
        match self.prepare(task).await? {
            Prepared::Resumed => self.report.resumed += 1,
            Prepared::Trained { produced, already } => {
                self.count_training(&produced);
                let finished = self.finish(task, produced, already).await?;
                self.report.wait_seconds += finished.wait_seconds;
                self.count_finished(&finished);
            }
        }
        Ok(())
    }

    /// A `stale:S` task, pipelined: it is trained (base fetched, delta
    /// computed) while the task trained before it, `held`, is uploaded,
    /// submitted in the next round open to this trainer and reported. The
    /// new one is then held in turn. Compute waits only when a round takes
    /// longer than a task.
    async fn do_task_pipelined(&mut self, task: &Task, held: Option<Held>) -> Result<()> {
        let (prepared, finished) = tokio::join!(
            async {
                let prepared = self.prepare(task).await;
                (prepared, std::time::Instant::now())
            },
            async {
                match held {
                    Some(h) => Some(self.finish(&h.task, h.produced, false).await),
                    None => None,
                }
            }
        );
        let (prepared, trained_at) = prepared;
        // Compute stood still from the end of training until the held
        // update was through.
        self.report.wait_seconds += trained_at.elapsed().as_secs_f64();
        match prepared {
            Ok(Prepared::Resumed) => self.report.resumed += 1,
            Ok(Prepared::Trained { produced, .. }) => {
                self.count_training(&produced);
                self.held = Some(Held {
                    task: task.clone(),
                    produced,
                });
            }
            Err(e) => {
                if let Some(Ok(f)) = &finished {
                    self.count_finished(f);
                }
                return Err(e);
            }
        }
        if let Some(f) = finished {
            self.count_finished(&f?);
        }
        Ok(())
    }

    /// Tells the orchestrator that `task` failed here, and why, so its lease
    /// goes to another trainer at once and the job's owner can read the
    /// reason (`funetun job status`). Best effort: a refusal is logged.
    async fn give_up(&self, task: &Task, error: &Error) {
        let mut reason = error.to_string();
        if reason.len() > MAX_FAILURE_REASON {
            let mut end = MAX_FAILURE_REASON - 3;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
            reason.push_str("...");
        }
        let report = FailureReport {
            task_id: task.task_id,
            reason,
        };
        match self.bench.me.client.report_failure(&report).await {
            Ok(ack) => debug!(
                task = task.task_id,
                released = ack.released,
                "task given up"
            ),
            Err(e) => warn!(task = task.task_id, error = %e, "could not report the failure"),
        }
    }

    /// Says once per job, and again whenever the size changes, when a task
    /// has fewer steps than the `--capacity` asked for, and why the
    /// orchestrator sizes tasks down (docs/security.md).
    async fn say_if_downsized(&mut self, task: &Task) {
        let capacity = self.config.capacity;
        let asked = match self.asked_steps.get(&task.job_id) {
            Some(&steps) => steps,
            None => match self.bench.me.client.job(task.job_id).await {
                Ok(job) => {
                    let steps = job.spec.steps_for(capacity);
                    self.asked_steps.insert(task.job_id, steps);
                    steps
                }
                Err(_) => return,
            },
        };
        if task.steps >= asked || self.last_size == Some((task.job_id, task.steps)) {
            return;
        }
        self.last_size = Some((task.job_id, task.steps));
        warn!(
            job = task.job_id,
            "task {} has {} steps, not the {asked} of capacity {capacity}: the orchestrator gives \
             L tasks only after a reputation of 4 full tasks, a new trainer at most M, and a \
             quarter task after a rejected update (docs/security.md)",
            task.task_id,
            task.steps
        );
    }

    /// Uploads, submits and reports the held task's update, if any.
    async fn finish_held(&mut self) -> Result<()> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let finished = self.finish(&held.task, held.produced, false).await;
        self.report.busy_seconds += started.elapsed().as_secs_f64();
        let finished = finished?;
        self.report.wait_seconds += finished.wait_seconds;
        self.count_finished(&finished);
        Ok(())
    }

    fn count_training(&mut self, produced: &Produced) {
        self.report.steps += produced.steps_trained;
        self.report.training_seconds += produced.training_seconds;
    }

    /// Counts a submission's outcome.
    fn count_finished(&mut self, finished: &Finished) {
        match finished.end {
            TaskEnd::Submitted => self.report.submitted += 1,
            TaskEnd::Resumed => self.report.resumed += 1,
            TaskEnd::Dropped => self.report.dropped += 1,
        }
        if finished.forged {
            self.report.forged += 1;
        }
    }

    /// Fetches the task's base and trains it (with any `--slowdown`), unless
    /// a journal line or the chain shows it was submitted already.
    #[instrument(skip_all, fields(task = task.task_id, job = task.job_id, round = task.round, shard = task.shard))]
    async fn prepare(&self, task: &Task) -> Result<Prepared> {
        let spec = task_spec(task)?;
        let already = if !task.sync.is_sync() {
            // A `stale:S` task may have been submitted in a later round
            // than its own: only the journal knows whether this task was.
            let entry = self
                .journal()
                .entries
                .values()
                .find(|e| e.job_id == task.job_id && e.task_id == task.task_id)
                .cloned();
            if let Some(entry) = entry {
                self.report_update(&entry).await?;
                return Ok(Prepared::Resumed);
            }
            false
        } else {
            let already = self
                .submitted_in(task.job_id, task.round, task.slot)
                .await?;
            let entry = self
                .journal()
                .entries
                .get(&(task.job_id, task.round, task.slot))
                .cloned();
            if already && let Some(entry) = entry {
                self.report_update(&entry).await?;
                return Ok(Prepared::Resumed);
            }
            already
        };

        let data = self.bench.dataset(&task.dataset).await?;
        let base = self.bench.start(task, &spec).await?;
        let source = self.source.clone();
        let produced = source
            .produce(Work {
                bench: &self.bench,
                task,
                base,
                data,
                spec,
            })
            .await?;
        if self.config.slowdown > 1.0 {
            let extra = produced.training_seconds * (self.config.slowdown - 1.0);
            tokio::time::sleep(Duration::from_secs_f64(extra.min(86_400.0))).await;
        }
        Ok(Prepared::Trained { produced, already })
    }

    /// Uploads a trained task's delta, submits its hash on-chain (a
    /// `stale:S` task in the next round open to this trainer), journals the
    /// submission and reports it.
    #[instrument(skip_all, fields(task = task.task_id, job = task.job_id, round = task.round, shard = task.shard))]
    async fn finish(&self, task: &Task, produced: Produced, already: bool) -> Result<Finished> {
        let job = U256::from(task.job_id);
        let stale = !task.sync.is_sync();
        let mut wait_seconds = 0.0;
        if let Err(e) = self
            .bench
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

        let mut round = task.round;
        let tx_hash = if already {
            self.find_submission(task, computed.hash).await?
        } else {
            loop {
                if stale {
                    let (open, waited) = self.stale_round(task).await?;
                    wait_seconds += waited;
                    round = match open {
                        Ok(round) => round,
                        Err(why) => {
                            info!("task dropped: {why}");
                            return Ok(Finished {
                                end: TaskEnd::Dropped,
                                wait_seconds,
                                forged: false,
                            });
                        }
                    };
                }
                match self
                    .bench
                    .me
                    .ledger
                    .submit_update(job, round, task.slot, computed.hash)
                    .await
                {
                    Err(e)
                        if matches!(e.contract_error(), Some(JobManagerErrors::StakeTooLow(_))) =>
                    {
                        // Slashed below the minimum: stake again, then submit.
                        ensure_registered(&self.bench.me.ledger, Role::Trainer, self.config.stake)
                            .await?;
                        let (_, outcome) = self
                            .bench
                            .me
                            .ledger
                            .submit_update(job, round, task.slot, computed.hash)
                            .await?;
                        info!(hash = %computed.hash, tx = %outcome.tx_hash, "update submitted after staking again");
                        break outcome.tx_hash;
                    }
                    Ok((_, outcome)) => {
                        info!(hash = %computed.hash, round, tx = %outcome.tx_hash, gas = outcome.gas_used, "update submitted");
                        break outcome.tx_hash;
                    }
                    Err(e) => match e.contract_error() {
                        Some(JobManagerErrors::AlreadySubmitted(_)) if !stale => {
                            break self.find_submission(task, computed.hash).await?;
                        }
                        // The round moved on (or this trainer's submission
                        // of it landed from elsewhere): find the next one.
                        Some(
                            JobManagerErrors::WrongRound(_) | JobManagerErrors::AlreadySubmitted(_),
                        ) if stale => continue,
                        Some(
                            JobManagerErrors::WrongRound(_)
                            | JobManagerErrors::JobNotActive(_)
                            | JobManagerErrors::InsufficientDeposit(_),
                        ) => {
                            info!("task dropped: {e}");
                            return Ok(Finished {
                                end: TaskEnd::Dropped,
                                wait_seconds,
                                forged: false,
                            });
                        }
                        _ => return Err(e.into()),
                    },
                }
            }
        };
        let entry = JournalEntry {
            job_id: task.job_id,
            round,
            slot: task.slot,
            task_id: task.task_id,
            update_hash: computed.hash,
            tx_hash,
            loss_before: computed.loss_before,
            loss_after: computed.loss_after,
            forged: computed.forged,
        };
        self.journal().append(entry.clone())?;
        self.source.submitted(&computed.bytes, computed.hash);
        match self.report_update(&entry).await {
            Ok(()) => {}
            // A cheater's report may be refused (its delta was never stored).
            Err(e) if entry.forged => warn!(error = %e, "the forged update's report was refused"),
            Err(e) => return Err(e),
        }
        Ok(Finished {
            end: if already {
                TaskEnd::Resumed
            } else {
                TaskEnd::Submitted
            },
            wait_seconds,
            forged: computed.forged,
        })
    }

    /// The round a finished `stale:S` task is submitted in: the open one,
    /// unless this trainer already has an update on the task's slot there
    /// (the chain takes one per trainer, slot and round), and at most S
    /// rounds after the task's; with the seconds it waited. `Err(why)` when
    /// it is too late: the update is dropped unsubmitted, so it is neither
    /// paid nor slashed.
    async fn stale_round(&self, task: &Task) -> Result<(std::result::Result<u64, String>, f64)> {
        let bound = u64::from(task.sync.max_staleness());
        let started = std::time::Instant::now();
        let mut waited = false;
        let outcome = loop {
            let Some(open) = self.open_round(task.job_id).await? else {
                break Err(format!("job {} closed", task.job_id));
            };
            if open.saturating_sub(task.round) > bound {
                break Err(format!(
                    "too stale: trained on checkpoint {}, the job is at round {open}, \
                     and it takes updates at most {bound} rounds behind",
                    task.round
                ));
            }
            if !self.slot_taken(task.job_id, open, task.slot).await? {
                break Ok(open);
            }
            if !waited {
                debug!(
                    round = open,
                    slot = task.slot,
                    "this slot is taken in this round; waiting for the next"
                );
                waited = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok((outcome, started.elapsed().as_secs_f64()))
    }

    /// Whether a held `stale:S` task must wait before the next lease: its
    /// base is still the open round's checkpoint and its slot is taken in
    /// that round (a task leased in an earlier round on the same slot
    /// number went in there), so the held update goes into the next round,
    /// and a task leased now would be trained on the same checkpoint only
    /// to be stale when it could be submitted: the trainer waits for the
    /// next checkpoint instead.
    async fn held_waits_for_its_round(&self, held: &Task) -> Result<bool> {
        Ok(match self.open_round(held.job_id).await? {
            Some(open) if held.round >= open => {
                self.slot_taken(held.job_id, open, held.slot).await?
            }
            _ => false,
        })
    }

    /// One 100 ms pause before asking again for a round to open, counted
    /// as waiting (busy, not work).
    async fn wait_for_next_round(&mut self) {
        let started = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let waited = started.elapsed().as_secs_f64();
        self.report.busy_seconds += waited;
        self.report.wait_seconds += waited;
    }

    /// `stale:S`: whether this trainer's first update of `job` goes
    /// through before it leases again. The first update of a trainer new
    /// to the job is replayed by validators (probation) before the round
    /// holding it can close, so that round is long; a task leased meanwhile
    /// would be trained from the same checkpoint — in round 0 the random
    /// start — and merged a round late at half weight, gaining little
    /// (docs/sync.md, measured). So a trainer holding its first update,
    /// trained on the open round's checkpoint, submits and reports it at
    /// once and waits for the next checkpoint before it leases. An update
    /// whose round already closed (a slow trainer's) does not wait.
    async fn first_update_goes_first(&mut self, job: u64) -> Result<bool> {
        if let Some(held) = &self.held {
            let first = held.task.job_id == job
                && !self.journal().entries.keys().any(|&(j, _, _)| j == job);
            if !first {
                return Ok(false);
            }
            let round = held.task.round;
            let fresh = self
                .open_round(job)
                .await?
                .is_some_and(|open| open <= round);
            if fresh {
                self.after_first = Some((job, round));
            }
            return Ok(fresh);
        }
        let Some((j, round)) = self.after_first else {
            return Ok(false);
        };
        if j != job || self.open_round(job).await?.is_none_or(|open| open > round) {
            self.after_first = None;
            return Ok(false);
        }
        Ok(true)
    }

    /// The job's open round as the chain has it; `None` once it is not
    /// active.
    async fn open_round(&self, job_id: u64) -> Result<Option<u64>> {
        let view = self.bench.me.ledger.job(U256::from(job_id)).await?;
        Ok((view.status == funetun_chain::bindings::job_status::ACTIVE)
            .then(|| u64::from(view.checkpoints).saturating_sub(1)))
    }

    /// Whether this trainer has an update on-chain on `slot` of `round`
    /// (one per trainer, slot and round).
    async fn submitted_in(&self, job_id: u64, round: u64, slot: u32) -> Result<bool> {
        let index = update_index(round, slot, self.report.address);
        let update = self
            .bench
            .me
            .ledger
            .update(U256::from(job_id), index)
            .await?;
        Ok(update.status != update_status::NONE)
    }

    /// `stale:S`: whether this trainer has an update on `slot` of `round`,
    /// by its journal or by the chain. A trainer may submit several updates
    /// in one round, each on the slot of its own task.
    async fn slot_taken(&self, job_id: u64, round: u64, slot: u32) -> Result<bool> {
        let journaled = self.journal().entries.contains_key(&(job_id, round, slot));
        Ok(journaled || self.submitted_in(job_id, round, slot).await?)
    }

    /// The transaction of this trainer's earlier submission for the task's
    /// round; refuses when its hash is not the recomputed one.
    async fn find_submission(&self, task: &Task, hash: B256) -> Result<B256> {
        let found = self
            .bench
            .me
            .ledger
            .update_submission(
                U256::from(task.job_id),
                task.round,
                task.slot,
                self.report.address,
                0,
            )
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
            platform: Some(self.bench.platform.clone()),
            round: Some(entry.round),
        };
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            match self.bench.me.client.report_update(&report).await {
                Ok(ack) => {
                    info!(
                        "task {}: loss {:.4} → {:.4}, submitted in round {} (tx {}); update {:#x} is {}",
                        entry.task_id,
                        entry.loss_before,
                        entry.loss_after,
                        entry.round,
                        entry.tx_hash,
                        ack.update_index,
                        ack.status
                    );
                    return Ok(());
                }
                Err(e) if e.is_transient() && backoff.failures() < 8 => backoff.wait(&e).await,
                Err(e) => return Err(e.into()),
            }
        }
    }
}
