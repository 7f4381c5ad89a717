//! [`AppState`]: what every handler and the driver share — configuration,
//! database, blob store, ledger, caches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alloy_primitives::{Address, U256};
use funetun_aggregate::{Exec, Outer, Rule};
use funetun_chain::{Ledger, LedgerConfig};
use funetun_core::JobSpec;
use funetun_core::TensorSet;
use funetun_core::protocol::JobStatus;
use funetun_ml::{Compute, Dataset, DatasetName, LoadOptions, Model, OptimizerKind, Space, Start};
use tokio::sync::Notify;

use crate::auth::{NonceStore, RateLimiter, RoleCache};
use crate::blobs::BlobStore;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::graph::GraphBuffer;
use crate::reputation::Decay;
use crate::store::Store;
use crate::store::jobs::unknown_job;
use crate::store::meta;
use crate::util::{addr_text, now_secs};
use funetun_ml::Architecture as _;

/// A job's spec, resolved into the types that run it.
#[derive(Debug)]
pub struct JobInfo {
    /// On-chain id.
    pub job_id: u64,
    /// The spec.
    pub spec: JobSpec,
    /// The network, with a transformer's numbers.
    pub model: Model,
    /// What checkpoints and updates hold: the model's weights, or (with
    /// `[lora]`) adapters on the frozen `init` model.
    pub space: Space,
    /// The data set.
    pub dataset: DatasetName,
    /// The inner optimizer.
    pub optimizer: OptimizerKind,
    /// The aggregation rule.
    pub rule: Rule,
    /// The outer optimizer.
    pub outer: Outer,
    /// Votes that decide an update (on-chain).
    pub quorum: u32,
    /// Salt of the replay draws.
    pub secret: Vec<u8>,
    /// Largest accepted delta or checkpoint, in bytes.
    pub max_blob_bytes: usize,
}

impl JobInfo {
    /// Resolves a spec; the error names what is wrong.
    pub fn resolve(
        job_id: u64,
        spec: JobSpec,
        quorum: u32,
        secret: Vec<u8>,
    ) -> std::result::Result<Self, String> {
        spec.validate().map_err(|e| e.to_string())?;
        let model = spec.model().map_err(|e| e.to_string())?;
        spec.lr_schedule
            .parse::<funetun_ml::optim::Schedule>()
            .map_err(|e| format!("lr_schedule: {e}"))?;
        let dataset: DatasetName = spec.dataset.clone();
        let optimizer: OptimizerKind = spec
            .optimizer
            .parse()
            .map_err(|e| format!("optimizer: {e}"))?;
        let rule: Rule = spec
            .aggregation
            .parse()
            .map_err(|e| format!("aggregation: {e}"))?;
        rule.check_params()
            .map_err(|e| format!("aggregation: {e}"))?;
        rule_fits_rounds(&rule, &spec)?;
        if rule.needs_weights() {
            return Err(format!(
                "aggregation: `{}` needs per-update weights, which jobs do not provide; use mean",
                spec.aggregation
            ));
        }
        let outer: Outer = spec
            .outer_optimizer
            .parse()
            .map_err(|e| format!("outer_optimizer: {e}"))?;
        outer
            .check_params()
            .map_err(|e| format!("outer_optimizer: {e}"))?;
        outer_fits_sync(&outer, &spec)?;
        let space = Space::new(model, spec.lora.as_ref()).map_err(|e| e.to_string())?;
        let max_blob_bytes = space.decode_limits().max_bytes;
        Ok(JobInfo {
            job_id,
            spec,
            model,
            space,
            dataset,
            optimizer,
            rule,
            outer,
            quorum,
            secret,
            max_blob_bytes,
        })
    }
}

/// A job of the database resolved; a spec that no longer resolves is an
/// inconsistency (it was checked when the job started).
fn resolve_stored(row: crate::store::jobs::StoredSpec) -> Result<JobInfo> {
    let job_id = crate::store::to_u64(row.job_id);
    let spec = JobSpec::from_toml(&row.spec)
        .map_err(|e| Error::Inconsistent(format!("stored spec of job {job_id}: {e}")))?;
    let quorum = u32::try_from(row.quorum).unwrap_or(0);
    JobInfo::resolve(job_id, spec, quorum, row.secret)
        .map_err(|e| Error::Inconsistent(format!("stored spec of job {job_id}: {e}")))
}

