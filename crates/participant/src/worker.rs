//! The participant loop, written once for every role: connect, stake for
//! the role if it has one, then step (pick a job, do one unit of work) and
//! pace (back off through outages, pause when idle) until the stop signal,
//! or until a step says the work is over.
//!
//! A role is a [`Worker`] holding a [`Workbench`] — its connection, data
//! sets, blob cache and compute threads — and [`run_loop`] drives it.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_core::TensorSet;
use funetun_core::api::Task;
use funetun_ml::platform::platform_class;
use funetun_ml::{Architecture as _, Compute, Model, Start, TaskSpec};
use tracing::{info, warn};

use crate::blobs::BlobCache;
use crate::data::{DataConfig, Datasets};
use crate::error::{Error, Result};
use crate::pacing::{Backoff, Stop, pace};
use crate::session::{Endpoints, Participant, Role, register_until_ready};

/// What every participant process works with.
pub struct Workbench {
    /// The signed orchestrator client and the ledger.
    pub me: Participant,
    /// Data sets, loaded once.
    pub datasets: Datasets,
    /// Checkpoints and deltas by hash.
    pub blobs: BlobCache,
    /// Compute threads for training and replays.
    pub compute: Arc<Compute>,
    /// The platform class results are bit-exact under.
    pub platform: String,
    /// The last LoRA job's frozen model, decoded once.
    frozen: tokio::sync::Mutex<Option<(B256, Arc<TensorSet>)>>,
}

impl Workbench {
    /// Connects to the chain and the orchestrator, opens the blob cache in
    /// `cache_dir/blobs` and starts `threads` compute threads.
    pub async fn open(
        endpoints: &Endpoints,
        key: PrivateKeySigner,
        threads: usize,
        data: DataConfig,
        cache_dir: &Path,
    ) -> Result<Self> {
        let me = Participant::connect(endpoints, key).await?;
        Ok(Self {
            me,
            datasets: Datasets::new(data),
            blobs: BlobCache::open(cache_dir.join("blobs"))?,
            compute: Arc::new(Compute::new(threads)?),
            platform: platform_class(),
            frozen: tokio::sync::Mutex::new(None),
        })
    }

