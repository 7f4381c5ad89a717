//! Test environments: a fresh embedded dev chain with the contract, keys per
//! role, a tiny job spec, and the trainer and validator loops over real HTTP.

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use funetun_chain::ledger::{NewJob, http_provider};
use funetun_chain::{ContractParams, DevChain, DevChainConfig, Ledger, LedgerConfig};
use funetun_client::Client;
use funetun_core::api::{
    Capacity, LeaseRequest, Task, UpdateReport, ValidationReport, ValidationRequest,
};
use funetun_core::protocol::JobStatus;
use funetun_core::{DecodeLimits, JobSpec, decode, encode, keccak256};
use funetun_ml::{Compute, Dataset, DatasetName, LoadOptions, ModelKind, train_task};
use funetun_orchestrator::Config;
use funetun_orchestrator::blobs::BlobLocation;

pub const ETH: u64 = 1_000_000_000_000_000_000;

/// A chain with a deployed contract, keys, a state directory and a database.
pub struct Env {
    pub chain: DevChain,
    pub dir: tempfile::TempDir,
    pub owner: Ledger,
    pub keys: Vec<PrivateKeySigner>,
    /// The orchestrator's database: see [`db_url`].
    pub db_url: String,
    /// The orchestrator's blob store: see [`blob_location`].
    pub blobs: BlobLocation,
}

/// The variable naming a PostgreSQL server to run these tests on (a URL
/// whose user may create databases); unset, they run on SQLite.
pub const POSTGRES_VAR: &str = "FUNETUN_TEST_POSTGRES";

/// A fresh database for one orchestrator: a SQLite file in `dir`, or, when
/// [`POSTGRES_VAR`] is set, a new database on that server (left behind; the
/// server is a throw-away one from `scripts/services.sh`).
pub async fn db_url(dir: &std::path::Path) -> String {
    match std::env::var(POSTGRES_VAR) {
        Ok(server) => funetun_orchestrator::store::fresh_postgres_database(&server, "t")
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_VAR}={server}: {e}")),
        Err(_) => format!("sqlite://{}", dir.join("state.db").display()),
    }
}

/// The variable naming an S3 bucket to run these tests' blobs on
/// (`s3://bucket/prefix`, reached through the standard `AWS_*` variables
/// that `scripts/services.sh` prints); unset, blobs go to a directory.
pub const S3_VAR: &str = "FUNETUN_TEST_BLOBS";

/// A fresh blob store for one orchestrator: `dir/blobs`, or, when
/// [`S3_VAR`] is set, a folder of its own in that bucket.
pub fn blob_location(dir: &std::path::Path) -> BlobLocation {
    match std::env::var(S3_VAR) {
        Ok(raw) => s3_location(&raw),
        Err(_) => BlobLocation::Dir(dir.join("blobs")),
    }
}

/// A fresh folder under the bucket `raw` names.
pub fn s3_location(raw: &str) -> BlobLocation {
    match BlobLocation::parse(raw).unwrap_or_else(|e| panic!("{S3_VAR}: {e}")) {
        BlobLocation::S3(s3) => BlobLocation::S3(s3.fresh_folder("t")),
        _ => panic!("{S3_VAR}={raw} is not an s3://bucket/prefix"),
    }
}

pub fn ledger_config() -> LedgerConfig {
    LedgerConfig {
        poll_interval: Duration::from_millis(5),
        ..LedgerConfig::default()
    }
}

impl Env {
    pub async fn new() -> Env {
        Env::with_params(&ContractParams::default()).await
    }

    /// A fresh chain whose contract is deployed with `params`.
    pub async fn with_params(params: &ContractParams) -> Env {
        let chain = DevChain::start(DevChainConfig::default())
            .await
            .expect("dev chain starts");
        let keys: Vec<_> = chain.accounts().iter().map(|a| a.signer()).collect();
        let provider = http_provider(&chain.rpc_url()).unwrap();
        let (owner, _) = Ledger::deploy(provider, keys[0].clone(), params, ledger_config())
            .await
            .expect("deploys");
        let dir = tempfile::tempdir().unwrap();
        let db_url = db_url(dir.path()).await;
        let blobs = blob_location(dir.path());
        Env {
            chain,
            dir,
            owner,
            keys,
            db_url,
            blobs,
        }
    }

    /// The orchestrator's configuration: leader key = dev account 1, state in
    /// the temp dir.
    pub fn config(&self) -> Config {
        let mut c = Config::new(
            self.chain.rpc_url(),
            self.owner.contract(),
            self.keys[1].clone(),
        );
        c.db_url = self.db_url.clone();
        c.blobs = self.blobs.clone();
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.poll_interval = Duration::from_millis(50);
        c.offline = true;
        // Drills would come first in every worker's leases; drilling has
        // its own test (compute::workers_drill_on_joining_…).
        c.drill_every = None;
        c
    }

