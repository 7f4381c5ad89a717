//! `funetun demo`: the whole market on this machine — a chain, the contract,
//! an orchestrator, trainer and validator processes, and an MNIST job —
//! with a progress bar per round, a live accuracy line, a summary table and
//! `demo-out/` (final weights, every round's checkpoint, a plot, the JSON
//! summary).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use alloy_signer_local::PrivateKeySigner;
use anyhow::Context as _;
use funetun_chain::bindings::update_status;
use funetun_chain::ledger::http_provider;
use funetun_chain::{ContractParams, DevChain, DevChainConfig, Ledger, LedgerConfig, dev_accounts};
use funetun_client::Client;
use funetun_client::anchored::{Anchored, Which, fetch_checkpoints};
use funetun_core::JobSpec;
use funetun_core::amount::{format_eth, parse_amount};
use funetun_core::api::{RoundInfo, UpdateInfo};
use funetun_core::protocol::{JobStatus, ModelKind, Role, RoundStatus, UpdateStatus};
use funetun_ml::{Dataset, DatasetName, LoadOptions};
use funetun_orchestrator::blobs::{BlobLocation, BlobStore};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::chain::shutdown_signal;
use crate::job::{check_spec_names, create_job};
use crate::output::{print_json, write_atomic};
use funetun_ml::Architecture as _;

/// Arguments of `funetun demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Trainer processes.
    #[arg(long, env = "FUNETUN_DEMO_TRAINERS", default_value_t = 4)]
    pub trainers: usize,
    /// Validator processes.
    #[arg(long, env = "FUNETUN_DEMO_VALIDATORS", default_value_t = 2)]
    pub validators: usize,
    /// Rounds (default: 4 for the MLP, 3 for the CNN).
    #[arg(long, env = "FUNETUN_DEMO_ROUNDS")]
    pub rounds: Option<u32>,
    /// A whole job at once: `mnist` (the default: an MLP on MNIST),
    /// `shakespeare` (a character-level GPT, nanoGPT's baby configuration,
    /// on tiny-shakespeare) or `finetune` (that GPT trained without one
    /// character's speeches, then fine-tuned with LoRA on them).
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Data set: mnist, fashion-mnist, tinyshakespeare[:byte] or
    /// synthetic[:SEED] (default: the preset's); your own files go in
    /// with --data.
    #[arg(long, env = "FUNETUN_DATASET")]
    pub dataset: Option<DatasetName>,
    /// Train on the built-in synthetic data set when --dataset cannot be
    /// found or downloaded (without it that is an error; the demo without
    /// --dataset always falls back, loudly).
    #[arg(long)]
    pub allow_synthetic: bool,
    /// Network: mlp, cnn, gpt or llama (default: the preset's; transformers
    /// use the baby configuration).
    #[arg(long, env = "FUNETUN_MODEL")]
    pub model: Option<ModelKind>,
    /// Aggregation rule (docs/aggregation.md).
    #[arg(long, default_value = "mean")]
    pub aggregation: String,
    /// Outer optimizer applied to each round's aggregate, e.g. `sgd`,
    /// `nesterov:0.7,0.9` (default: the built-in job's: `sgd` for images,
    /// `nesterov:0.7,0.9` for text).
    #[arg(long)]
    pub outer_optimizer: Option<String>,
    /// Probability that an update is replayed by a validator.
    #[arg(long)]
    pub replay_prob: Option<f64>,
    /// Local steps per task (capacity M).
    #[arg(long)]
    pub steps: Option<u32>,
    /// The job's seed: θ₀, data order, task seeds.
    #[arg(long, env = "FUNETUN_SEED", default_value_t = 0)]
    pub seed: u64,
    /// A job spec to run instead of the built-in one (the flags above then only
    /// override what they name explicitly: rounds, steps, replay probability).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// The owner's data set, uploaded as a blob as `job create --data`
    /// does: a UTF-8 text file, a folder of them, or `IMAGES,LABELS`.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// How uploaded text becomes tokens: `char`, `byte` or a `tokenizer.json`.
    #[arg(long, value_name = "char|byte|FILE")]
    pub tokenizer: Option<String>,
    /// An initial checkpoint in the spec's model layout (canonical
    /// safetensors, e.g. a previous demo's `final.safetensors`): round 0
    /// starts from it.
    #[arg(long, value_name = "FILE")]
    pub init: Option<PathBuf>,
    /// Directory holding data sets (searched before FUNETUN_DATA_DIR and the cache).
    #[arg(long, env = "FUNETUN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Never download missing data sets.
    #[arg(long, env = "FUNETUN_OFFLINE")]
    pub offline: bool,
    /// Use this Ethereum JSON-RPC endpoint (e.g. anvil) instead of the embedded
    /// chain; its first accounts must be the standard funded dev accounts.
    #[arg(long, env = "FUNETUN_RPC")]
    pub rpc: Option<String>,
    /// Output directory (replaced).
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// The orchestrator's database: SQLite in the output directory by
    /// default; or a PostgreSQL server URL (`postgres://user@host:port/db`),
    /// on which the demo creates a fresh database for this run (the URL's
    /// user must be allowed to create databases; docs/deploy.md).
    #[arg(long)]
    pub db: Option<String>,
    /// The orchestrator's blob store: `blobs/` in the output directory by
    /// default; or `s3://bucket/prefix` on an S3-compatible server, under
    /// which the demo keeps this run's blobs in a fresh folder
    /// (`prefix/demo-…`). The endpoint, region and key come from the
    /// `--s3-*` flags or the standard `AWS_*` variables (docs/deploy.md).
    #[arg(long)]
    pub blobs: Option<String>,
    /// How to reach an `s3://` blob store.
    #[command(flatten)]
    pub s3: crate::orchestrator::S3Args,
    /// The owner's deposit.
    #[arg(long, default_value = "1eth")]
    pub deposit: String,
    /// Keep the orchestrator and its dashboard running after the job; print the URL.
    #[arg(long)]
    pub serve: bool,
    /// Address for the orchestrator to listen on (with --serve, e.g. 127.0.0.1:8080).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Compute threads of the orchestrator (aggregation, evaluation).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Print the JSON summary as the last stdout line.
    #[arg(long, env = "FUNETUN_JSON")]
    pub json: bool,
    /// How many trainers cheat (the last K), with --attack.
    #[arg(long, default_value_t = 0)]
    pub byzantine: usize,
    /// How the byzantine trainers cheat: sign-flip, scale:X, noise, nan,
    /// zero, stale, copy, lazy, wrong-shard.
    #[arg(long, default_value = "sign-flip")]
    pub attack: funetun_trainer::attack::Attack,
    /// How many validators vote without checking (the last K), with
    /// --validator-attack.
    #[arg(long, default_value_t = 0)]
    pub bad_validators: usize,
    /// How the bad validators vote: always-valid, always-invalid, random.
    #[arg(long, default_value = "always-invalid")]
    pub validator_attack: funetun_validator::validator::ValidatorAttack,
    /// Challengers replaying every update during its window.
    #[arg(long, default_value_t = 0)]
    pub challengers: usize,
    /// Votes that decide an update (default: the spec's, 1).
    #[arg(long)]
    pub quorum: Option<u8>,
    /// Lowest replay probability of adaptive replication.
    #[arg(long)]
    pub replay_floor: Option<f64>,
    /// Turn adaptive replication off: every update is drawn at --replay-prob.
    #[arg(long)]
    pub no_adaptive: bool,
    /// Challenge window in seconds (default: the spec's, 1 in the demo).
    #[arg(long)]
    pub challenge_window: Option<u32>,
    /// How rounds synchronise: `sync` (the default: a round waits for every
    /// shard) or `stale:S` (no trainer waits; updates up to S rounds behind
    /// count, docs/sync.md).
    #[arg(long)]
    pub sync: Option<funetun_core::sync::SyncPolicy>,
    /// `stale:S`: accepted updates that close a round (default: the
    /// trainers that are not --slow, at least 1).
    #[arg(long)]
    pub buffer: Option<u32>,
    /// How many trainers run slower (the first K), with --slowdown.
    #[arg(long, default_value_t = 0)]
    pub slow: usize,
    /// How much slower the --slow trainers run (X ≥ 1: each waits X − 1
    /// times its training time after every task).
    #[arg(long, default_value_t = 4.0, value_parser = crate::participant::parse_slowdown)]
    pub slowdown: f64,
    /// Run the orchestrator as N replica processes of this binary on the
    /// --db PostgreSQL database (one leads, all serve the API; the
    /// participants are given every replica's URL). Without it the
    /// orchestrator runs in this process.
    #[arg(long)]
    pub replicas: Option<usize>,
    /// A fail-over drill (with --replicas 2 or more): SIGKILL the leading
    /// replica as soon as round R opens.
    #[arg(long, requires = "replicas")]
    pub kill_leader_at_round: Option<u64>,
}

/// A whole demo job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// An MLP on MNIST.
    Mnist,
    /// A character-level GPT (baby) on tiny-shakespeare.
    Shakespeare,
    /// Two jobs: a character-level GPT on tiny-shakespeare without one
    /// character's speeches, then a LoRA fine-tune of it on them
    /// (docs/fine-tuning.md).
    Finetune,
    /// Generic WebAssembly tasks through the market: a funded task batch,
    /// workers (one reporting made-up outputs) and hostile modules
    /// (docs/tasks.md).
    Tasks,
}

impl DemoArgs {
    /// The network: `--model`, else the preset's.
    pub fn model_kind(&self) -> ModelKind {
        self.model.unwrap_or(match self.preset {
            Some(Preset::Shakespeare | Preset::Finetune) => ModelKind::Gpt,
            _ => ModelKind::Mlp,
        })
    }

    /// The data set asked for: `--dataset`, else the preset's (text for a
    /// transformer).
    /// The owner's files named by `--data`, `--tokenizer` and `--init`, if any.
    pub fn owner_files(&self) -> Option<crate::upload::OwnerFiles> {
        (self.data.is_some() || self.init.is_some() || self.tokenizer.is_some()).then(|| {
            crate::upload::OwnerFiles {
                data: self.data.clone(),
                tokenizer: self.tokenizer.clone(),
                init: self.init.clone(),
            }
        })
    }

