//! `funetun job create | status | download | withdraw`: the job owner's
//! commands.

use std::path::PathBuf;

use alloy_primitives::{Address, B256, U256};
use anyhow::Context as _;
use funetun_chain::bindings::job_status;
use funetun_chain::ledger::NewJob;
use funetun_chain::{Ledger, LedgerConfig, keys};

use crate::keys::KeyArgs;
use funetun_client::Client;
use funetun_client::anchored::{AnchorProblem, Which, fetch_checkpoints};
use funetun_core::JobSpec;
use funetun_core::amount::{format_eth, parse_amount};
use funetun_ml::Architecture as _;
use serde::Serialize;

use crate::chain::runtime;
use crate::output::{print_json, write_atomic};
use funetun_core::protocol::RoundStatus;
use std::time::Duration;

/// Subcommands of `funetun job`.
#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// Upload a job spec and lock its deposit on-chain (`createJob`).
    Create(CreateArgs),
    /// Rounds, accuracy, updates and money of a job.
    Status(StatusArgs),
    /// Download the job's latest checkpoint, checked against its on-chain hash.
    Download(DownloadArgs),
    /// Take back the deposit that was not paid out (`withdrawUnusedFunds`; closes the job).
    Withdraw(WithdrawJobArgs),
}

/// Orchestrator and chain, for the owner.
#[derive(Debug, Clone, clap::Args)]
pub struct OwnerArgs {
    /// Base URL of the orchestrator; the URLs of its replicas separated by
    /// commas to fail over between them.
    #[arg(
        long,
        env = "FUNETUN_ORCHESTRATOR",
        default_value = "http://127.0.0.1:8080"
    )]
    pub orchestrator: String,
    /// Ethereum JSON-RPC endpoint.
    #[arg(long, env = "FUNETUN_RPC", default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    /// The JobManager contract (default: the one the orchestrator serves).
    #[arg(long, env = "FUNETUN_CONTRACT")]
    pub contract: Option<Address>,
    /// Print one JSON line as the last stdout line.
    #[arg(long, env = "FUNETUN_JSON")]
    pub json: bool,
}

/// Arguments of `funetun job create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    owner: OwnerArgs,
    /// The job spec (TOML), e.g. examples/mnist-mlp.toml.
    #[arg(long)]
    spec: PathBuf,
    /// Deposit, e.g. `1.5eth`; must cover at least one base reward.
    #[arg(long)]
    deposit: String,
    #[command(flatten)]
    key: KeyArgs,
    /// The job's leader (default: the orchestrator's address).
    #[arg(long)]
    leader: Option<Address>,
    /// The owner's data set, uploaded and named in the spec by hash: a
    /// UTF-8 text file, a folder of them, or `IMAGES,LABELS` (an IDX pair).
    #[arg(long, value_name = "PATH")]
    data: Option<PathBuf>,
    /// How the uploaded text becomes tokens: `char`, `byte`, or a Hugging
    /// Face `tokenizer.json` (default: the spec's text data set's, else char).
    #[arg(long, value_name = "char|byte|FILE")]
    tokenizer: Option<String>,
    /// An initial checkpoint in the model's layout (canonical safetensors,
    /// as `job download` writes): round 0 starts from it.
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
}

/// Arguments of `funetun job status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The job id.
    id: u64,
    #[command(flatten)]
    owner: OwnerArgs,
    /// Wait until the job is over (finished, closed or refused), printing a
    /// line per round as it closes, then print the status.
    #[arg(long)]
    wait: bool,
}

/// Arguments of `funetun job download`.
#[derive(Debug, clap::Args)]
pub struct DownloadArgs {
    /// The job id.
    id: u64,
    #[command(flatten)]
    owner: OwnerArgs,
    /// Where to write the checkpoint (canonical safetensors; a LoRA job's
    /// checkpoints are its adapters).
    #[arg(long, required_unless_present = "hf")]
    out: Option<PathBuf>,
    /// Also (or instead) write a Hugging Face model directory:
    /// `model.safetensors`, `config.json` and the job's `tokenizer.json`,
    /// loadable by `transformers`' `from_pretrained` (transformers only).
    /// A LoRA job's model is written merged, and its adapters in PEFT's
    /// layout in `DIR/adapter`.
    #[arg(long, value_name = "DIR")]
    hf: Option<PathBuf>,
}