    pub fn leader(&self) -> Address {
        self.keys[1].address()
    }

    pub fn ledger(&self, i: usize) -> Ledger {
        self.owner.with_signer(self.keys[i].clone())
    }

    pub async fn create_job(&self, spec: &JobSpec) -> u64 {
        let (id, _) = self
            .owner
            .create_job(&NewJob {
                spec_hash: keccak256(spec.to_toml().as_bytes()),
                leader: self.leader(),
                base_reward: spec.base_reward_wei().unwrap(),
                bonus_reward: U256::ZERO,
                validation_reward: spec.validation_reward_wei().unwrap(),
                rounds: spec.rounds,
                quorum: spec.validation.quorum,
                challenge_window: spec.validation.challenge_window_secs,
                deposit: U256::from(ETH),
            })
            .await
            .expect("createJob");
        id.saturating_to()
    }

    /// Starts an orchestrator, stores `spec` with it and creates the job
    /// on-chain; returns the orchestrator, the owner's client and the job.
    pub async fn start_job(
        &self,
        spec: &JobSpec,
    ) -> (funetun_orchestrator::Orchestrator, Client, u64) {
        let orch = funetun_orchestrator::start(self.config()).await.unwrap();
        let owner = Client::new(&orch.url(), Some(self.keys[0].clone()));
        owner.put_spec(spec.to_toml().into_bytes()).await.unwrap();
        let job = self.create_job(spec).await;
        (orch, owner, job)
    }

    pub async fn register_trainer(&self, i: usize) {
        self.ledger(i)
            .register_trainer(ContractParams::default().min_stake)
            .await
            .unwrap();
    }

    /// Registers trainer `i`; returns the transaction (a contract call that is
    /// not a submission).
    pub async fn register_trainer_tx(&self, i: usize) -> B256 {
        self.ledger(i)
            .register_trainer(ContractParams::default().min_stake)
            .await
            .unwrap()
            .tx_hash
    }

    pub async fn register_validator(&self, i: usize) {
        self.ledger(i)
            .register_validator(ContractParams::default().min_stake)
            .await
            .unwrap();
    }
}

/// A plain lease request for `job` (size M, no platform, nothing held).
pub fn lease_request(job: u64) -> LeaseRequest {
    LeaseRequest {
        job_id: job,
        capacity: Capacity::M,
        platform: None,
        holding: None,
    }
}

/// A job small enough to train in milliseconds.
pub fn tiny_spec(replay_prob: f64) -> JobSpec {
    let mut spec = JobSpec {
        name: "tiny".into(),
        seed: 3,
        model: ModelKind::Mlp,
        dataset: DatasetName::Synthetic(0),
        rounds: 2,
        shards: 2,
        steps: 3,
        batch: 16,
        lr: 0.05,
        optimizer: "sgd".into(),
        aggregation: "mean".into(),
        outer_optimizer: "nesterov:0.7,0.9".into(),
        min_updates: 1,
        round_timeout_secs: 3_600,
        lease_secs: 600,
        eval_samples: 200,
        ..JobSpec::default()
    };
    spec.validation.replay_prob = replay_prob;
    spec.validation.replay_floor = 0.0;
    spec.validation.challenge_window_secs = 1;
    spec
}

pub fn synthetic() -> Arc<Dataset> {
    Arc::new(Dataset::load(&DatasetName::Synthetic(0), &LoadOptions::default()).unwrap())
}

/// Runs a task exactly as a trainer does; returns the canonical delta bytes.
pub fn run_task(task: &Task, base: &[u8], data: &Dataset) -> (Vec<u8>, f32, f32) {
    let base = decode(base, &DecodeLimits::default()).unwrap();
    let spec = funetun_ml::task_spec(task).unwrap();
    let compute = Compute::new(1).unwrap();
    let out = train_task(&base, data, &spec, &compute, &mut |_| {}).unwrap();
    (encode(&out.delta), out.loss_before, out.loss_after)
}

/// One trainer turn: lease, train, upload, submit on-chain, report.
/// Returns the round trained, or None when there was nothing to do.
pub async fn trainer_turn(
    client: &Client,
    ledger: &Ledger,
    job: u64,
    data: &Dataset,
) -> Option<u64> {
    // One turn per round: a trainer that reported in the open round waits
    // for the next (a `stale:S` job would lease it another task at once).
    let id = U256::from(job);
    let open = u64::from(ledger.job(id).await.unwrap().checkpoints).saturating_sub(1);
    let me = ledger.address();
    let updates = client.updates(job).await.unwrap();
    if updates.iter().any(|u| u.trainer == me && u.round == open) {
        return None;
    }
    train_one(client, ledger, job, data)
        .await
        .map(|task| task.round)
}