    pub fn dataset_name(&self) -> DatasetName {
        self.dataset.clone().unwrap_or(
            if self.preset == Some(Preset::Shakespeare) || self.model_kind().is_transformer() {
                DatasetName::TinyShakespeare(funetun_core::Tokenizer::Char)
            } else {
                DatasetName::Mnist
            },
        )
    }
}

/// One participant in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantSummary {
    /// Its address.
    pub address: Address,
    /// `trainer`, `validator` or `challenger`.
    pub role: Role,
    /// Its attack, if it cheats.
    pub attack: Option<String>,
    /// Accepted updates (trainers).
    pub accepted: u64,
    /// Rejected updates (trainers).
    pub rejected: u64,
    /// Credited on-chain for this job.
    pub paid_wei: String,
    /// Slashed on-chain for this job.
    pub slashed_wei: String,
    /// Its reputation at the end (effective compute points).
    pub reputation: f64,
    /// Forged updates it submitted (from its journal).
    pub forged: u64,
    /// Training steps it spent replaying (validators and challengers).
    pub replay_steps: u64,
    /// The orchestrator's per-update books for it (`/v1/jobs/{id}/updates`):
    /// paid for its updates. Equals `paid_wei` for a trainer.
    pub updates_paid_wei: String,
    /// Slashed for its updates, by the same books. Equals `slashed_wei` for
    /// a trainer.
    pub updates_slashed_wei: String,
    /// Trainers: whether it ran --slowdown times slower.
    pub slow: bool,
    /// Trainers: seconds spent on tasks (from its report), including any
    /// wait of a finished `stale:S` update for a round to submit in.
    pub busy_seconds: f64,
    /// Trainers: seconds without a task between its first task and the
    /// end of the job (from its report).
    pub idle_seconds: f64,
    /// Trainers: (busy − wait) / (busy + idle): the share of its time spent
    /// on work, not waiting for a lease or for a round to submit in.
    pub utilization: f64,
    /// Trainers: of `busy_seconds`, waiting for a round to submit in.
    pub wait_seconds: f64,
    /// Trainers: the staleness of each of its updates merged into a
    /// checkpoint, in round order (from the manifests; all 0 under `sync`).
    pub staleness: Vec<u64>,
}

/// The fail-over drill of `--kill-leader-at-round`.
#[derive(Debug, Clone, Serialize)]
pub struct KilledLeader {
    /// The replica that led and was killed with SIGKILL.
    pub replica: String,
    /// The round that had opened when it was killed.
    pub round: u64,
}

/// The demo's JSON summary (the last stdout line with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    /// The orchestrator's database engine: `sqlite` or `postgres`.
    pub database: &'static str,
    /// Where the orchestrator kept the run's blobs: the output directory's
    /// `blobs/`, or the `s3://bucket/prefix` folder of this run.
    pub blobs: String,
    /// Orchestrator replica processes (`--replicas`); 1 when it ran in the
    /// demo's process.
    pub replicas: usize,
    /// The replica whose term as leader closed each round, in round order.
    pub leaders: Vec<Option<String>>,
    /// With `--kill-leader-at-round`: the replica killed, and the round
    /// that had just opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed_leader: Option<KilledLeader>,
    /// The data set trained on.
    pub dataset: DatasetName,
    /// The network.
    pub model: ModelKind,
    /// Text jobs: the final checkpoint's loss per character on the
    /// validation split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// Text jobs: validation loss after each round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss_per_round: Option<Vec<f64>>,
    /// Text jobs: tokens the accepted updates trained on (steps × batch ×
    /// context).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_trained: Option<u64>,
    /// Text jobs: checkpoint 0's loss on the validation split (the owner's
    /// model for a fine-tune), measured as each round's `val_loss` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss_before: Option<f64>,
    /// Bytes of one update (canonical safetensors of the delta; a LoRA
    /// job's: of the adapters' change).
    pub update_bytes: u64,
    /// A LoRA job: bytes a dense update of the same model would weigh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_update_bytes: Option<u64>,
    /// Text jobs: what θ₀ writes after a newline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_before: Option<String>,
    /// Text jobs: what the final checkpoint writes after a newline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
    /// Rounds run.
    pub rounds: u64,
    /// Test accuracy of the final checkpoint.
    pub test_accuracy: f64,
    /// Test loss of the final checkpoint.
    pub test_loss: f64,
    /// Accuracy per round (after round t's checkpoint).
    pub accuracy_per_round: Vec<f64>,
    /// Seconds after the job started at which each round was seen closed
    /// and evaluated (polled every 100 ms).
    pub round_seconds: Vec<f64>,
    /// Updates each round merged (from its manifest), in round order.
    pub merged_per_round: Vec<u64>,
    /// How rounds synchronised (`sync` or `stale:S`).
    pub sync: funetun_core::sync::SyncPolicy,
    /// Updates accepted.
    pub updates_accepted: u64,
    /// Updates rejected.
    pub updates_rejected: u64,
    /// Updates drawn for replay.
    pub updates_replayed: u64,
    /// The owner's deposit.
    pub deposit_wei: String,
    /// Paid from the deposit: trainers' base rewards and bonuses, and
    /// validators' validation rewards.
    pub paid_wei: String,
    /// Of `paid_wei`, the validation rewards.
    pub validators_paid_wei: String,
    /// What the job pays each validator of a deciding quorum.
    pub validation_reward_wei: String,
    /// Stake slashed and credited to the job.
    pub slashed_wei: String,
    /// Deposit left.
    pub remaining_wei: String,
    /// Whether deposit + slashed == paid + reserved + remaining + withdrawn on-chain.
    pub conservation_holds: bool,
    /// keccak256 of the final weights written to `final.safetensors`.
    pub final_hash: B256,
    /// The final checkpoint hash committed on-chain.
    pub onchain_final_hash: B256,
    /// Seconds from start to summary.
    pub wall_seconds: f64,
    /// Seconds from the job's creation to its final checkpoint: the market's
    /// training time, without starting the chain and processes or writing
    /// the summary.
    pub training_seconds: f64,
    /// Gas of every transaction of the run.
    pub gas_used: u64,
    /// The job's seed (θ₀ = the model's initializer with this seed, unless
    /// the owner gave an initial checkpoint).
    pub init_seed: u64,
    /// Checkpoint 0 as committed on-chain (θ₀, or the owner's `init`).
    pub initial_hash: B256,
    /// The owner's initial checkpoint named by the spec, if any.
    pub init: Option<B256>,
    /// Where every round's checkpoint was written.
    pub checkpoints_dir: PathBuf,
    /// The job id.
    pub job_id: u64,
    /// The chain's RPC URL.
    pub rpc_url: String,
    /// The contract.
    pub contract: Address,
    /// Per participant.
    pub participants: Vec<ParticipantSummary>,
    /// Forged updates submitted on-chain by the byzantine trainers.
    pub forged_submitted: u64,
    /// Forged updates rejected on-chain.
    pub forged_caught: u64,
    /// Forged updates paid (accepted).
    pub forged_paid: u64,
    /// forged_caught / forged_submitted; none when nothing was forged.
    pub detection_rate: Option<f64>,
    /// Honest updates rejected.
    pub honest_rejected: u64,
    /// Training steps the validators spent replaying.
    pub validator_replay_steps: u64,
    /// Training steps of every submitted update, as assigned.
    pub trainer_steps: u64,
    /// validator_replay_steps / trainer_steps (full replication = 1).
    pub verification_ratio: f64,
    /// Training steps the challengers spent replaying.
    pub challenger_replay_steps: u64,
}

/// The built-in job for `model`, shaped by the flags.
pub fn demo_spec(args: &DemoArgs, dataset: &DatasetName) -> anyhow::Result<JobSpec> {
    let mut spec = match &args.spec {
        Some(path) if args.owner_files().is_some() => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            JobSpec::parse_toml(&text).with_context(|| format!("in {}", path.display()))?
        }
        Some(path) => crate::job::read_spec(path)?.0,
        None if args.model_kind().is_transformer() => text_spec(args, dataset),
        None => {
            let cnn = args.model_kind() == ModelKind::Cnn;
            JobSpec {
                name: format!("demo-{}-{}", args.model_kind(), dataset),
                seed: args.seed,
                model: args.model_kind(),
                transformer: None,
                dataset: dataset.clone(),
                init: None,
                lora: None,
                rounds: if cnn { 3 } else { 4 },
                shards: args.trainers.max(1) as u32,
                steps: if cnn { 100 } else { 400 },
                batch: 64,
                lr: if cnn { 0.02 } else { 0.05 },
                optimizer: "momentum:0.9".into(),
                lr_schedule: "constant".into(),
                grad_clip: 0.0,
                aggregation: args.aggregation.clone(),
                outer_optimizer: "sgd".into(),
                min_updates: (args.trainers.max(1) as u32).div_ceil(2),
                round_timeout_secs: 60,
                lease_secs: 30,
                sync: Default::default(),
                buffer: 0,
                staleness_alpha: funetun_core::spec::DEFAULT_STALENESS_ALPHA,
                eval_samples: 0,
                validation: funetun_core::spec::ValidationPolicy {
                    challenge_window_secs: 1,
                    ..Default::default()
                },
                rewards: Default::default(),
            }
        }
    };
    if let Some(r) = args.rounds {
        spec.rounds = r;
    }
    if let Some(s) = args.steps {
        spec.steps = s;
    }
    if let Some(o) = &args.outer_optimizer {
        spec.outer_optimizer = o.clone();
    }
    if let Some(p) = args.replay_prob {
        spec.validation.replay_prob = p;
        spec.validation.replay_floor = spec.validation.replay_floor.min(p);
    }
    if let Some(f) = args.replay_floor {
        spec.validation.replay_floor = f;
    }
    if args.no_adaptive {
        spec.validation.adaptive = false;
    }
    if let Some(q) = args.quorum {
        spec.validation.quorum = q;
    }
    if let Some(w) = args.challenge_window {
        spec.validation.challenge_window_secs = w;
    }
    if let Some(sync) = args.sync {
        spec.sync = sync;
        if sync.is_sync() {
            // A stale spec run under `sync`: its stale-only fields go.
            spec.buffer = 0;
            spec.staleness_alpha = funetun_core::spec::DEFAULT_STALENESS_ALPHA;
        }
    }
    if !spec.sync.is_sync() && args.spec.is_none() && args.outer_optimizer.is_none() {
        // A preset under `stale:S`: outer momentum does not survive late
        // updates (the shakespeare preset's Nesterov step diverged under
        // stale:2), so the deltas are averaged (docs/sync.md).
        spec.outer_optimizer = "sgd".into();
    }
    if !spec.sync.is_sync() && (spec.buffer == 0 || args.buffer.is_some()) {
        spec.buffer = stale_buffer(args, spec.shards);
    }
    if args.owner_files().is_none() {
        // With owner's files the spec is completed (and checked) once
        // they are uploaded.
        spec.validate()?;
        check_spec_names(&spec)?;
    }
    Ok(spec)
}