/// Arguments of `funetun job withdraw`.
#[derive(Debug, clap::Args)]
pub struct WithdrawJobArgs {
    /// The job id.
    id: u64,
    #[command(flatten)]
    owner: OwnerArgs,
    #[command(flatten)]
    key: KeyArgs,
}

/// Checks the names in a spec against the models, data sets, optimizers and
/// rules this build knows, naming the field and the choices.
pub fn check_spec_names(spec: &JobSpec) -> anyhow::Result<()> {
    // `model` and `dataset` are typed: parsing the spec checked them.
    spec.optimizer
        .parse::<funetun_ml::OptimizerKind>()
        .map_err(|e| anyhow::anyhow!("job spec: `optimizer` {e}"))?;
    spec.lr_schedule
        .parse::<funetun_ml::optim::Schedule>()
        .map_err(|e| anyhow::anyhow!("job spec: `lr_schedule` {e}"))?;
    let rule = spec
        .aggregation
        .parse::<funetun_aggregate::Rule>()
        .map_err(|e| anyhow::anyhow!("job spec: `aggregation` {e}"))?;
    rule.check_params()
        .map_err(|e| anyhow::anyhow!("job spec: `aggregation` {e}"))?;
    funetun_orchestrator::state::rule_fits_rounds(&rule, spec)
        .map_err(|e| anyhow::anyhow!("job spec: {e}"))?;
    let outer = spec
        .outer_optimizer
        .parse::<funetun_aggregate::Outer>()
        .map_err(|e| anyhow::anyhow!("job spec: `outer_optimizer` {e}"))?;
    outer
        .check_params()
        .map_err(|e| anyhow::anyhow!("job spec: `outer_optimizer` {e}"))?;
    funetun_orchestrator::state::outer_fits_sync(&outer, spec)
        .map_err(|e| anyhow::anyhow!("job spec: {e}"))?;
    if let Some(lora) = &spec.lora {
        funetun_ml::Space::new(spec.model()?, Some(lora))
            .map_err(|e| anyhow::anyhow!("job spec: {e}"))?;
    }
    Ok(())
}

/// Reads and fully checks a spec file; returns the spec and its bytes.
pub fn read_spec(path: &std::path::Path) -> anyhow::Result<(JobSpec, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let spec = JobSpec::from_bytes(&bytes).with_context(|| format!("in {}", path.display()))?;
    check_spec_names(&spec).with_context(|| format!("in {}", path.display()))?;
    Ok((spec, bytes))
}

/// A ledger for reading only (any key will do for views).
pub async fn reader(rpc: &str, contract: Address) -> anyhow::Result<Ledger> {
    Ok(Ledger::connect(rpc, contract, keys::new_key(), LedgerConfig::default()).await?)
}

pub async fn contract_of(owner: &OwnerArgs, client: &Client) -> anyhow::Result<Address> {
    match owner.contract {
        Some(c) => Ok(c),
        None => Ok(client
            .info()
            .await
            .context("asking the orchestrator which contract it serves (or pass --contract)")?
            .contract),
    }
}

/// What `job create` prints.
#[derive(Debug, Serialize)]
pub struct Created {
    /// The new job's id.
    pub job_id: u64,
    /// keccak256 of the spec blob.
    pub spec_hash: B256,
    /// The `createJob` transaction.
    pub tx_hash: B256,
    /// The deposit in wei.
    pub deposit_wei: String,
}