/// [`train_one`] until the orchestrator leases a task; fails at `deadline`.
pub async fn train_until_leased(
    client: &Client,
    ledger: &Ledger,
    job: u64,
    data: &Dataset,
    deadline: tokio::time::Instant,
) -> Task {
    loop {
        if let Some(task) = train_one(client, ledger, job, data).await {
            return task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no lease by the deadline"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lease, train, upload, submit on-chain and report one task, whatever the
/// trainer did before in the round; returns the task, or None when the
/// orchestrator had nothing to lease.
pub async fn train_one(client: &Client, ledger: &Ledger, job: u64, data: &Dataset) -> Option<Task> {
    let task = match client
        .lease_task(&LeaseRequest {
            job_id: job,
            capacity: Capacity::M,
            platform: Some(funetun_ml::platform::platform_class()),
            holding: None,
        })
        .await
    {
        Ok(Some(task)) => task,
        Ok(None) => return None,
        // Not started yet (the leader's driver has not seen it), or over.
        Err(e) if matches!(e.code(), Some("job_not_started" | "job_closed")) => return None,
        Err(e) => panic!("lease: {e}"),
    };
    let base = client.get_blob(task.base_hash).await.unwrap();
    let (delta, before, after) = run_task(&task, &base, data);
    let hash = client.put_blob(job, delta).await.unwrap();
    let (_, outcome) = ledger
        .submit_update(U256::from(job), task.round, task.slot, hash)
        .await
        .expect("submitUpdate");
    client
        .report_update(&UpdateReport {
            task_id: task.task_id,
            update_hash: hash,
            tx_hash: outcome.tx_hash,
            loss_before: before,
            loss_after: after,
            platform: Some(funetun_ml::platform::platform_class()),
            round: None,
        })
        .await
        .expect("report");
    Some(task)
}

/// One validator turn: take an assignment, replay it, vote, report.
pub async fn validator_turn(client: &Client, ledger: &Ledger, data: &Dataset) -> Option<bool> {
    let a = client
        .next_validation(&ValidationRequest {
            job_id: None,
            platform: Some(funetun_ml::platform::platform_class()),
        })
        .await
        .expect("next validation")?;
    let base = client.get_blob(a.task.base_hash).await.unwrap();
    let (delta, _, _) = run_task(&a.task, &base, data);
    let replayed: B256 = keccak256(&delta);
    let valid = replayed == a.update_hash;
    let outcome = ledger
        .validate_update(U256::from(a.job_id), a.update_index, valid)
        .await
        .expect("validateUpdate");
    client
        .report_validation(&ValidationReport {
            job_id: a.job_id,
            update_index: a.update_index,
            valid,
            tx_hash: outcome.tx_hash,
            detail: format!("replayed {replayed}"),
        })
        .await
        .expect("report vote");
    Some(valid)
}

/// Waits until the job has `status` (polling the API), or panics after a minute.
pub async fn wait_status(client: &Client, job: u64, status: JobStatus) {
    for _ in 0..1200 {
        if let Ok(jobs) = client.jobs().await
            && jobs.iter().any(|j| j.job_id == job && j.status == status)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job} never reached status {status}");
}

/// The job's rounds once every closed one has its test metrics: a closed
/// round's checkpoint is evaluated in the background, so a job can finish
/// before the last round's metrics are stored.
pub async fn evaluated_rounds(client: &Client, job: u64) -> Vec<funetun_core::api::RoundInfo> {
    let mut rounds = client.rounds(job).await.unwrap();
    for _ in 0..1200 {
        if rounds.iter().all(|r| r.test_accuracy.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        rounds = client.rounds(job).await.unwrap();
    }
    rounds
}

/// Runs `scripts/services.sh CMD DIR` (with `service` for `up`): its
/// stdout, the `NAME=value` lines.
pub fn services(cmd: &str, dir: &std::path::Path, service: &str) -> String {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services.sh");
    let mut command = std::process::Command::new("bash");
    command.arg(&script).arg(cmd).arg(dir);
    if cmd == "up" {
        command.arg(service);
    }
    let out = command.output().expect("bash runs");
    assert!(
        out.status.success(),
        "services.sh {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stops the services under a directory however the test ends.
pub struct Services(pub std::path::PathBuf);

impl Drop for Services {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| services("down", &self.0, ""));
    }
}

/// Waits until job `job` closed its first round (or finished).
pub async fn wait_first_round_closed(owner: &Client, job: u64, deadline: tokio::time::Instant) {
    loop {
        let summary = owner
            .jobs()
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.job_id == job)
            .unwrap();
        if summary.round >= 1 || summary.status == JobStatus::Finished {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "round 0 never closed: {summary:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