/// The built-in text job: nanoGPT's baby GPT trained by the market. The
/// training text is cut into `SHARDS` shards; each round a trainer per
/// shard takes `STEPS` AdamW steps from the round's checkpoint; the deltas
/// are averaged and applied with Nesterov momentum (DiLoCo's outer step,
/// `OUTER`); the learning rate follows one warm-up-then-cosine schedule
/// over the job's global step (rounds × steps, with `--rounds` and
/// `--steps` applied).
///
/// Two shards, not one per trainer: the token budget (twice nanoGPT's)
/// buys 2,000 averaged steps of two trainers' batches, or 1,000 of four;
/// the first reaches nanoGPT's loss and the second does not
/// (docs/demo.md). The other trainers take the leases the first two do
/// not ask for in time; on one machine two trainers already fill two cores.
fn text_spec(args: &DemoArgs, dataset: &DatasetName) -> JobSpec {
    const ROUNDS: u32 = 80;
    const STEPS: u32 = 25;
    const SHARDS: u32 = 2;
    const OUTER: &str = "nesterov:0.7,0.9";
    let shards = SHARDS.min(args.trainers.max(1) as u32);
    let (rounds, steps) = (args.rounds.unwrap_or(ROUNDS), args.steps.unwrap_or(STEPS));
    JobSpec {
        name: format!("demo-{}-{}", args.model_kind(), dataset),
        seed: args.seed,
        model: args.model_kind(),
        transformer: Some(funetun_core::TransformerSpec {
            config: Some("baby".into()),
            ..Default::default()
        }),
        dataset: dataset.clone(),
        init: None,
        lora: None,
        rounds,
        shards,
        steps,
        batch: 12,
        // Twice nanoGPT's rate: averaging the trainers' deltas shrinks
        // each round's step (docs/demo.md measures 1e-3, 2e-3 and 3e-3).
        lr: 2e-3,
        optimizer: "adamw:0.1,0.99".into(),
        lr_schedule: format!(
            "cosine:{},{},1e-4",
            (rounds * steps / 20).max(1),
            rounds * steps
        ),
        grad_clip: 1.0,
        aggregation: args.aggregation.clone(),
        outer_optimizer: OUTER.into(),
        min_updates: shards,
        round_timeout_secs: 600,
        lease_secs: 300,
        sync: Default::default(),
        buffer: 0,
        staleness_alpha: funetun_core::spec::DEFAULT_STALENESS_ALPHA,
        eval_samples: 0,
        validation: funetun_core::spec::ValidationPolicy {
            challenge_window_secs: 1,
            ..Default::default()
        },
        rewards: Default::default(),
    }
}

/// Picks the data set: the requested one when it can be found or
/// downloaded, else — loudly — the synthetic one (image models only: a
/// text job without its corpus is an error).
fn choose_dataset(args: &DemoArgs) -> anyhow::Result<DatasetName> {
    let name = args.dataset_name();
    if matches!(name, DatasetName::Synthetic(_)) {
        return Ok(name);
    }
    if name.is_text() {
        let options = LoadOptions {
            data_dir: args.data_dir.as_deref(),
            download: !args.offline,
            progress: None,
        };
        Dataset::load(&name, &options)
            .with_context(|| format!("the {name} corpus is needed for a text demo"))?;
        return Ok(name);
    }
    let options = LoadOptions {
        data_dir: args.data_dir.as_deref(),
        download: !args.offline,
        progress: None,
    };
    match Dataset::load(&name, &options) {
        Ok(_) => Ok(name),
        Err(e) if args.dataset.is_some() && !args.allow_synthetic => Err(anyhow::anyhow!(
            "--dataset {name} is neither on this machine nor downloadable: {e}. Point \
             --data-dir or FUNETUN_DATA_DIR at its files, or pass --allow-synthetic to train \
             the built-in synthetic set instead"
        )),
        Err(e) => {
            eprintln!();
            eprintln!("!!! {name} is neither on this machine nor downloadable: {e}");
            eprintln!("!!! running on the built-in SYNTHETIC data set instead; accuracy numbers");
            eprintln!(
                "!!! are not {name} numbers. Point --data-dir or FUNETUN_DATA_DIR at the files."
            );
            eprintln!();
            Ok(DatasetName::Synthetic(0))
        }
    }
}

pub(crate) struct Children {
    pub(crate) procs: Vec<(String, Child)>,
}

impl Children {
    pub(crate) fn spawn(&mut self, name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<()> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = file.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting the {name} process"))?;
        self.procs.push((name.to_string(), child));
        Ok(())
    }

    /// Waits up to `grace` for every child to exit on its own, then kills the rest.
    pub(crate) fn finish(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for (name, child) in &mut self.procs {
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            tracing::warn!(%name, %status, "participant exited with an error");
                        }
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        self.procs.clear();
    }

    /// Kills child `name` with SIGKILL and reaps it.
    fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let Some(i) = self.procs.iter().position(|(n, _)| n == name) else {
            anyhow::bail!("no process named {name}");
        };
        let (_, mut child) = self.procs.remove(i);
        child
            .kill()
            .with_context(|| format!("killing the {name} process"))?;
        let _ = child.wait();
        Ok(())
    }

    /// The first child that exited with an error, if any.
    pub(crate) fn failed(&mut self) -> Option<String> {
        self.procs
            .iter_mut()
            .find_map(|(name, child)| match child.try_wait() {
                Ok(Some(status)) if !status.success() => {
                    Some(format!("{name} exited with {status}"))
                }
                _ => None,
            })
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Funded accounts of the embedded chain: owner, orchestrator and up to 14
/// participants.
pub(crate) const DEMO_ACCOUNTS: usize = 16;

/// A participant process of the demo.
struct DemoParticipant {
    role: Role,
    address: Address,
    attack: Option<String>,
    cache_dir: PathBuf,
    log: PathBuf,
}

/// The number `field` of the last JSON object line of `log` (a
/// participant's `--json` report, printed as it exits).
fn last_json_field(log: &Path, field: &str) -> Option<u64> {
    last_json_value(log, field)?.as_u64()
}

/// [`last_json_field`] for a fractional number.
fn last_json_f64(log: &Path, field: &str) -> Option<f64> {
    last_json_value(log, field)?.as_f64()
}

fn last_json_value(log: &Path, field: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter(|l| l.starts_with('{'))
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())?
        .get(field)
        .cloned()
}

/// Runs `funetun demo`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.preset == Some(Preset::Finetune) {
        return crate::finetune::run(args);
    }
    if args.preset == Some(Preset::Tasks) {
        return crate::demo_tasks::run(args);
    }
    let runtime = crate::chain::runtime()?;
    let summary = runtime.block_on(run_demo(&args))?;
    // With --serve the summary line was printed before serving.
    if args.json && !args.serve {
        print_json(&summary)?;
    }
    Ok(())
}

/// The demo's chain: embedded unless --rpc names one; its URL and the
/// keys of its first `funded` dev accounts.
pub(crate) async fn demo_chain(
    args: &DemoArgs,
    funded: usize,
) -> anyhow::Result<(Option<DevChain>, String, Vec<PrivateKeySigner>)> {
    let (chain, rpc_url) = match &args.rpc {
        Some(url) => (None, url.clone()),
        None => {
            let chain = DevChain::start(DevChainConfig {
                accounts: DEMO_ACCOUNTS,
                ..DevChainConfig::default()
            })
            .await
            .context("starting the embedded chain")?;
            let url = chain.rpc_url();
            (Some(chain), url)
        }
    };
    let accounts = dev_accounts(funded)
        .into_iter()
        .map(|a| a.signer())
        .collect();
    Ok((chain, rpc_url, accounts))
}