/// Uploads the spec and calls `createJob`; shared by `job create` and the demo.
pub async fn create_job(
    client: &Client,
    ledger: &Ledger,
    spec: &JobSpec,
    spec_bytes: Vec<u8>,
    deposit: U256,
    leader: Address,
) -> anyhow::Result<Created> {
    let base_reward = spec.base_reward_wei()?;
    anyhow::ensure!(
        deposit >= base_reward,
        "--deposit {} does not cover one base reward of {}",
        format_eth(deposit),
        format_eth(base_reward)
    );
    let spec_hash = client
        .put_spec(spec_bytes)
        .await
        .context("uploading the spec")?;
    let (job_id, outcome) = ledger
        .create_job(&NewJob {
            spec_hash,
            leader,
            base_reward,
            bonus_reward: spec.bonus_reward_wei()?,
            validation_reward: spec.validation_reward_wei()?,
            rounds: spec.rounds,
            quorum: spec.validation.quorum,
            challenge_window: spec.validation.challenge_window_secs,
            deposit,
        })
        .await
        .context("createJob")?;
    Ok(Created {
        job_id: job_id.saturating_to(),
        spec_hash,
        tx_hash: outcome.tx_hash,
        deposit_wei: deposit.to_string(),
    })
}

/// Runs `funetun job …`.
pub fn run(cmd: JobCommand) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        match cmd {
            JobCommand::Create(args) => create(args).await,
            JobCommand::Status(args) => status(args).await,
            JobCommand::Download(args) => download(args).await,
            JobCommand::Withdraw(args) => withdraw(args).await,
        }
    })
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let files = crate::upload::OwnerFiles {
        data: args.data.clone(),
        tokenizer: args.tokenizer.clone(),
        init: args.init.clone(),
    };
    let with_files = files.data.is_some() || files.init.is_some() || files.tokenizer.is_some();
    let (mut spec, bytes) = if with_files {
        let text = std::fs::read_to_string(&args.spec)
            .with_context(|| format!("reading {}", args.spec.display()))?;
        let spec =
            JobSpec::parse_toml(&text).with_context(|| format!("in {}", args.spec.display()))?;
        (spec, Vec::new())
    } else {
        read_spec(&args.spec)?
    };
    let deposit = parse_amount(&args.deposit).map_err(|e| anyhow::anyhow!("--deposit: {e}"))?;
    let key = args.key.signer()?;
    args.key.warn_if_exposed(&args.owner.rpc).await;
    let client = Client::new(&args.owner.orchestrator, Some(key.clone()));
    let (contract, leader) = match (args.owner.contract, args.leader) {
        (Some(c), Some(l)) => (c, l),
        (c, l) => {
            let info = client.info().await.context(
                "asking the orchestrator for its address (or pass --contract and --leader)",
            )?;
            (c.unwrap_or(info.contract), l.unwrap_or(info.leader))
        }
    };
    let ledger = Ledger::connect(&args.owner.rpc, contract, key, LedgerConfig::default()).await?;
    let bytes = if with_files {
        let uploaded = crate::upload::attach(&client, &mut spec, &files)
            .await
            .with_context(|| format!("in {}", args.spec.display()))?;
        crate::upload::announce(&uploaded);
        spec.to_toml().into_bytes()
    } else {
        bytes
    };
    let created = create_job(&client, &ledger, &spec, bytes, deposit, leader).await?;
    eprintln!(
        "job {} created: {} rounds of {} on {}, deposit {} (tx {})",
        created.job_id,
        spec.rounds,
        spec.model,
        spec.dataset,
        format_eth(deposit),
        created.tx_hash
    );
    if args.owner.json {
        print_json(&created)?;
    }
    Ok(())
}

/// Why the orchestrator does not know a job, from the chain.
enum Unknown {
    /// The orchestrator leads it but has not taken it up yet (just created).
    NotSeenYet(anyhow::Error),
    /// It does not exist, another orchestrator leads it, or the chain
    /// cannot say.
    Other(anyhow::Error),
}