    /// [`Workbench::open`], retried with backoff (0.5 s doubling to 10 s)
    /// while the chain cannot be reached: a participant started before its
    /// chain, or during an outage, waits for it instead of exiting. `None`
    /// when `stop` is raised first.
    pub async fn open_when_reachable(
        endpoints: &Endpoints,
        key: PrivateKeySigner,
        threads: usize,
        data: DataConfig,
        cache_dir: &Path,
        stop: &Stop,
    ) -> Result<Option<Self>> {
        let mut pause = Duration::from_millis(500);
        let mut failures = 0u32;
        loop {
            match Self::open(endpoints, key.clone(), threads, data.clone(), cache_dir).await {
                Ok(bench) => return Ok(Some(bench)),
                Err(e) if e.is_transient() => {
                    failures += 1;
                    warn!(
                        rpc = %endpoints.rpc_url,
                        failures,
                        retry_in_ms = pause.as_millis() as u64,
                        "cannot reach the chain yet ({e}); retrying until it answers (Ctrl-C stops)"
                    );
                    if stop.sleep(pause).await {
                        return Ok(None);
                    }
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The data set `name` (an uploaded one fetched by hash into the blob
    /// cache), loaded once per process.
    pub async fn dataset(
        &self,
        name: &funetun_ml::DatasetName,
    ) -> Result<Arc<funetun_ml::Dataset>> {
        self.datasets.get(name, &self.blobs, &self.me.client).await
    }

    /// Starts loading `job`'s data set in the background (a participant
    /// told its job loads the data while it registers and leases, not
    /// after).
    pub fn preload(&self, job: u64) {
        self.datasets.preload(job, &self.blobs, &self.me.client);
    }

    /// What `task` (read as `spec`) starts from: its base checkpoint and,
    /// for a LoRA job, the frozen model (kept decoded between tasks).
    pub async fn start(&self, task: &Task, spec: &TaskSpec) -> Result<Start> {
        let space = spec.space()?;
        let checkpoint = self
            .blobs
            .tensors(&self.me.client, task.base_hash, &space)
            .await?;
        let frozen = match task.frozen_hash {
            Some(hash) if spec.lora.is_some() => Some(self.frozen(hash, spec.model).await?),
            _ => None,
        };
        Ok(Start { checkpoint, frozen })
    }

    /// The frozen model `hash` of `model`, from memory when it was the
    /// last one asked for.
    async fn frozen(&self, hash: B256, model: Model) -> Result<Arc<TensorSet>> {
        let mut held = self.frozen.lock().await;
        if let Some((h, weights)) = held.as_ref()
            && *h == hash
        {
            return Ok(weights.clone());
        }
        *held = None; // free the old one before decoding the next
        // Streamed to disk first: a frozen model may be large.
        self.blobs.ensure(&self.me.client, hash).await?;
        let bytes = self
            .blobs
            .dir()
            .get(hash)
            .map_err(Error::Cache)?
            .ok_or_else(|| Error::Config(format!("frozen model {hash} vanished from the cache")))?;
        let weights = Arc::new(model.decode(&bytes).map_err(|source| Error::Blob {
            hash: hash.to_string(),
            source,
        })?);
        *held = Some((hash, weights.clone()));
        Ok(weights)
    }

    /// This participant's address.
    pub fn address(&self) -> Address {
        self.me.address()
    }
}

/// One role's unit of work, driven by [`run_loop`].
pub trait Worker: Send {
    /// The role's error type.
    type Error: std::fmt::Display + From<Error> + Send + Sync;
    /// The role's name in logs (`trainer`, `validator`, `challenger`).
    const ROLE: funetun_core::protocol::Role;
    /// What one step is called when it fails (`task`, `check`, …).
    const STEP: &'static str;

    /// The workbench the role works with.
    fn bench(&self) -> &Workbench;

    /// The on-chain role and stake to hold before working, if any.
    fn registration(&self) -> Option<(Role, U256)>;

    /// One unit of work. `Some(true)`: did work; `Some(false)`: nothing to
    /// do now; `None`: the work is over and the loop should end.
    fn step(
        &mut self,
    ) -> impl Future<Output = std::result::Result<Option<bool>, Self::Error>> + Send;

    /// Whether a failed step is worth retrying after a backoff.
    fn is_transient(error: &Self::Error) -> bool;
}

/// Runs `worker`: stakes for its role (retrying through chain outages),
/// then steps and paces until `stop` is raised or a step says the work is
/// over. Returns false when stopped before the role was ready.
pub async fn run_loop<W: Worker>(
    worker: &mut W,
    stop: &Stop,
    poll: Duration,
) -> std::result::Result<bool, W::Error> {
    if let Some((role, stake)) = worker.registration()
        && !register_until_ready(&worker.bench().me.ledger, role, stake, stop).await?
    {
        return Ok(false);
    }
    let me = &worker.bench().me;
    let stake = me.ledger.account(me.address()).await.map(|a| a.stake);
    info!(
        "{} {} ready: stake {}, orchestrator {}, chain id {}",
        W::ROLE,
        me.address(),
        stake.map_or_else(
            |e| format!("unknown ({e})"),
            funetun_core::amount::format_eth
        ),
        me.client.base_url(),
        me.ledger.chain_id()
    );
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut pruned_at = std::time::Instant::now();
    while !stop.is_raised() {
        if pruned_at.elapsed() >= crate::blobs::PRUNE_EVERY {
            pruned_at = std::time::Instant::now();
            match worker.bench().blobs.prune().await {
                Ok(p) if p.removed > 0 => info!(
                    removed = p.removed,
                    freed_bytes = p.freed_bytes,
                    kept_bytes = p.kept_bytes,
                    "pruned blobs unused for an hour from the cache"
                ),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "cannot prune the blob cache"),
            }
        }
        let outcome = worker.step().await;
        if !pace(outcome, W::is_transient, &mut backoff, stop, poll, W::STEP).await {
            break;
        }
    }
    Ok(true)
}