/// Refuses a rule that cannot work with the updates a round of `spec` is
/// built from (`krum:100` with 4 shards): every round would fall back to
/// the mean, which is not what the owner asked for.
pub fn rule_fits_rounds(rule: &Rule, spec: &JobSpec) -> std::result::Result<(), String> {
    let n = spec.updates_per_round() as usize;
    rule.check_n(n).map_err(|e| {
        format!(
            "aggregation: `{}` cannot work with the {n} updates a round of this job merges ({e}); \
             lower its parameter or raise `shards`",
            spec.aggregation
        )
    })
}

/// Refuses outer momentum under `stale:S`. A late update re-applies a
/// direction that the checkpoints after its base already took, and momentum
/// keeps re-applying it: the `shakespeare` preset with `nesterov:0.7,0.9`
/// diverged under `stale:2` where plain averaging did not (docs/sync.md).
pub fn outer_fits_sync(outer: &Outer, spec: &JobSpec) -> std::result::Result<(), String> {
    let momentum = match outer {
        _ if spec.sync.is_sync() => return Ok(()),
        Outer::Sgd { .. } => 0.0,
        Outer::Nesterov { momentum, .. } => *momentum,
        Outer::Adam { beta1, .. } => *beta1,
    };
    if momentum == 0.0 {
        return Ok(());
    }
    Err(format!(
        "outer_optimizer: `{}` carries momentum ({momentum}), which the late updates of a \
         `{}` job turn into overshoot (docs/sync.md); use outer_optimizer = \"sgd\" (or \
         \"sgd:LR\"), a momentum of 0, or sync = \"sync\"",
        spec.outer_optimizer, spec.sync
    ))
}

impl JobInfo {
    /// The shard of the training split a task slot trains: the slot itself
    /// (`sync` has one slot per shard); a `stale:S` round's slots run on
    /// past `shards` and wrap around (each slot has its own seed).
    pub fn data_shard(&self, slot: u32) -> u32 {
        slot % self.spec.shards.max(1)
    }
}

/// Largest request body of any job: a transformer's canonical tensor file
/// up to this size (each job's own limit, its model's file size, is
/// checked once the job is known).
pub const MAX_TEXT_BLOB_BYTES: usize = 256 << 20;

/// Largest canonical tensor file of `model`.
pub fn blob_limit(model: Model) -> usize {
    model.decode_limits().max_bytes
}

/// A lock held in this process and, on PostgreSQL, across replicas; released
/// when dropped.
#[derive(Debug)]
pub struct Exclusive {
    // Dropped first: the database lock goes before the local one, so the
    // next local holder does not wait on it.
    _db: Option<crate::store::HeldLock>,
    _local: tokio::sync::OwnedMutexGuard<()>,
}

impl Exclusive {
    async fn take(
        local: Arc<tokio::sync::Mutex<()>>,
        store: &Store,
        key: i64,
    ) -> Result<Exclusive> {
        let local = local.lock_owned().await;
        let db = store.hold(key).await?;
        Ok(Exclusive {
            _db: db,
            _local: local,
        })
    }
}

/// A data set's place in [`AppState`]'s cache: locked while it loads,
/// `None` until then.
type DatasetSlot = Arc<Mutex<Option<Arc<Dataset>>>>;