/// Why the orchestrator does not know job `id`, from the chain: it does
/// not exist, another orchestrator leads it, or this one has not taken it
/// up yet. `error` when the chain cannot say.
async fn unknown_job(
    owner: &OwnerArgs,
    client: &Client,
    id: u64,
    error: funetun_client::ClientError,
) -> Unknown {
    let explained = async {
        let contract = contract_of(owner, client).await?;
        let ledger = reader(&owner.rpc, contract).await?;
        let count: u64 = ledger.job_count().await?.saturating_to();
        if id == 0 || id > count {
            let ids = match count {
                0 => "it has no job yet".to_string(),
                1 => "its only job is 1".to_string(),
                n => format!("its jobs are 1 to {n}"),
            };
            return anyhow::Ok(Unknown::Other(anyhow::anyhow!(
                "job {id} does not exist on the contract {contract} at {} ({ids})",
                owner.rpc
            )));
        }
        let leader = ledger.job(U256::from(id)).await?.leader;
        if client.info().await?.leader == leader {
            return anyhow::Ok(Unknown::NotSeenYet(anyhow::anyhow!(
                "job {id} names the orchestrator at {} as its leader, but it has not taken it up \
                 yet (it was just created, or the orchestrator lags behind the chain); try again \
                 in a few seconds, or wait with `job status {id} --wait`",
                owner.orchestrator
            )));
        }
        anyhow::Ok(Unknown::Other(anyhow::anyhow!(
            "job {id} exists, but the orchestrator at {} does not lead it: its leader is {leader}; \
             pass that orchestrator's URL as --orchestrator",
            owner.orchestrator
        )))
    };
    explained
        .await
        .unwrap_or_else(|_| Unknown::Other(error.into()))
}