/// The demo, returning its summary (also used by `funetun bench demo`).
pub async fn run_demo(args: &DemoArgs) -> anyhow::Result<DemoSummary> {
    let started = Instant::now();
    anyhow::ensure!(args.trainers >= 1, "--trainers must be at least 1");
    let people = args.trainers + args.validators + args.challengers;
    let funded = if args.rpc.is_some() {
        10
    } else {
        DEMO_ACCOUNTS
    };
    anyhow::ensure!(
        people + 2 <= funded,
        "--trainers + --validators + --challengers is at most {} (the funded dev accounts after owner and orchestrator{})",
        funded - 2,
        if args.rpc.is_some() {
            "; anvil funds 10"
        } else {
            ""
        }
    );
    anyhow::ensure!(
        args.byzantine <= args.trainers,
        "--byzantine {} is more than --trainers {}",
        args.byzantine,
        args.trainers
    );
    anyhow::ensure!(
        args.bad_validators <= args.validators,
        "--bad-validators {} is more than --validators {}",
        args.bad_validators,
        args.validators
    );
    if let Some(n) = args.replicas {
        anyhow::ensure!(
            (1..=8).contains(&n),
            "--replicas {n}: run 1 to 8 orchestrator replicas"
        );
        anyhow::ensure!(
            args.db
                .as_deref()
                .is_some_and(|db| !db.starts_with("sqlite:")),
            "--replicas needs --db postgres://…: replicas share one PostgreSQL database \
             (`scripts/services.sh up DIR` starts a throw-away one)"
        );
        anyhow::ensure!(
            args.kill_leader_at_round.is_none() || n >= 2,
            "--kill-leader-at-round needs --replicas 2 or more, or nobody is left to take over"
        );
    }
    let dataset = if args.data.is_some() {
        // Named by hash once uploaded.
        args.dataset_name()
    } else {
        tokio::task::block_in_place(|| choose_dataset(args))?
    };
    let mut spec = demo_spec(args, &dataset)?;
    let deposit = parse_amount(&args.deposit).map_err(|e| anyhow::anyhow!("--deposit: {e}"))?;

    let out = &args.out;
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    for sub in ["logs", "checkpoints", "participants"] {
        std::fs::create_dir_all(out.join(sub))
            .with_context(|| format!("creating {}", out.join(sub).display()))?;
    }
    // The chain's and the orchestrator's log lines (this process) go beside
    // the participants' logs, not between the progress bars.
    crate::output::log_to_file(&out.join("logs").join("orchestrator.log"))?;

    let (chain, rpc_url, accounts) = demo_chain(args, funded).await?;
    let owner_key = accounts[0].clone();
    let leader_key = accounts[1].clone();
    let (owner, _deployment) = Ledger::deploy(
        http_provider(&rpc_url)?,
        owner_key.clone(),
        &ContractParams::default(),
        LedgerConfig::default(),
    )
    .await
    .with_context(|| format!("deploying the contract on {rpc_url}"))?;
    let contract = owner.contract();
    let first_block = owner.block_number().await?;

    // The orchestrator, in this process.
    let mut config = funetun_orchestrator::Config::new(&rpc_url, contract, leader_key.clone());
    config.db_url = match args.db.as_deref() {
        None => format!("sqlite://{}", out.join("orchestrator.db").display()),
        Some(url) if url.starts_with("sqlite:") => url.to_string(),
        Some(server) => {
            let db = funetun_orchestrator::store::fresh_postgres_database(server, "demo")
                .await
                .with_context(|| {
                    format!(
                        "creating this run's database on {}",
                        funetun_orchestrator::store::redact(server)
                    )
                })?;
            tracing::info!(
                "orchestrator database: {}",
                funetun_orchestrator::store::redact(&db)
            );
            db
        }
    };
    config.blobs = match args.blobs.as_deref() {
        None => BlobLocation::Dir(out.join("blobs")),
        Some(raw) => {
            let location = match args.s3.location(raw)? {
                // A folder of its own, as the database is.
                BlobLocation::S3(s3) => BlobLocation::S3(s3.fresh_folder("demo")),
                dir => dir,
            };
            tracing::info!("orchestrator blobs: {location}");
            location
        }
    };
    config.listen = args.listen;
    config.data_dir = args.data_dir.clone();
    config.offline = args.offline;
    config.threads = args.threads;
    config.poll_interval = Duration::from_millis(50);
    config.replica = "replica-1".into();
    let blobs = BlobStore::open(&config.blobs)
        .await
        .context("opening the blob store")?;
    let mut orchestrator = match args.replicas {
        None => Orchestrators::InProcess(
            funetun_orchestrator::start(config)
                .await
                .context("starting the orchestrator")?,
        ),
        Some(n) => Orchestrators::replicas(n, &config, args, &out.join("logs")).await?,
    };
    let url = orchestrator.url();
    let owner_client = Client::new(&url, Some(owner_key.clone()));

    // The job, with the owner's files uploaded first.
    if let Some(files) = args.owner_files() {
        let uploaded = crate::upload::attach(&owner_client, &mut spec, &files).await?;
        crate::upload::announce(&uploaded);
    }
    let spec = spec;
    let spec_bytes = spec.to_toml().into_bytes();
    write_atomic(&out.join("job.toml"), &spec_bytes)?;
    let created = create_job(
        &owner_client,
        &owner,
        &spec,
        spec_bytes,
        deposit,
        leader_key.address(),
    )
    .await?;
    let job_id = created.job_id;
    let job_started = Instant::now();

    // Trainers and validators, as separate processes of this binary.
    let exe = std::env::current_exe().context("finding the funetun binary")?;
    let mut children = Children { procs: Vec::new() };
    let mut roles: Vec<DemoParticipant> = Vec::new();
    let participant_keys = &accounts[2..2 + people];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (i, key) in participant_keys.iter().enumerate() {
        let (role, name, attack) = if i < args.trainers {
            let cheats = i >= args.trainers - args.byzantine;
            (
                Role::Trainer,
                format!("trainer-{}", i + 1),
                cheats.then(|| args.attack.to_string()),
            )
        } else if i < args.trainers + args.validators {
            let v = i - args.trainers;
            let bad = v >= args.validators - args.bad_validators;
            (
                Role::Validator,
                format!("validator-{}", v + 1),
                bad.then(|| args.validator_attack.to_string()),
            )
        } else {
            (
                Role::Challenger,
                format!("challenger-{}", i - args.trainers - args.validators + 1),
                None,
            )
        };
        let cache_dir = out.join("participants").join(&name);
        // Trainers one compute thread each (they share the machine's cores
        // between them); validators more, since a replay holds its round
        // back while the trainers that are done wait. Results are the same
        // bits at any thread count.
        let threads = if role == Role::Validator {
            VALIDATOR_THREADS.min(cores)
        } else {
            1
        };
        let mut cmd = Command::new(&exe);
        cmd.arg(role.as_str())
            .args(["--orchestrator", &url, "--rpc", &rpc_url])
            .args(["--contract", &contract.to_string()])
            .args(["--job", &job_id.to_string(), "--exit-when-done"])
            .args(["--threads", &threads.to_string()])
            .args(["--poll-secs", "0.05", "--json"])
            .arg("--cache-dir")
            .arg(&cache_dir)
            .env("FUNETUN_KEY", crate::keys::key_hex(key))
            .env("FUNETUN_LOG", "info")
            .env_remove("FUNETUN_JSON");
        if let Some(attack) = &attack {
            cmd.args(["--attack", attack]);
        }
        if role == Role::Trainer && i < args.slow {
            cmd.args(["--slowdown", &args.slowdown.to_string()]);
        }
        if let Some(dir) = &args.data_dir {
            cmd.arg("--data-dir").arg(dir);
        }
        if args.offline {
            cmd.arg("--offline");
        }
        let log = out.join("logs").join(format!("{name}.log"));
        children.spawn(&name, cmd, &log)?;
        roles.push(DemoParticipant {
            role,
            address: key.address(),
            attack,
            cache_dir,
            log,
        });
    }

    eprintln!(
        "funetun demo: job {job_id} — {} on {}, {} rounds × {} shards × {} steps; {} trainers, {} validators; chain {rpc_url}, orchestrator {url}",
        spec.model,
        spec.dataset,
        spec.rounds,
        spec.shards,
        spec.steps,
        args.trainers,
        args.validators
    );
    let mut drill = args.kill_leader_at_round.map(|round| Drill {
        round,
        killed: None,
    });
    let (rounds, round_seconds) = follow_rounds(
        &owner_client,
        job_id,
        &spec,
        &mut children,
        job_started,
        (&mut orchestrator, drill.as_mut()),
    )
    .await?;
    let training_seconds = job_started.elapsed().as_secs_f64();
    children.finish(Duration::from_secs(20));

    let summary = summarize(SummaryInput {
        args,
        blobs: &blobs,
        spec: &spec,
        client: &owner_client,
        ledger: &owner,
        job_id,
        deposit,
        rounds: &rounds,
        roles: &roles,
        first_block,
        rpc_url: &rpc_url,
        started,
        training_seconds,
        round_seconds,
        replicas: args.replicas.unwrap_or(1),
        killed_leader: drill.and_then(|d| d.killed),
    })
    .await?;
    print_summary(&summary, &rounds);

    if args.serve {
        // The summary is final now: a script reading stdout gets it while the
        // orchestrator (and the embedded chain) keep serving.
        if args.json {
            print_json(&summary)?;
        }
        eprintln!("dashboard: {url}/  (Ctrl-C to stop)");
        shutdown_signal().await;
    }
    orchestrator.shutdown().await?;
    if let Some(chain) = chain {
        chain.stop().await?;
    }
    Ok(summary)
}