/// Shared state of the service.
pub struct AppState {
    /// The configuration.
    pub config: Config,
    /// The database: every read and write goes through it.
    pub store: Store,
    /// Blobs.
    pub blobs: Arc<BlobStore>,
    /// The contract, signing as the leader.
    pub ledger: Ledger,
    /// The leader address.
    pub address: Address,
    /// The contract's minimum stake.
    pub min_stake: U256,
    /// The contract's `DECISION_TIMEOUT`: seconds after an update's window
    /// during which only this leader finalizes it, and after which an update
    /// still short of a quorum is settled.
    pub decision_timeout: u64,
    /// Unix second the service started (older request timestamps are refused).
    pub started_at: u64,
    /// Nonces seen (SQLite: in memory; PostgreSQL: in the database, which
    /// every replica shares).
    pub nonces: NonceStore,
    /// Per-address rate limit (in memory or in the database, as nonces).
    pub rate: RateLimiter,
    /// This replica's part in the leader election.
    pub leadership: crate::leader::Leadership,
    /// On-chain roles.
    pub roles: RoleCache,
    /// Message counts for `/graph`, flushed to SQLite every tick.
    pub graph: GraphBuffer,
    /// Reputation decay.
    pub decay: Decay,
    /// Largest blob any model accepts (the body limit of uploads).
    pub max_blob_bytes: usize,
    /// Wakes the driver early (a report or vote arrived).
    pub wake: Notify,
    /// Serialises validation assignments in this process ([`AppState::lock_assignments`]).
    assign_lock: Arc<tokio::sync::Mutex<()>>,
    /// The last view of the chain, for `/healthz` and outage answers.
    pub chain_seen: crate::health::ChainSeen,
    jobs: Mutex<HashMap<u64, Arc<JobInfo>>>,
    job_locks: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    /// One slot per data set, locked while it loads so that concurrent
    /// callers (the start-up preload, the first report's probe) load it once.
    datasets: Mutex<HashMap<String, DatasetSlot>>,
    frozen: Mutex<HashMap<u64, Arc<TensorSet>>>,
    compute: Arc<Compute>,
    exec: Exec,
    /// The sandbox generic tasks' validators run in.
    pub wasm: crate::service::compute::Wasm,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("address", &self.address)
            .field("contract", &self.config.contract)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the database and blob store, connects to the chain and loads
    /// the known jobs. Starts no background work.
    pub async fn open(config: Config) -> Result<Arc<AppState>> {
        let store = Store::open(&config.db_url).await?;
        let blobs = Arc::new(BlobStore::open(&config.blobs).await?);
        let ledger = Ledger::connect(
            &config.rpc_url,
            config.contract,
            config.key.clone(),
            LedgerConfig {
                confirmations: config.confirmations.max(1),
                poll_interval: std::time::Duration::from_millis(20),
                ..LedgerConfig::default()
            },
        )
        .await?;
        let min_stake = ledger
            .view(funetun_chain::JobManager::MIN_STAKECall {})
            .await?;
        let decision_timeout = ledger
            .view(funetun_chain::JobManager::DECISION_TIMEOUTCall {})
            .await?
            .saturating_to();
        let address = config.key.address();
        if let Some(stored) = store.meta(meta::LEADER).await?
            && stored != addr_text(address)
        {
            return Err(Error::Config(format!(
                "the database belongs to leader {stored}, not to {address}; use the same key or another database"
            )));
        }
        if let Some(stored) = store.meta(meta::CONTRACT).await?
            && stored != addr_text(config.contract)
        {
            return Err(Error::Config(format!(
                "the database follows contract {stored}, not {}; use another database",
                config.contract
            )));
        }
        let mut tx = store.begin().await?;
        tx.set_meta(meta::LEADER, &addr_text(address)).await?;
        tx.set_meta(meta::CONTRACT, &addr_text(config.contract))
            .await?;
        tx.commit().await?;
        let compute = Arc::new(Compute::new(config.threads)?);
        let exec = Exec::with_threads(config.threads.max(1))?;
        let max_blob_bytes = [Model::Mlp, Model::Cnn]
            .into_iter()
            .map(blob_limit)
            .chain([MAX_TEXT_BLOB_BYTES])
            .max()
            .unwrap_or(1 << 20);
        let state = AppState {
            rate: RateLimiter::new(config.auth.rate_per_sec, config.auth.rate_burst),
            roles: RoleCache::new(config.role_ttl, config.negative_role_ttl),
            decay: Decay::new(config.reputation_half_life),
            graph: GraphBuffer::default(),
            chain_seen: crate::health::ChainSeen::default(),
            nonces: NonceStore::default(),
            leadership: crate::leader::Leadership::new(&config.replica),
            started_at: now_secs(),
            wake: Notify::new(),
            assign_lock: Arc::default(),
            jobs: Mutex::default(),
            job_locks: Mutex::default(),
            datasets: Mutex::default(),
            frozen: Mutex::default(),
            config,
            store,
            blobs,
            ledger,
            address,
            min_stake,
            decision_timeout,
            max_blob_bytes,
            compute,
            exec,
            wasm: crate::service::compute::Wasm::new()?,
        };
        state.load_nonces().await?;
        state.load_jobs().await?;
        Ok(Arc::new(state))
    }