/// The orchestrator's view of job `id`, or why it has none.
async fn job_detail(
    owner: &OwnerArgs,
    client: &Client,
    id: u64,
) -> anyhow::Result<funetun_core::api::JobDetail> {
    match client.job(id).await {
        Ok(job) => Ok(job),
        Err(e) if e.code() == Some("unknown_job") => {
            match unknown_job(owner, client, id, e).await {
                Unknown::NotSeenYet(why) | Unknown::Other(why) => Err(why),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Seconds a round may be open with nothing leased, or leased with nothing
/// reported, before `job status` points at it.
const STALL_SECS: u64 = 30;

/// Failures reported within this many seconds are quoted by `job status`.
const RECENT_FAILURE_SECS: u64 = 600;

/// Failures quoted by `job status`, at most.
const FAILURES_QUOTED: usize = 3;

/// What may be holding a job back, read from its rounds and the failures
/// its trainers reported: no trainer leasing, trainers giving tasks up (in
/// their own words), leased tasks never reported, closed rounds without
/// test metrics (the orchestrator lacks the data set).
fn stall_hints(
    over: bool,
    dataset: &str,
    lease_secs: u64,
    rounds: &[funetun_core::api::RoundInfo],
    failures: &[funetun_core::api::FailureInfo],
    now: u64,
) -> Vec<String> {
    let mut hints = Vec::new();
    let recent: Vec<_> = failures
        .iter()
        .filter(|f| !over && f.last_at + RECENT_FAILURE_SECS >= now)
        .collect();
    for f in recent.iter().take(FAILURES_QUOTED) {
        hints.push(format!(
            "trainer {} gave up {} task(s), the last {} s ago (task {}): {}",
            f.trainer,
            f.count,
            now.saturating_sub(f.last_at),
            f.last_task_id,
            f.reason
        ));
    }
    if recent.len() > FAILURES_QUOTED {
        hints.push(format!(
            "{} more kinds of failure: GET /v1/jobs/{{id}}/failures lists them",
            recent.len() - FAILURES_QUOTED
        ));
    }
    if let Some(open) = rounds.iter().find(|r| r.status == RoundStatus::Open)
        && !over
    {
        let waited = now.saturating_sub(open.opened_at);
        if waited >= STALL_SECS && open.leased == 0 {
            hints.push(format!(
                "round {} has been open {waited} s and no trainer has leased a task: are trainers \
                 running, staked, and pointed at this orchestrator (--orchestrator)?",
                open.round
            ));
        } else if waited >= STALL_SECS + lease_secs && open.submitted == 0 && recent.is_empty() {
            hints.push(format!(
                "round {} has been open {waited} s; {} task(s) leased and none reported: the \
                 trainers are failing, and their logs say why (a trainer without the data set \
                 `{dataset}` logs that it is not found: point FUNETUN_DATA_DIR at it)",
                open.round, open.leased
            ));
        }
    }
    let unevaluated = rounds
        .iter()
        .filter(|r| r.status == RoundStatus::Closed && r.test_loss.is_none())
        .count();
    let closed = rounds
        .iter()
        .filter(|r| r.status == RoundStatus::Closed)
        .count();
    if closed >= 2 && unevaluated == closed {
        hints.push(format!(
            "no closed round has test metrics: the orchestrator does not have the data set \
             `{dataset}` to evaluate on (its --data-dir or FUNETUN_DATA_DIR)"
        ));
    }
    hints
}

/// Waits until job `id` is over, printing each round as it closes. A job
/// the orchestrator has not seen yet (just created) is waited for; one that
/// does not exist, or that another orchestrator leads, is an error.
async fn wait_until_over(owner: &OwnerArgs, client: &Client, id: u64) -> anyhow::Result<()> {
    let mut said = 0usize;
    let mut waiting_said = false;
    // Polls left, once the job is over, for its last evaluations.
    let mut grace: Option<u32> = None;
    loop {
        match client.job(id).await {
            Ok(job) => {
                let rounds = client.rounds(id).await?;
                let closed: Vec<_> = rounds
                    .iter()
                    .filter(|r| r.status == RoundStatus::Closed)
                    .collect();
                if job.summary.status.is_over() && grace.is_none() {
                    grace = Some(20);
                }
                let settled = grace == Some(0);
                for r in closed.iter().skip(said) {
                    let metrics = match r.test_accuracy {
                        Some(a) => format!("test accuracy {:.2}%", a * 100.0),
                        // Evaluation runs while the next round trains.
                        None if !settled => break,
                        None => "no test metrics (the orchestrator has not evaluated it)".into(),
                    };
                    eprintln!(
                        "round {} closed: {} accepted, {metrics}",
                        r.round, r.accepted
                    );
                    said += 1;
                }
                if grace.is_some() && (said == closed.len() || settled) {
                    return Ok(());
                }
                grace = grace.map(|g| g.saturating_sub(1));
            }
            Err(e) if e.code() == Some("unknown_job") => {
                if let Unknown::Other(why) = unknown_job(owner, client, id, e).await {
                    return Err(why);
                }
                if !waiting_said {
                    eprintln!("waiting for the orchestrator to take up job {id}");
                    waiting_said = true;
                }
            }
            Err(e) if e.code() == Some("spec_unavailable") => {}
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.owner.orchestrator, None);
    if args.wait {
        wait_until_over(&args.owner, &client, args.id).await?;
    }
    let job = job_detail(&args.owner, &client, args.id).await?;
    let rounds = client.rounds(args.id).await?;
    let updates = client.updates(args.id).await?;
    let contract = contract_of(&args.owner, &client).await?;
    let chain = reader(&args.owner.rpc, contract)
        .await?
        .job(U256::from(args.id))
        .await?;
    let s = &job.summary;
    eprintln!(
        "job {} `{}`: {} — round {}/{}, {} on {}",
        s.job_id, s.name, s.status, s.round, s.rounds, job.spec.model, job.spec.dataset
    );
    eprintln!(
        "money: deposit {}, paid {}, slashed in {}, remaining {}, withdrawn {}",
        format_eth(chain.deposited),
        format_eth(s.paid_wei),
        format_eth(chain.slashedIn),
        format_eth(chain.remaining),
        format_eth(chain.withdrawn)
    );
    eprintln!(
        "{:>5}  {:>6}  {:>9}  {:>8}  {:>8}  {:>8}  {:>9}  {:>9}",
        "round", "status", "submitted", "replayed", "accepted", "rejected", "test loss", "accuracy"
    );
    for r in &rounds {
        eprintln!(
            "{:>5}  {:>6}  {:>9}  {:>8}  {:>8}  {:>8}  {:>9}  {:>9}",
            r.round,
            r.status,
            r.submitted,
            r.replayed,
            r.accepted,
            r.rejected,
            r.test_loss.map(|l| format!("{l:.4}")).unwrap_or_default(),
            r.test_accuracy
                .map(|a| format!("{:.2}%", a * 100.0))
                .unwrap_or_default()
        );
    }
    eprintln!("{} updates reported", updates.len());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let over = job.summary.status.is_over();
    let dataset = job.spec.dataset.to_string();
    let failures = client.failures(args.id).await?;
    for hint in stall_hints(over, &dataset, job.spec.lease_secs, &rounds, &failures, now) {
        eprintln!("note: {hint}");
    }
    if args.owner.json {
        print_json(&serde_json::json!({
            "job": job,
            "rounds": rounds,
            "chain": {
                "deposited_wei": chain.deposited.to_string(),
                "remaining_wei": chain.remaining.to_string(),
                "slashed_in_wei": chain.slashedIn.to_string(),
                "withdrawn_wei": chain.withdrawn.to_string(),
                "checkpoints": chain.checkpoints,
                "open": chain.status == job_status::ACTIVE,
            },
        }))?;
    }
    Ok(())
}

/// Downloads the latest on-chain checkpoint of a job and checks its hash.
/// Returns (round, hash, bytes).
pub async fn download_latest(
    client: &Client,
    ledger: &Ledger,
    job_id: u64,
) -> anyhow::Result<(u64, B256, Vec<u8>)> {
    let latest = fetch_checkpoints(client, ledger, job_id, Which::Latest)
        .await?
        .map_err(anchor_error)?
        .pop()
        .context("the ledger lists no checkpoint")?;
    Ok((latest.round, latest.hash, latest.bytes))
}

/// One error naming every checkpoint that is not what the chain committed.
pub fn anchor_error(problems: Vec<AnchorProblem>) -> anyhow::Error {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    anyhow::anyhow!(
        "the orchestrator's checkpoints do not match the chain:\n  {}",
        lines.join("\n  ")
    )
}

async fn download(args: DownloadArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.owner.orchestrator, None);
    let spec = job_detail(&args.owner, &client, args.id).await?.spec;
    let contract = contract_of(&args.owner, &client).await?;
    let ledger = reader(&args.owner.rpc, contract).await?;
    let (round, hash, bytes) = download_latest(&client, &ledger, args.id).await?;
    let model = spec.model()?;
    let space = funetun_ml::Space::new(model, spec.lora.as_ref())?;
    let checkpoint = space
        .decode(&bytes)
        .with_context(|| format!("checkpoint {hash} is not a checkpoint of job {}", args.id))?;
    if let Some(out) = &args.out {
        write_atomic(out, &bytes)?;
        eprintln!(
            "checkpoint {round} of job {} ({hash}, matches the chain) written to {}",
            args.id,
            out.display()
        );
    }
    if let Some(dir) = &args.hf {
        let tokenizer = job_tokenizer_json(&client, &spec.dataset).await?;
        let weights = match space.lora() {
            None => checkpoint,
            Some(lora) => {
                let init = spec
                    .init
                    .context("a LoRA job names its frozen model as init")?;
                let frozen = model
                    .decode(&client.get_blob(init).await?)
                    .with_context(|| format!("the frozen model {init} is not a {model}"))?;
                let adapters = dir.join(ADAPTER_DIR);
                funetun_ml::hf::save_adapters(&adapters, lora, &checkpoint)
                    .with_context(|| format!("writing the adapters to {}", adapters.display()))?;
                eprintln!(
                    "the LoRA adapters of checkpoint {round} written in PEFT's layout to {}",
                    adapters.display()
                );
                lora.merge(&frozen, &checkpoint)?
            }
        };
        export_hf(dir, model, &weights, tokenizer.as_deref())?;
        eprintln!(
            "checkpoint {round} of job {} written as a Hugging Face model to {}",
            args.id,
            dir.display()
        );
    }
    if args.owner.json {
        print_json(&serde_json::json!({
            "job_id": args.id,
            "round": round,
            "hash": hash,
            "path": args.out,
            "hf": args.hf,
        }))?;
    }
    Ok(())
}

/// The `tokenizer.json` of a job's text data set: the uploaded one, or the
/// built-in tokenizer written in that format (a `char` vocabulary is the
/// corpus's characters, so the corpus is fetched or found locally).
pub async fn job_tokenizer_json(
    client: &Client,
    dataset: &funetun_core::DatasetName,
) -> anyhow::Result<Option<Vec<u8>>> {
    use funetun_core::protocol::TextTokenizer;
    use funetun_core::{DatasetName, Tokenizer};
    let vocab = match dataset {
        DatasetName::Text {
            tokenizer: TextTokenizer::Hf(hash),
            ..
        } => return Ok(Some(client.get_blob(*hash).await?)),
        DatasetName::Text {
            corpus,
            tokenizer: TextTokenizer::Builtin(t),
        } => {
            let bytes = match t {
                Tokenizer::Byte => Vec::new(),
                Tokenizer::Char => client.get_blob(*corpus).await?,
            };
            funetun_ml::data::Vocab::build(*t, &bytes, &dataset.to_string())?
        }
        DatasetName::TinyShakespeare(_) => {
            let name = dataset.clone();
            let data = tokio::task::spawn_blocking(move || {
                funetun_ml::Dataset::load(&name, &funetun_ml::LoadOptions::default())
            })
            .await??;
            data.vocab()
                .cloned()
                .context("a text data set has a vocabulary")?
        }
        _ => return Ok(None),
    };
    Ok(Some(vocab.to_hf_json()?))
}

/// Where `--hf DIR` puts a LoRA job's adapters (PEFT's layout), beside
/// the merged model in `DIR`.
pub const ADAPTER_DIR: &str = "adapter";

/// Writes `weights` of a transformer as a Hugging Face model directory.
pub fn export_hf(
    dir: &std::path::Path,
    model: funetun_ml::Model,
    weights: &funetun_core::TensorSet,
    tokenizer_json: Option<&[u8]>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        model.is_text(),
        "--hf writes transformers; this job trains an {model}"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    funetun_ml::hf::save_dir(dir, model, weights, tokenizer_json)
        .with_context(|| format!("writing the Hugging Face model to {}", dir.display()))
}

async fn withdraw(args: WithdrawJobArgs) -> anyhow::Result<()> {
    let key = args.key.signer()?;
    args.key.warn_if_exposed(&args.owner.rpc).await;
    let client = Client::new(&args.owner.orchestrator, None);
    let contract = contract_of(&args.owner, &client).await?;
    let ledger = Ledger::connect(&args.owner.rpc, contract, key, LedgerConfig::default()).await?;
    let before = ledger.job(U256::from(args.id)).await?;
    let outcome = ledger.withdraw_unused_funds(U256::from(args.id)).await?;
    eprintln!(
        "withdrew {} from job {} (tx {}); the job is closed",
        format_eth(before.remaining),
        args.id,
        outcome.tx_hash
    );
    if args.owner.json {
        print_json(&serde_json::json!({
            "job_id": args.id,
            "amount_wei": before.remaining.to_string(),
            "tx_hash": outcome.tx_hash,
        }))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use funetun_core::api::RoundInfo;

    #[test]
    fn a_rule_no_round_can_satisfy_is_refused() {
        let spec = |toml: &str| JobSpec::from_toml(toml).unwrap();
        // Krum with F = 100 needs 203 updates; 4 shards give 4 a round.
        let err = check_spec_names(&spec("shards = 4\naggregation = \"krum:100\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`krum:100`"), "{err}");
        assert!(err.contains("the 4 updates a round"), "{err}");
        assert!(err.contains("raise `shards`"), "{err}");
        // Krum with F = 1 needs 5: 5 shards are enough, 4 are not.
        check_spec_names(&spec("shards = 5\naggregation = \"krum:1\"")).unwrap();
        assert!(check_spec_names(&spec("shards = 4\naggregation = \"krum:1\"")).is_err());
        // A stale job's rounds are built from `buffer` updates.
        let stale = "shards = 8\nsync = \"stale:2\"\nbuffer = 4\naggregation = \"krum:1\"";
        assert!(check_spec_names(&spec(stale)).is_err());
        check_spec_names(&spec("shards = 4\naggregation = \"median\"")).unwrap();
    }

    fn round(
        n: u64,
        status: RoundStatus,
        leased: u64,
        submitted: u64,
        evaluated: bool,
    ) -> RoundInfo {
        RoundInfo {
            round: n,
            status,
            base_hash: B256::ZERO,
            checkpoint_hash: None,
            leased,
            submitted,
            replayed: 0,
            accepted: submitted,
            rejected: 0,
            test_loss: evaluated.then_some(0.1),
            test_accuracy: evaluated.then_some(0.97),
            test_perplexity: None,
            sample: None,
            train_loss: None,
            opened_at: 1_000,
            closed_at: None,
            commit_tx: None,
            manifest_hash: None,
            led_by: None,
        }
    }

    #[test]
    fn a_stalled_job_says_what_holds_it_back() {
        let open = |leased, submitted| vec![round(0, RoundStatus::Open, leased, submitted, false)];
        // Fresh rounds and a running job: nothing to say.
        assert!(stall_hints(false, "mnist", 30, &open(0, 0), &[], 1_010).is_empty());
        let nobody = stall_hints(false, "mnist", 30, &open(0, 0), &[], 1_100);
        assert!(nobody[0].contains("no trainer has leased"), "{nobody:?}");
        let failing = stall_hints(false, "mnist", 30, &open(3, 0), &[], 1_100);
        assert!(
            failing[0].contains("3 task(s) leased and none reported")
                && failing[0].contains("`mnist`")
                && failing[0].contains("FUNETUN_DATA_DIR"),
            "{failing:?}"
        );
        assert!(stall_hints(false, "mnist", 30, &open(3, 2), &[], 1_100).is_empty());
        assert!(stall_hints(true, "mnist", 30, &open(0, 0), &[], 9_999).is_empty());

        let unevaluated = vec![
            round(0, RoundStatus::Closed, 4, 4, false),
            round(1, RoundStatus::Closed, 4, 4, false),
        ];
        let no_data = stall_hints(true, "mnist", 30, &unevaluated, &[], 1_100);
        assert!(
            no_data[0].contains("no closed round has test metrics"),
            "{no_data:?}"
        );
        let evaluated = vec![
            round(0, RoundStatus::Closed, 4, 4, true),
            round(1, RoundStatus::Closed, 4, 4, false),
        ];
        assert!(stall_hints(true, "mnist", 30, &evaluated, &[], 1_100).is_empty());

        // Reported failures are quoted, newest first, in place of the guess.
        let failure = |trainer: u8, reason: &str, last_at| funetun_core::api::FailureInfo {
            trainer: Address::repeat_byte(trainer),
            reason: reason.into(),
            count: 2,
            last_task_id: 7,
            first_at: 1_000,
            last_at,
        };
        let reported = [
            failure(1, "mnist not found in /data", 1_090),
            failure(2, "checkpoint does not decode", 400),
        ];
        let quoted = stall_hints(false, "mnist", 30, &open(3, 0), &reported, 1_100);
        assert_eq!(quoted.len(), 1, "{quoted:?}");
        assert!(
            quoted[0].contains("0x0101010101010101010101010101010101010101")
                && quoted[0].contains("gave up 2 task(s), the last 10 s ago (task 7)")
                && quoted[0].ends_with("mnist not found in /data"),
            "{quoted:?}"
        );
        // Not once the job is over.
        assert!(stall_hints(true, "mnist", 30, &open(3, 0), &reported, 1_100).is_empty());
    }
}