/// Shows a bar per round and a live accuracy line until the job is finished.
async fn follow_rounds(
    client: &Client,
    job_id: u64,
    spec: &JobSpec,
    children: &mut Children,
    job_started: Instant,
    (orchestrator, mut drill): (&mut Orchestrators, Option<&mut Drill>),
) -> anyhow::Result<(Vec<RoundInfo>, Vec<f64>)> {
    // When each round was first seen closed and evaluated, in seconds
    // after the job started (polled every 100 ms).
    let mut round_seconds: Vec<f64> = Vec::new();
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let hidden = multi.is_hidden();
    let total = multi.add(ProgressBar::new(u64::from(spec.rounds)));
    total.set_style(
        ProgressStyle::with_template("rounds   {bar:30} {pos}/{len} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let round_style =
        ProgressStyle::with_template("round {prefix:>3} {bar:30} {pos}/{len} accepted {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut bars: BTreeMap<u64, ProgressBar> = BTreeMap::new();
    let mut reported = 0usize;
    // What a round's evaluation line says: accuracy, or a text job's
    // validation loss and perplexity.
    let text = spec.model.is_transformer();
    let metrics = |r: &RoundInfo| {
        let loss = r.test_loss.unwrap_or(f64::NAN);
        if text {
            format!("val loss {loss:.4} (perplexity {:.2})", loss.exp())
        } else {
            format!(
                "test accuracy {:.2}%, loss {loss:.4}",
                r.test_accuracy.unwrap_or(0.0) * 100.0
            )
        }
    };
    let mut last_change = Instant::now();
    let mut last_seen = String::new();
    loop {
        if let Some(failed) = children.failed() {
            anyhow::bail!("{failed}; see its log in demo-out/logs/");
        }
        let (job, rounds) = match (client.job(job_id).await, client.rounds(job_id).await) {
            (Ok(job), Ok(rounds)) => (job, rounds),
            // Not seen yet, or seen and its spec not fetched yet (or refused).
            (Err(e), _) | (_, Err(e))
                if matches!(e.code(), Some("unknown_job" | "spec_unavailable")) =>
            {
                let refused = client
                    .jobs()
                    .await?
                    .iter()
                    .any(|j| j.job_id == job_id && j.status == JobStatus::Invalid);
                anyhow::ensure!(
                    !refused,
                    "the orchestrator refused the job spec; see its log"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            (Err(e), _) | (_, Err(e)) => return Err(e.into()),
        };
        anyhow::ensure!(
            job.summary.status != JobStatus::Invalid,
            "the orchestrator refused the job spec; see its log"
        );
        if let Some(drill) = drill.as_deref_mut()
            && drill.killed.is_none()
            && rounds.iter().any(|r| r.round == drill.round)
        {
            let replica = orchestrator.kill_leader().await?;
            eprintln!(
                "fail-over drill: round {} opened; killed the leading replica {replica} (SIGKILL)",
                drill.round
            );
            drill.killed = Some(KilledLeader {
                replica,
                round: drill.round,
            });
        }
        if let Some(failed) = orchestrator.failed() {
            anyhow::bail!("{failed}; see its log in demo-out/logs/");
        }
        for r in &rounds {
            let bar = bars.entry(r.round).or_insert_with(|| {
                let b = multi.insert_before(&total, ProgressBar::new(u64::from(spec.shards)));
                b.set_style(round_style.clone());
                b.set_prefix(r.round.to_string());
                b
            });
            bar.set_position(r.accepted.min(u64::from(spec.shards)));
            bar.set_message(format!(
                "(submitted {}, replayed {}, rejected {})",
                r.submitted, r.replayed, r.rejected
            ));
            if r.status == RoundStatus::Closed && r.test_accuracy.is_some() && !bar.is_finished() {
                bar.finish_with_message(metrics(r));
            }
        }
        // A round counts once closed and evaluated (evaluation runs while
        // the next round trains).
        let closed: Vec<&RoundInfo> = rounds
            .iter()
            .filter(|r| r.status == RoundStatus::Closed && r.test_accuracy.is_some())
            .collect();
        while round_seconds.len() < closed.len() {
            round_seconds.push(job_started.elapsed().as_secs_f64());
        }
        total.set_position(closed.len() as u64);
        if let Some(last) = closed.last() {
            total.set_message(metrics(last));
        }
        if hidden {
            for r in closed.iter().skip(reported) {
                eprintln!(
                    "round {:>3}: accepted {}/{}, replayed {}, rejected {} — {}",
                    r.round,
                    r.accepted,
                    spec.shards,
                    r.replayed,
                    r.rejected,
                    metrics(r)
                );
            }
        }
        reported = closed.len();
        let fingerprint = format!("{:?}", rounds);
        if fingerprint != last_seen {
            last_seen = fingerprint;
            last_change = Instant::now();
        }
        anyhow::ensure!(
            last_change.elapsed() < Duration::from_secs(spec.round_timeout_secs + 120),
            "no progress for {} s; see demo-out/logs/",
            last_change.elapsed().as_secs()
        );
        if job.summary.status == JobStatus::Finished
            && closed.len() as u64 >= u64::from(spec.rounds)
        {
            total.finish();
            return Ok((rounds, round_seconds));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `--kill-leader-at-round`: when, and (once done) whom.
struct Drill {
    round: u64,
    killed: Option<KilledLeader>,
}

/// The demo's orchestrator: in this process, or replica processes.
enum Orchestrators {
    InProcess(funetun_orchestrator::Orchestrator),
    Replicas {
        /// Each replica's name and URL, in start order.
        replicas: Vec<(String, String)>,
        procs: Children,
        /// Replicas killed on purpose.
        killed: Vec<String>,
    },
}

impl Orchestrators {
    /// Starts `n` replicas of `config` as `funetun orchestrator` processes
    /// (logs in `logs`), and waits until each answers `/healthz`.
    async fn replicas(
        n: usize,
        config: &funetun_orchestrator::Config,
        args: &DemoArgs,
        logs: &Path,
    ) -> anyhow::Result<Orchestrators> {
        let exe = std::env::current_exe().context("finding the funetun binary")?;
        let mut procs = Children { procs: Vec::new() };
        let mut replicas = Vec::with_capacity(n);
        for i in 1..=n {
            let name = format!("replica-{i}");
            // A free port, released just before the replica binds it.
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let mut cmd = Command::new(&exe);
            cmd.arg("orchestrator")
                .args(["--rpc", &config.rpc_url])
                .args(["--contract", &config.contract.to_string()])
                .args(["--db", &config.db_url])
                .args(["--blobs", &config.blobs.url()])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--replica", &name])
                .args(["--threads", &config.threads.to_string()])
                .args(["--poll-ms", "50"])
                .env("FUNETUN_KEY", crate::keys::key_hex(&config.key))
                .env("FUNETUN_LOG", "info");
            if let Some(endpoint) = &args.s3.s3_endpoint {
                cmd.args(["--s3-endpoint", endpoint]);
            }
            if let Some(region) = &args.s3.s3_region {
                cmd.args(["--s3-region", region]);
            }
            if let Some(key_id) = &args.s3.s3_access_key_id {
                cmd.args(["--s3-access-key-id", key_id]);
            }
            if args.s3.s3_redirect {
                cmd.arg("--s3-redirect");
            }
            if let Some(dir) = &config.data_dir {
                cmd.arg("--data-dir").arg(dir);
            }
            if config.offline {
                cmd.arg("--offline");
            }
            procs.spawn(&name, cmd, &logs.join(format!("{name}.log")))?;
            replicas.push((name, format!("http://127.0.0.1:{port}")));
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        for (name, url) in &replicas {
            let client = Client::new(url, None);
            while client.health().await.is_err() {
                if let Some(failed) = procs.failed() {
                    anyhow::bail!("{failed}; see demo-out/logs/{name}.log");
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "orchestrator {name} did not answer at {url} within 2 minutes; see demo-out/logs/{name}.log"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(Orchestrators::Replicas {
            replicas,
            procs,
            killed: Vec::new(),
        })
    }

    /// The API's URL: every replica's, separated by commas.
    fn url(&self) -> String {
        match self {
            Orchestrators::InProcess(o) => o.url(),
            Orchestrators::Replicas { replicas, .. } => replicas
                .iter()
                .map(|(_, url)| url.as_str())
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// Kills the replica that leads now with SIGKILL; returns its name.
    async fn kill_leader(&mut self) -> anyhow::Result<String> {
        let Orchestrators::Replicas {
            replicas,
            procs,
            killed,
        } = self
        else {
            anyhow::bail!("--kill-leader-at-round needs --replicas");
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (name, url) in replicas.iter() {
                if killed.contains(name) {
                    continue;
                }
                if let Ok(health) = Client::new(url, None).health().await
                    && health.leading
                {
                    procs.kill(name)?;
                    killed.push(name.clone());
                    return Ok(name.clone());
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no replica reported leading within 30 s; see demo-out/logs/replica-*.log"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A replica that exited (other than one killed on purpose).
    fn failed(&mut self) -> Option<String> {
        match self {
            Orchestrators::InProcess(_) => None,
            Orchestrators::Replicas { procs, .. } => procs.failed(),
        }
    }

    /// Stops the orchestrator: cleanly in this process; replicas are killed
    /// (their state is in the database, as after a crash).
    async fn shutdown(self) -> anyhow::Result<()> {
        match self {
            Orchestrators::InProcess(o) => Ok(o.shutdown().await?),
            Orchestrators::Replicas { mut procs, .. } => {
                procs.finish(Duration::ZERO);
                Ok(())
            }
        }
    }
}

struct SummaryInput<'a> {
    args: &'a DemoArgs,
    blobs: &'a BlobStore,
    spec: &'a JobSpec,
    client: &'a Client,
    ledger: &'a Ledger,
    job_id: u64,
    deposit: U256,
    rounds: &'a [RoundInfo],
    roles: &'a [DemoParticipant],
    first_block: u64,
    rpc_url: &'a str,
    started: Instant,
    training_seconds: f64,
    round_seconds: Vec<f64>,
    replicas: usize,
    killed_leader: Option<KilledLeader>,
}

async fn summarize(input: SummaryInput<'_>) -> anyhow::Result<DemoSummary> {
    let SummaryInput {
        args,
        blobs,
        spec,
        client,
        ledger,
        job_id,
        deposit,
        rounds,
        roles,
        first_block,
        rpc_url,
        started,
        training_seconds,
        round_seconds,
        replicas,
        killed_leader,
    } = input;
    let out = &args.out;
    let job = U256::from(job_id);

    // Every round's checkpoint, each checked against its on-chain hash.
    let model = spec.model()?;
    let space = funetun_ml::Space::new(model, spec.lora.as_ref())?;
    let mut final_hash = B256::ZERO;
    let mut onchain_final_hash = B256::ZERO;
    let mut initial_hash = B256::ZERO;
    let checkpoints = fetch_checkpoints(client, ledger, job_id, Which::All)
        .await?
        .map_err(crate::job::anchor_error)?;
    for Anchored { round, hash, bytes } in &checkpoints {
        space
            .decode(bytes)
            .with_context(|| format!("checkpoint {round} is not a checkpoint of the job"))?;
        write_atomic(
            &out.join("checkpoints")
                .join(format!("round-{round:04}.safetensors")),
            bytes,
        )?;
        onchain_final_hash = *hash;
        final_hash = funetun_core::keccak256(bytes);
        if *round == 0 {
            initial_hash = *hash;
        }
    }
    // Each checkpoint's manifest (its hash as committed on-chain) beside
    // it; the deltas and outer states it names stay in blobs/, so
    // `verify-chain --dir checkpoints` recomputes every aggregation offline.
    let manifests = ledger.checkpoint_manifests(job, 0).await?;
    for (&round, &hash) in manifests.iter().filter(|(r, _)| **r > 0) {
        let bytes = client.get_blob(hash).await?;
        write_atomic(
            &crate::audit::manifest_file(&out.join("checkpoints"), round),
            &bytes,
        )?;
    }
    if let Some(last) = checkpoints.last() {
        write_atomic(&out.join("final.safetensors"), &last.bytes)?;
    }
    let text = match (model.is_text(), checkpoints.last()) {
        (true, Some(last)) => {
            // The final model as a Hugging Face directory, with the job's tokenizer.
            let checkpoint = space.decode(&last.bytes)?;
            let initial = tokio::task::block_in_place(|| initial_weights(blobs, spec, model))?;
            let weights = match space.lora() {
                None => checkpoint,
                Some(lora) => {
                    // Merged into the frozen model, and the adapters beside it.
                    let adapters = out.join("hf").join(crate::job::ADAPTER_DIR);
                    funetun_ml::hf::save_adapters(&adapters, lora, &checkpoint)?;
                    lora.merge(&initial, &checkpoint)?
                }
            };
            let data = tokio::task::block_in_place(|| load_job_data(args, blobs, spec))?;
            let tokenizer = data.vocab().map(|v| v.to_hf_json()).transpose()?;
            crate::job::export_hf(&out.join("hf"), model, &weights, tokenizer.as_deref())?;
            Some(tokio::task::block_in_place(|| {
                text_samples(
                    args,
                    spec,
                    job_id,
                    &data,
                    &initial.to_flat(),
                    &weights.to_flat(),
                )
            })?)
        }
        _ => None,
    };

    // Money and verdicts from the chain's events.
    let head = ledger.block_number().await?;
    let books = ledger.job_accounts(job, first_block, head).await?;
    let conservation_holds = books.balances();
    let updates: Vec<UpdateInfo> = client.updates(job_id).await?;
    let gas_used = ledger.gas_used(first_block, head).await?;

    let last = rounds
        .iter()
        .filter(|r| r.status == RoundStatus::Closed)
        .max_by_key(|r| r.round);
    let reputation: BTreeMap<Address, f64> = client
        .participants()
        .await?
        .into_iter()
        .map(|p| (p.address, p.reputation))
        .collect();
    // Forged updates: what the byzantine trainers' journals say they forged,
    // judged by the chain.
    let (mut forged_submitted, mut forged_caught, mut forged_paid) = (0u64, 0u64, 0u64);
    let mut per_forged: BTreeMap<Address, u64> = BTreeMap::new();
    for p in roles
        .iter()
        .filter(|p| p.role == Role::Trainer && p.attack.is_some())
    {
        let journal = funetun_trainer::trainer::journal_path(&p.cache_dir, p.address);
        for line in funetun_trainer::trainer::read_journal(&journal)? {
            if line.job_id != job_id || !line.forged {
                continue;
            }
            forged_submitted += 1;
            *per_forged.entry(p.address).or_default() += 1;
            let index = funetun_chain::bindings::update_index(line.round, line.slot, p.address);
            match ledger.update(job, index).await?.status {
                update_status::REJECTED => forged_caught += 1,
                update_status::ACCEPTED | update_status::BONUSED => forged_paid += 1,
                _ => {}
            }
        }
    }
    let all_rejected = books.rejected();
    let trainer_steps: u64 = updates.iter().map(|u| u64::from(u.steps)).sum();
    let replay_steps: BTreeMap<Address, u64> = roles
        .iter()
        .filter(|p| p.role != Role::Trainer)
        .map(|p| {
            (
                p.address,
                last_json_field(&p.log, "replay_steps").unwrap_or(0),
            )
        })
        .collect();
    let steps_of = |role: Role| -> u64 {
        roles
            .iter()
            .filter(|p| p.role == role)
            .map(|p| replay_steps.get(&p.address).copied().unwrap_or(0))
            .sum()
    };
    let validator_replay_steps = steps_of(Role::Validator);
    let per_update = |who: Address, amount: fn(&UpdateInfo) -> U256| -> U256 {
        updates
            .iter()
            .filter(|u| u.trainer == who)
            .map(amount)
            .fold(U256::ZERO, |a, b| a + b)
    };
    // Staleness of every merged update, by trainer, and the updates each
    // round merged, from the manifests.
    let mut staleness: BTreeMap<Address, Vec<u64>> = BTreeMap::new();
    let mut merged_per_round = Vec::new();
    for (_, hash) in ledger
        .checkpoint_manifests(U256::from(job_id), 0)
        .await?
        .into_iter()
        .filter(|(r, _)| *r > 0)
    {
        let m = funetun_core::sync::Manifest::from_bytes(&client.get_blob(hash).await?)?;
        merged_per_round.push(m.inputs.len() as u64);
        for input in m.inputs {
            staleness
                .entry(input.trainer)
                .or_default()
                .push(input.staleness);
        }
    }
    let trainer_index = |a: Address| roles.iter().position(|p| p.address == a);
    let participants = roles
        .iter()
        .map(|p| {
            let tally = books.of(p.address);
            let trainer = p.role == Role::Trainer;
            let field = |name| match trainer {
                true => last_json_f64(&p.log, name).unwrap_or(0.0),
                false => 0.0,
            };
            let (busy, idle) = (field("busy_seconds"), field("idle_seconds"));
            let wait = field("wait_seconds").min(busy);
            let busy_share = if busy + idle > 0.0 {
                (busy - wait) / (busy + idle)
            } else {
                0.0
            };
            ParticipantSummary {
                address: p.address,
                role: p.role,
                attack: p.attack.clone(),
                accepted: tally.accepted,
                rejected: tally.rejected,
                paid_wei: tally.paid.to_string(),
                slashed_wei: tally.slashed.to_string(),
                reputation: reputation.get(&p.address).copied().unwrap_or(0.0),
                forged: per_forged.get(&p.address).copied().unwrap_or(0),
                replay_steps: replay_steps.get(&p.address).copied().unwrap_or(0),
                updates_paid_wei: per_update(p.address, |u| u.paid_wei).to_string(),
                updates_slashed_wei: per_update(p.address, |u| u.slashed_wei).to_string(),
                slow: trainer && trainer_index(p.address).is_some_and(|i| i < args.slow),
                busy_seconds: busy,
                idle_seconds: idle,
                utilization: busy_share,
                wait_seconds: wait,
                staleness: staleness.remove(&p.address).unwrap_or_default(),
            }
        })
        .collect();
    let closed_rounds: Vec<&RoundInfo> = rounds
        .iter()
        .filter(|r| r.status == RoundStatus::Closed)
        .collect();
    let context = model.transformer().map_or(0, |c| c.context as u64);
    let summary = DemoSummary {
        database: match args.db.as_deref() {
            Some(url) if !url.starts_with("sqlite:") => "postgres",
            _ => "sqlite",
        },
        blobs: blobs.describe(),
        replicas,
        leaders: closed_rounds.iter().map(|r| r.led_by.clone()).collect(),
        killed_leader,
        dataset: spec.dataset.clone(),
        model: spec.model,
        val_loss: text.as_ref().and(last.and_then(|r| r.test_loss)),
        val_loss_per_round: text.as_ref().map(|_| {
            closed_rounds
                .iter()
                .map(|r| r.test_loss.unwrap_or(f64::NAN))
                .collect()
        }),
        tokens_trained: text.as_ref().map(|_| {
            updates
                .iter()
                .filter(|u| u.status == UpdateStatus::Accepted)
                .map(|u| u64::from(u.steps) * u64::from(spec.batch) * context)
                .sum()
        }),
        sample_before: text.as_ref().map(|t| t.0.clone()),
        sample: text.as_ref().map(|t| t.1.clone()),
        val_loss_before: text.as_ref().map(|t| t.2),
        update_bytes: funetun_core::encode(&space.zeros()).len() as u64,
        full_update_bytes: space
            .lora()
            .map(|_| funetun_core::encode(&model.zeros()).len() as u64),
        rounds: rounds
            .iter()
            .filter(|r| r.status == RoundStatus::Closed)
            .count() as u64,
        test_accuracy: last.and_then(|r| r.test_accuracy).unwrap_or(0.0),
        test_loss: last.and_then(|r| r.test_loss).unwrap_or(f64::NAN),
        accuracy_per_round: rounds
            .iter()
            .filter(|r| r.status == RoundStatus::Closed)
            .map(|r| r.test_accuracy.unwrap_or(0.0))
            .collect(),
        round_seconds,
        merged_per_round,
        sync: spec.sync,
        updates_accepted: updates
            .iter()
            .filter(|u| u.status == UpdateStatus::Accepted)
            .count() as u64,
        updates_rejected: updates
            .iter()
            .filter(|u| u.status == UpdateStatus::Rejected)
            .count() as u64,
        updates_replayed: updates.iter().filter(|u| u.replay).count() as u64,
        deposit_wei: deposit.to_string(),
        paid_wei: books.paid.to_string(),
        validators_paid_wei: books.validators_paid.to_string(),
        validation_reward_wei: spec.validation_reward_wei()?.to_string(),
        slashed_wei: books.slashed_in.to_string(),
        remaining_wei: books.remaining.to_string(),
        conservation_holds,
        final_hash,
        onchain_final_hash,
        wall_seconds: started.elapsed().as_secs_f64(),
        training_seconds,
        gas_used,
        init_seed: spec.seed,
        initial_hash,
        init: spec.init,
        checkpoints_dir: out.join("checkpoints"),
        job_id,
        rpc_url: rpc_url.to_string(),
        contract: ledger.contract(),
        participants,
        forged_submitted,
        forged_caught,
        forged_paid,
        detection_rate: (forged_submitted > 0)
            .then(|| forged_caught as f64 / forged_submitted as f64),
        honest_rejected: all_rejected - forged_caught,
        validator_replay_steps,
        trainer_steps,
        verification_ratio: if trainer_steps == 0 {
            0.0
        } else {
            validator_replay_steps as f64 / trainer_steps as f64
        },
        challenger_replay_steps: steps_of(Role::Challenger),
    };
    funetun_dashboard::charts::write_round_charts(&out.join("curves.svg"), rounds)
        .with_context(|| format!("writing {}", out.join("curves.svg").display()))?;
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    Ok(summary)
}

/// What θ₀ and the final weights write after a newline (seeded by the
/// job's seed, as the orchestrator's per-round samples are), and θ₀'s
/// validation loss measured as the orchestrator measures each round's.
fn text_samples(
    args: &DemoArgs,
    spec: &JobSpec,
    job_id: u64,
    data: &Dataset,
    initial: &[f32],
    final_weights: &[f32],
) -> anyhow::Result<(String, String, f64)> {
    let model = spec.model()?;
    let compute = funetun_ml::Compute::new(args.threads)?;
    let sampling = funetun_ml::generate::Sampling {
        tokens: 300,
        seed: spec.seed,
        ..Default::default()
    };
    let write = |params: &[f32]| {
        crate::generate::sample_text(model, params, data, "\n", &sampling, &compute)
    };
    let info = funetun_orchestrator::state::JobInfo::resolve(job_id, spec.clone(), 1, Vec::new())
        .map_err(|e| anyhow::anyhow!("the job's spec: {e}"))?;
    let before = funetun_orchestrator::rounds::evaluate(&info, initial, data, &compute)?;
    Ok((write(initial)?, write(final_weights)?, before.loss))
}

/// The job's data set: built in, or uploaded (read back from the
/// orchestrator's blob store, as the orchestrator reads it). Blocking.
fn load_job_data(args: &DemoArgs, blobs: &BlobStore, spec: &JobSpec) -> anyhow::Result<Dataset> {
    if spec.dataset.blobs().is_empty() {
        return Ok(Dataset::load(
            &spec.dataset,
            &LoadOptions {
                data_dir: args.data_dir.as_deref(),
                download: !args.offline,
                progress: None,
            },
        )?);
    }
    Ok(Dataset::from_blobs(&spec.dataset, |hash| {
        blobs
            .get_blocking(hash)
            .map_err(|e| funetun_ml::Error::DataUnavailable(e.to_string()))?
            .map(Vec::from)
            .ok_or_else(|| funetun_ml::Error::DataUnavailable(format!("blob {hash} is missing")))
    })?)
}

/// The model's weights at checkpoint 0: the owner's (`init`, also a LoRA
/// job's frozen model) or θ₀ drawn from the seed.
fn initial_weights(
    blobs: &BlobStore,
    spec: &JobSpec,
    model: funetun_ml::Model,
) -> anyhow::Result<funetun_core::TensorSet> {
    match spec.init {
        Some(hash) => {
            let bytes = blobs.get_blocking(hash)?.with_context(|| {
                format!("the initial checkpoint {hash} is not in the blob store")
            })?;
            Ok(model.decode(&bytes)?)
        }
        None => Ok(model.init(spec.seed)),
    }
}

fn print_summary(s: &DemoSummary, rounds: &[RoundInfo]) {
    let wei = |t: &str| format_eth(U256::from_str_radix(t, 10).unwrap_or_default());
    eprintln!();
    let text = s.val_loss.is_some();
    let (loss_head, acc_head) = if text {
        ("val loss", "perplexity")
    } else {
        ("test loss", "accuracy")
    };
    eprintln!(
        "{:>5}  {:>9}  {:>8}  {:>8}  {:>8}  {:>9}  {:>10}",
        "round", "submitted", "replayed", "accepted", "rejected", loss_head, acc_head
    );
    for r in rounds.iter().filter(|r| r.status == RoundStatus::Closed) {
        let loss = r.test_loss.unwrap_or(f64::NAN);
        eprintln!(
            "{:>5}  {:>9}  {:>8}  {:>8}  {:>8}  {:>9.4}  {:>10}",
            r.round,
            r.submitted,
            r.replayed,
            r.accepted,
            r.rejected,
            loss,
            if text {
                format!("{:.2}", loss.exp())
            } else {
                format!("{:.2}%", r.test_accuracy.unwrap_or(0.0) * 100.0)
            }
        );
    }
    if let (Some(before), Some(after)) = (&s.sample_before, &s.sample) {
        eprintln!();
        eprintln!(
            "checkpoint 0 writes (val loss {:.4}):\n{}\n",
            s.val_loss_before.unwrap_or(f64::NAN),
            before.trim_end()
        );
        eprintln!(
            "the final checkpoint writes (val loss {:.4}, {} tokens trained):\n{}",
            s.val_loss.unwrap_or(f64::NAN),
            s.tokens_trained.unwrap_or(0),
            after.trim_end()
        );
    }
    if let Some(full) = s.full_update_bytes {
        eprintln!(
            "LoRA: an update weighs {} bytes; a dense update of the same model {full} bytes ({:.1}x smaller)",
            s.update_bytes,
            full as f64 / s.update_bytes.max(1) as f64
        );
    }
    eprintln!();
    eprintln!(
        "{:<44}  {:<10}  {:<14}  {:>8}  {:>8}  {:>12}  {:>12}  {:>10}",
        "participant", "role", "attack", "accepted", "rejected", "paid", "slashed", "reputation"
    );
    for p in &s.participants {
        eprintln!(
            "{:<44}  {:<10}  {:<14}  {:>8}  {:>8}  {:>12}  {:>12}  {:>10.0}",
            p.address.to_string(),
            p.role,
            p.attack.as_deref().unwrap_or("-"),
            p.accepted,
            p.rejected,
            wei(&p.paid_wei),
            wei(&p.slashed_wei),
            p.reputation
        );
    }
    if !s.sync.is_sync() || s.participants.iter().any(|p| p.slow) {
        eprintln!();
        eprintln!(
            "{} rounds; per trainer: busy, idle, waiting to submit, utilisation, staleness of each merged update",
            s.sync
        );
        for p in s.participants.iter().filter(|p| p.role == Role::Trainer) {
            let staleness: Vec<String> = p.staleness.iter().map(u64::to_string).collect();
            eprintln!(
                "  {}{}: busy {:.1} s, idle {:.1} s, waiting {:.1} s, utilisation {:.2}, staleness [{}]",
                p.address,
                if p.slow { " (slow)" } else { "" },
                p.busy_seconds,
                p.idle_seconds,
                p.wait_seconds,
                p.utilization,
                staleness.join(", ")
            );
        }
    }
    if s.forged_submitted > 0 {
        eprintln!(
            "forged updates: {} submitted, {} caught, {} paid — detection rate {:.1}%; honest updates rejected: {}",
            s.forged_submitted,
            s.forged_caught,
            s.forged_paid,
            s.detection_rate.unwrap_or(0.0) * 100.0,
            s.honest_rejected
        );
    }
    if s.participants.iter().any(|p| p.role == Role::Validator) {
        eprintln!(
            "validators: paid {} from the deposit ({} to each validator of a deciding quorum); \
             their stake backs their votes, and a vote on the losing side is slashed",
            wei(&s.validators_paid_wei),
            wei(&s.validation_reward_wei)
        );
    }
    eprintln!(
        "verification: validators replayed {} training steps for the {} trained (ratio {:.3}: \
         every new trainer's first update, then a sample; docs/security.md){}",
        s.validator_replay_steps,
        s.trainer_steps,
        s.verification_ratio,
        if s.challenger_replay_steps > 0 {
            format!("; challengers {} steps", s.challenger_replay_steps)
        } else {
            String::new()
        }
    );
    eprintln!();
    eprintln!(
        "{} on {}: test accuracy {:.2}% after {} rounds; updates {} accepted, {} rejected, {} replayed",
        s.model,
        s.dataset,
        s.test_accuracy * 100.0,
        s.rounds,
        s.updates_accepted,
        s.updates_rejected,
        s.updates_replayed
    );
    eprintln!(
        "money: deposit {}, paid {}, slashed into the job {}, remaining {} (conservation {})",
        wei(&s.deposit_wei),
        wei(&s.paid_wei),
        wei(&s.slashed_wei),
        wei(&s.remaining_wei),
        if s.conservation_holds {
            "holds"
        } else {
            "BROKEN"
        }
    );
    eprintln!(
        "final weights {} ({} the on-chain hash); gas used {}; wall time {:.1}s (training {:.1}s)",
        s.final_hash,
        if s.final_hash == s.onchain_final_hash {
            "matches"
        } else {
            "DOES NOT MATCH"
        },
        s.gas_used,
        s.wall_seconds,
        s.training_seconds
    );
    eprintln!(
        "wrote {}/final.safetensors, checkpoints/, curves.svg, summary.json; logs in {}/logs/",
        s.checkpoints_dir
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        s.checkpoints_dir
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
}

/// What `funetun bench demo` prints.
#[derive(Debug, Serialize)]
pub struct DemoBench {
    /// The demo's training time (job creation to the final checkpoint,
    /// committed and evaluated).
    pub demo_seconds: f64,
    /// The same tasks, trained one after another in this process with every
    /// core and merged by the job's rule, without chain, HTTP or validation,
    /// then the final weights evaluated on the test split (as the demo's
    /// clock ends with the final checkpoint's evaluation).
    pub local_seconds: f64,
    /// demo / local.
    pub ratio: f64,
    /// CPU seconds (user + system) the demo spent: this process (chain,
    /// orchestrator, evaluations) and every participant process.
    pub demo_cpu_seconds: Option<f64>,
    /// CPU seconds of the local run.
    pub local_cpu_seconds: Option<f64>,
    /// demo CPU seconds / cores / local seconds: the ratio the demo could
    /// not beat on this machine however well its work overlapped (its
    /// training, checks, evaluations and services all on these cores).
    pub cpu_floor_ratio: Option<f64>,
    /// The demo's whole wall time, start-up and summary included.
    pub demo_wall_seconds: f64,
    /// Test accuracy the demo reached.
    pub demo_accuracy: f64,
    /// Test accuracy the local run reached.
    pub local_accuracy: f64,
    /// Threads of the local run.
    pub local_threads: usize,
}

/// Runs `funetun bench demo`.
pub fn bench(args: DemoArgs) -> anyhow::Result<()> {
    let runtime = crate::chain::runtime()?;
    let cpu = crate::train::cpu_seconds;
    let before = cpu();
    let summary = runtime.block_on(run_demo(&args))?;
    // The participants have exited and were reaped: their CPU time is in
    // the children's account.
    let after_demo = cpu();
    let spec: JobSpec = {
        let text = std::fs::read(args.out.join("job.toml"))?;
        JobSpec::from_bytes(&text)?
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (local_seconds, local_accuracy) = local_run(&spec, &args, threads)?;
    let after_local = cpu();
    let demo_cpu_seconds = before
        .zip(after_demo)
        .map(|((s0, c0), (s1, c1))| (s1 - s0) + (c1 - c0));
    let local_cpu_seconds = after_demo
        .zip(after_local)
        .map(|((s0, _), (s1, _))| s1 - s0);
    let report = DemoBench {
        demo_seconds: summary.training_seconds,
        local_seconds,
        ratio: summary.training_seconds / local_seconds,
        demo_cpu_seconds,
        local_cpu_seconds,
        cpu_floor_ratio: demo_cpu_seconds.map(|c| c / threads as f64 / local_seconds),
        demo_wall_seconds: summary.wall_seconds,
        demo_accuracy: summary.test_accuracy,
        local_accuracy,
        local_threads: threads,
    };
    eprintln!(
        "demo {:.2} s ({:.2}% accuracy) vs local {:.2} s ({:.2}%, {threads} threads): ratio {:.2}",
        report.demo_seconds,
        report.demo_accuracy * 100.0,
        report.local_seconds,
        report.local_accuracy * 100.0,
        report.ratio
    );
    if let (Some(demo), Some(local), Some(floor)) = (
        report.demo_cpu_seconds,
        report.local_cpu_seconds,
        report.cpu_floor_ratio,
    ) {
        eprintln!(
            "CPU: demo {demo:.1} s vs local {local:.1} s; on {threads} cores the demo cannot \
             take less than {:.2} s, a ratio of {floor:.2}",
            demo / threads as f64
        );
    }
    print_json(&report)
}

/// Compute threads of each demo validator, at most (trainers get one).
const VALIDATOR_THREADS: usize = 2;

/// The demo's `stale:S` buffer: `--buffer`, else the trainers that are not
/// `--slow` (at least 1, at most `shards`).
fn stale_buffer(args: &DemoArgs, shards: u32) -> u32 {
    args.buffer
        .unwrap_or_else(|| (args.trainers.saturating_sub(args.slow).max(1) as u32).min(shards))
}

/// Arguments of `funetun bench sync`.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncBenchArgs {
    #[command(flatten)]
    demo: DemoArgs,
    /// The test accuracy whose time is compared.
    #[arg(long, default_value_t = 0.97)]
    target: f64,
    /// The policy compared with `sync`.
    #[arg(long, default_value = "stale:2")]
    stale: funetun_core::sync::SyncPolicy,
}

/// What `funetun bench sync` prints.
#[derive(Debug, Serialize)]
struct SyncBench {
    /// The test accuracy timed.
    target: f64,
    /// The policy compared.
    stale: funetun_core::sync::SyncPolicy,
    /// Seconds from the job's start until a checkpoint reached `target`
    /// under `sync` (none: it never did).
    sync_seconds: Option<f64>,
    /// The same under the stale policy.
    stale_seconds: Option<f64>,
    /// `stale_seconds / sync_seconds`.
    ratio: Option<f64>,
    /// Mean trainer utilisation (busy over training time) under each.
    sync_utilization: f64,
    /// See `sync_utilization`.
    stale_utilization: f64,
    /// Test accuracy under each after `merged_updates` merged updates (the
    /// final checkpoint under `sync`), and stale minus sync.
    sync_accuracy: f64,
    /// See `sync_accuracy`.
    stale_accuracy: f64,
    /// `stale_accuracy − sync_accuracy`.
    accuracy_delta: f64,
    /// Updates merged under `sync`; the stale job runs at least the rounds
    /// its buffer needs to merge as many, and `stale_accuracy` is its
    /// checkpoint's at the first round by which it merged as many, so both
    /// accuracies are after the same training work.
    merged_updates: u64,
    /// Updates the stale job had merged by the checkpoint of
    /// `stale_accuracy`.
    stale_merged_updates: u64,
    /// Rounds run under `sync`.
    rounds: u64,
    /// Rounds run under the stale policy.
    stale_rounds: u64,
    /// The stale policy's test accuracy after `rounds` rounds (fewer
    /// merged updates).
    stale_accuracy_same_rounds: Option<f64>,
    /// The whole jobs' training seconds.
    sync_training_seconds: f64,
    /// See `rounds`.
    stale_training_seconds: f64,
}

/// Runs `funetun bench sync`.
pub fn bench_sync(args: SyncBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.stale.is_sync(),
        "--stale must be a stale:S policy to compare with sync"
    );
    let mut base = args.demo.clone();
    base.slow = base.slow.max(1);
    base.rounds = base.rounds.or(Some(8));
    let runtime = crate::chain::runtime()?;
    let run = |policy, rounds: u64, sub: &str| -> anyhow::Result<DemoSummary> {
        let mut a = base.clone();
        a.sync = Some(policy);
        a.rounds = Some(u32::try_from(rounds).context("too many rounds")?);
        a.out = base.out.join(sub);
        eprintln!(
            "bench sync: the demo under {policy}, {rounds} rounds, output in {}",
            a.out.display()
        );
        runtime.block_on(run_demo(&a))
    };
    let rounds = u64::from(base.rounds.unwrap_or(8));
    let sync = run(funetun_core::sync::SyncPolicy::Sync, rounds, "sync")?;
    // As many merged updates under both policies.
    let merged_updates: u64 = sync
        .participants
        .iter()
        .map(|p| p.staleness.len() as u64)
        .sum();
    let shards =
        JobSpec::from_bytes(&std::fs::read(base.out.join("sync").join("job.toml"))?)?.shards;
    let stale_rounds = merged_updates
        .div_ceil(u64::from(stale_buffer(&base, shards).max(1)))
        .max(1);
    let stale = run(args.stale, stale_rounds, "stale")?;
    let time_to = |s: &DemoSummary| {
        s.accuracy_per_round
            .iter()
            .zip(&s.round_seconds)
            .find(|(a, _)| **a >= args.target)
            .map(|(_, t)| *t)
    };
    let utilization = |s: &DemoSummary| {
        let trainers: Vec<f64> = s
            .participants
            .iter()
            .filter(|p| p.role == Role::Trainer)
            .map(|p| p.utilization)
            .collect();
        trainers.iter().sum::<f64>() / trainers.len().max(1) as f64
    };
    let (sync_seconds, stale_seconds) = (time_to(&sync), time_to(&stale));
    // The stale checkpoint after as much work as the synchronous job did.
    let (stale_accuracy, stale_merged_updates) = {
        let mut merged = 0;
        let at = stale.merged_per_round.iter().position(|&n| {
            merged += n;
            merged >= merged_updates
        });
        match at.and_then(|i| stale.accuracy_per_round.get(i)) {
            Some(&accuracy) => (accuracy, merged),
            None => (stale.test_accuracy, merged),
        }
    };
    let report = SyncBench {
        target: args.target,
        stale: args.stale,
        sync_seconds,
        stale_seconds,
        ratio: sync_seconds.zip(stale_seconds).map(|(a, b)| b / a),
        sync_utilization: utilization(&sync),
        stale_utilization: utilization(&stale),
        sync_accuracy: sync.test_accuracy,
        stale_accuracy,
        accuracy_delta: stale_accuracy - sync.test_accuracy,
        merged_updates,
        stale_merged_updates,
        rounds: sync.rounds,
        stale_rounds: stale.rounds,
        stale_accuracy_same_rounds: stale
            .accuracy_per_round
            .get((rounds as usize).saturating_sub(1))
            .copied(),
        sync_training_seconds: sync.training_seconds,
        stale_training_seconds: stale.training_seconds,
    };
    let secs = |s: Option<f64>| s.map_or("never".into(), |s| format!("{s:.1} s"));
    eprintln!(
        "to {:.1}% accuracy: sync {}, {} {} (ratio {}); utilisation {:.2} vs {:.2}; accuracy after {merged_updates} merged updates {:.2}% ({} rounds) vs {:.2}% ({stale_merged_updates} merged; {} rounds run)",
        args.target * 100.0,
        secs(sync_seconds),
        args.stale,
        secs(stale_seconds),
        report.ratio.map_or("n/a".into(), |r| format!("{r:.2}")),
        report.sync_utilization,
        report.stale_utilization,
        sync.test_accuracy * 100.0,
        sync.rounds,
        stale_accuracy * 100.0,
        stale.rounds
    );
    print_json(&report)
}

/// Trains the spec's tasks (every shard, every round, the task seeds the
/// orchestrator uses) one after another, merges them by the spec's rule and
/// evaluates the result; returns the seconds all that took and the accuracy.
fn local_run(spec: &JobSpec, args: &DemoArgs, threads: usize) -> anyhow::Result<(f64, f64)> {
    let model = spec.model()?;
    let name = spec.dataset.clone();
    let data = Dataset::load(
        &name,
        &LoadOptions {
            data_dir: args.data_dir.as_deref(),
            download: !args.offline,
            progress: None,
        },
    )?;
    let compute = funetun_ml::Compute::new(threads)?;
    let optimizer: funetun_ml::OptimizerKind = spec.optimizer.parse()?;
    let rule: funetun_aggregate::Rule = spec.aggregation.parse()?;
    let exec = funetun_aggregate::Exec::with_threads(threads)?;
    let started = Instant::now();
    let mut theta = model.init(spec.seed);
    for round in 0..u64::from(spec.rounds) {
        let mut deltas = Vec::new();
        for shard in 0..spec.shards {
            let task = funetun_ml::TaskSpec {
                model,
                shard: shard as usize,
                shards: spec.shards as usize,
                steps: spec.steps as usize,
                batch: spec.batch as usize,
                lr: spec.lr,
                optimizer,
                schedule: spec.lr_schedule.parse()?,
                step0: round * u64::from(spec.steps),
                grad_clip: spec.grad_clip,
                seed: funetun_orchestrator::scheduler::task_seed(spec.seed, round, shard),
                lora: None,
            };
            let out = funetun_ml::train_task(&theta, &data, &task, &compute, &mut |_| {})?;
            deltas.push(out.delta.to_flat());
        }
        let inputs: Vec<&[f32]> = deltas.iter().map(|d| d.as_slice()).collect();
        let merged = rule.aggregate(&inputs, &funetun_aggregate::Options::default(), &exec)?;
        let flat: Vec<f32> = theta
            .to_flat()
            .iter()
            .zip(&merged.output)
            .map(|(t, d)| t + d)
            .collect();
        theta = theta.from_flat_like(&flat)?;
    }
    let eval = funetun_ml::evaluate(model, &theta.to_flat(), &data, &data.test, None, &compute)?;
    Ok((started.elapsed().as_secs_f64(), eval.accuracy))
}