    /// Whether nonces and rate buckets live in the database, shared by
    /// every replica (PostgreSQL), rather than in this process (SQLite).
    pub fn shared_admission(&self) -> bool {
        self.store.backend() == crate::store::Backend::Postgres
    }

    async fn load_nonces(&self) -> Result<()> {
        if self.shared_admission() {
            return Ok(());
        }
        let now = now_secs();
        for (address, nonce, expires_at) in self.store.take_nonces(now).await? {
            self.nonces.insert(address, &nonce, expires_at, now);
        }
        Ok(())
    }

    async fn load_jobs(&self) -> Result<()> {
        for row in self.store.stored_specs().await? {
            self.put_job(Arc::new(resolve_stored(row)?));
        }
        Ok(())
    }

    /// Remembers a resolved job.
    pub fn put_job(&self, info: Arc<JobInfo>) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(info.job_id, info);
    }

    /// A job whose spec is resolved, if known.
    pub fn job_info(&self, job_id: u64) -> Option<Arc<JobInfo>> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&job_id)
            .cloned()
    }

    /// A job with its spec resolved, or 404 `unknown_job` / 409 when it has
    /// no usable spec. A job this replica has not seen yet (another
    /// replica's driver started it) is read from the database.
    pub async fn job(&self, job_id: u64) -> Result<Arc<JobInfo>> {
        if let Some(info) = self.job_info(job_id) {
            return Ok(info);
        }
        if let Some(row) = self.store.stored_spec(job_id).await? {
            let info = Arc::new(resolve_stored(row)?);
            self.put_job(info.clone());
            return Ok(info);
        }
        match self.store.job_status(job_id).await? {
            None => Err(unknown_job(job_id, self.address)),
            Some((JobStatus::Invalid, reason)) => Err(Error::conflict(
                "job_invalid",
                format!(
                    "job {job_id} has an unusable spec: {}",
                    reason.unwrap_or_default()
                ),
            )),
            Some(_) => Err(Error::conflict(
                "job_not_started",
                format!(
                    "job {job_id} is waiting for its spec blob and first checkpoint; try again shortly"
                ),
            )),
        }
    }

    /// The status of a job (`None` when it is not led here).
    pub async fn job_status(&self, job_id: u64) -> Result<Option<JobStatus>> {
        Ok(self
            .store
            .job_status(job_id)
            .await?
            .map(|(status, _)| status))
    }

    /// Takes the lock serialising lease decisions and round changes of one
    /// job: in this process, and across replicas through the database.
    pub async fn lock_job(&self, job_id: u64) -> Result<Exclusive> {
        let local = self
            .job_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(job_id)
            .or_default()
            .clone();
        Exclusive::take(local, &self.store, crate::store::job_lock_key(job_id)).await
    }

    /// Takes the lock serialising validation assignments (across replicas too).
    pub async fn lock_assignments(&self) -> Result<Exclusive> {
        Exclusive::take(
            self.assign_lock.clone(),
            &self.store,
            crate::store::ASSIGN_LOCK,
        )
        .await
    }

    /// The compute pool for evaluation.
    pub fn compute(&self) -> Arc<Compute> {
        self.compute.clone()
    }

    /// The aggregation threads.
    pub fn exec(&self) -> Exec {
        self.exec.clone()
    }

    /// Loads (once) and returns a data set. Blocking: call from a blocking task.
    pub fn dataset_blocking(&self, name: &DatasetName) -> Result<Arc<Dataset>> {
        let slot = self
            .datasets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let options = LoadOptions {
            data_dir: self.config.data_dir.as_deref(),
            download: !self.config.offline,
            progress: None,
        };
        let data = if name.blobs().is_empty() {
            Dataset::load(name, &options)?
        } else {
            Dataset::from_blobs(name, |hash| {
                let stored = self
                    .blobs
                    .get_blocking(hash)
                    .map_err(|e| funetun_ml::Error::DataUnavailable(e.to_string()))?;
                stored.map(Vec::from).ok_or_else(|| {
                    funetun_ml::Error::DataUnavailable(format!(
                        "blob {hash} of data set {name} is not in the blob store; \
                         the owner uploads it with `funetun job create --data`"
                    ))
                })
            })?
        };
        let data = Arc::new(data);
        *slot = Some(data.clone());
        Ok(data)
    }

    /// Starts loading `name` in the background (a job just started), so
    /// that the first report's loss probe and the first checkpoint's
    /// evaluation find it in memory rather than wait for it. A failure is
    /// only logged: the first real use reports it.
    pub fn preload_dataset(self: &Arc<Self>, name: &DatasetName) {
        let (state, name) = (self.clone(), name.clone());
        tokio::task::spawn_blocking(move || match state.dataset_blocking(&name) {
            Ok(_) => tracing::debug!(dataset = %name, "data set preloaded"),
            Err(e) => tracing::debug!(dataset = %name, error = %e, "data set not preloaded"),
        });
    }

    /// A LoRA job's frozen model (its spec's `init`), decoded once; `None`
    /// for a job that trains the whole model. Blocking.
    pub fn frozen_blocking(&self, info: &JobInfo) -> Result<Option<Arc<TensorSet>>> {
        let (Space::Lora(_), Some(init)) = (&info.space, info.spec.init) else {
            return Ok(None);
        };
        let cached = self
            .frozen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&info.job_id)
            .cloned();
        if let Some(weights) = cached {
            return Ok(Some(weights));
        }
        let bytes = self.blobs.get_blocking(init)?.ok_or_else(|| {
            Error::Inconsistent(format!("frozen model {init} is missing from the store"))
        })?;
        let weights = Arc::new(info.model.decode(&bytes)?);
        self.frozen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(info.job_id, weights.clone());
        Ok(Some(weights))
    }

    /// What a task of `info` starting at `checkpoint` starts from (with a
    /// LoRA job's frozen model). Blocking.
    pub fn start_blocking(&self, info: &JobInfo, checkpoint: TensorSet) -> Result<Start> {
        Ok(Start {
            checkpoint,
            frozen: self.frozen_blocking(info)?,
        })
    }

    /// The model's flat weights at checkpoint `flat` of `info` (merged
    /// into the frozen model for a LoRA job). Blocking.
    pub fn full_weights_blocking(&self, info: &JobInfo, flat: &[f32]) -> Result<Vec<f32>> {
        let frozen = self.frozen_blocking(info)?.map(|f| f.to_flat());
        Ok(info.space.full_weights(frozen.as_deref(), flat)?)
    }

    /// Writes buffered counters and (SQLite) live nonces to the store.
    pub async fn flush(&self) -> Result<()> {
        crate::graph::flush(self).await?;
        if self.shared_admission() {
            return Ok(());
        }
        let live = self.nonces.live(now_secs());
        self.store.save_nonces(&live).await
    }

    /// Reads a blob's bytes, or fails with `Inconsistent` when a blob the
    /// state refers to is missing.
    pub async fn blob(&self, hash: alloy_primitives::B256) -> Result<bytes::Bytes> {
        self.blobs
            .get(hash)
            .await?
            .ok_or_else(|| Error::Inconsistent(format!("blob {hash} is missing from the store")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_momentum_is_refused_under_stale_rounds_only() {
        let fits = |outer: &str, sync: &str| {
            let spec = JobSpec {
                outer_optimizer: outer.into(),
                sync: sync.parse().unwrap(),
                ..JobSpec::default()
            };
            outer_fits_sync(&outer.parse().unwrap(), &spec)
        };
        assert!(fits("nesterov:0.7,0.9", "sync").is_ok());
        assert!(fits("sgd", "stale:2").is_ok());
        assert!(fits("sgd:0.8", "stale:2").is_ok());
        assert!(fits("nesterov:0.7,0", "stale:2").is_ok());
        for outer in ["nesterov:0.7,0.9", "adam:1e-3,0.9,0.99,1e-8"] {
            let e = fits(outer, "stale:2").unwrap_err();
            assert!(e.starts_with("outer_optimizer:"), "{e}");
            assert!(e.contains(outer) && e.contains("stale:2"), "{e}");
            assert!(e.contains("outer_optimizer = \"sgd\""), "{e}");
        }
    }
}
