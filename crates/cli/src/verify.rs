//! `funetun verify-chain`: proof of training over a chain of checkpoints,
//! either a directory of `round-NNNN.safetensors` files or a job's chain
//! downloaded from its orchestrator and anchored to the hashes committed
//! on-chain before any check runs.

use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, U256};
use anyhow::{Context as _, bail};
use funetun_chain::bindings::{job_status, update_status};
use funetun_chain::{Ledger, LedgerConfig, dev_accounts, keys};
use funetun_client::Client;
use funetun_client::anchored::{Anchored, Which, fetch_checkpoints};
use funetun_core::JobSpec;
use funetun_ml::{DatasetName, Model, ModelKind};
use funetun_validator::proof::{self, AnchorProblem, Chain, CheckResult, ProofConfig, Report};
use serde::Serialize;

use crate::args::{ComputeArgs, DataArgs};
use crate::output::print_json;
use funetun_ml::Architecture as _;

/// Arguments of `funetun verify-chain`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["dir", "job"])))]
pub struct VerifyChainArgs {
    /// Directory of checkpoints `round-0000.safetensors` (θ₀), `round-0001…`,
    /// numbered without gaps (what `funetun demo` writes to demo-out/checkpoints).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// On-chain job id: download every committed checkpoint from --orchestrator
    /// and check its hash against --rpc's ledger.
    #[arg(long, conflicts_with = "dir")]
    job: Option<u64>,
    /// Orchestrator base URL (with --job).
    #[arg(long, env = "FUNETUN_ORCHESTRATOR")]
    orchestrator: Option<String>,
    /// Ethereum JSON-RPC endpoint (with --job).
    #[arg(long, env = "FUNETUN_RPC")]
    rpc: Option<String>,
    /// JobManager address (with --job); defaults to the address of the first
    /// deployment by the first dev account, what `funetun deploy` gives on a
    /// fresh dev chain.
    #[arg(long, env = "FUNETUN_CONTRACT")]
    contract: Option<Address>,
    /// Seed of θ₀. With --job it defaults to the job spec's seed; without a
    /// seed the initial-distribution check is a goodness-of-fit test only.
    #[arg(long, env = "FUNETUN_INIT_SEED")]
    init_seed: Option<u64>,
    /// Network: mlp or cnn (with --job: the job spec's; with --dir: mlp).
    #[arg(long, env = "FUNETUN_MODEL")]
    model: Option<ModelKind>,
    /// Data set whose test split measures accuracy: mnist, fashion-mnist,
    /// synthetic[:SEED] or a directory (with --job: the job spec's; with --dir: mnist).
    #[arg(long, env = "FUNETUN_DATASET")]
    dataset: Option<DatasetName>,
    /// Directory holding data sets (searched before FUNETUN_DATA_DIR and the cache).
    #[arg(long, env = "FUNETUN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Never download missing data sets.
    #[arg(long, env = "FUNETUN_OFFLINE")]
    offline: bool,
    #[command(flatten)]
    compute: ComputeArgs,
    #[command(flatten)]
    thresholds: ThresholdArgs,
    /// With --dir: the blob directory holding the deltas and outer optimizer
    /// states the manifests `round-NNNN.manifest.json` name (default: DIR/../blobs,
    /// where `funetun demo` keeps them).
    #[arg(long, requires = "dir")]
    blobs: Option<PathBuf>,
    /// Print one JSON object `{"passed", "checks": [...]}` as the last stdout line.
    #[arg(long, env = "FUNETUN_JSON")]
    json: bool,
}

/// The checks' thresholds; unset ones keep the documented defaults
/// (docs/proof-of-training.md).
#[derive(Debug, clap::Args)]
struct ThresholdArgs {
    /// Check 1: largest accepted drop of test accuracy below the best earlier round (default 0.03).
    #[arg(long, env = "FUNETUN_PROOF_ACCURACY_TOLERANCE")]
    accuracy_tolerance: Option<f64>,
    /// Check 1 for text models: largest accepted rise of validation loss above the best earlier round (default 0.1).
    #[arg(long, env = "FUNETUN_PROOF_LOSS_TOLERANCE")]
    loss_tolerance: Option<f64>,
    /// Check 1: test samples per checkpoint, spread over the test split; 0 = all (default 10000).
    #[arg(long, env = "FUNETUN_PROOF_EVAL_SAMPLES")]
    eval_samples: Option<usize>,
    /// Check 2: largest accepted per-layer relative step δ (default 1.0).
    #[arg(long, env = "FUNETUN_PROOF_CONTINUITY_DELTA")]
    continuity_delta: Option<f64>,
    /// Checks 3 and 4: family-wise false-alarm rate of the statistical tests (default 0.001).
    #[arg(long, env = "FUNETUN_PROOF_ALPHA")]
    alpha: Option<f64>,
    /// Check 5: largest accepted rise of ‖C_i − C_n‖, as a share of ‖C₀ − C_n‖ (default 0.05).
    #[arg(long, env = "FUNETUN_PROOF_DISTANCE_TOLERANCE")]
    distance_tolerance: Option<f64>,
    /// Check 6: largest accepted ‖C_n − C₀‖ / ‖C_n − fresh init‖ (default 0.9).
    #[arg(long, env = "FUNETUN_PROOF_INIT_FINAL_RATIO")]
    init_final_ratio: Option<f64>,
}

impl ThresholdArgs {
    fn config(&self) -> anyhow::Result<ProofConfig> {
        let d = ProofConfig::default();
        let config = ProofConfig {
            accuracy_tolerance: self.accuracy_tolerance.unwrap_or(d.accuracy_tolerance),
            loss_tolerance: self.loss_tolerance.unwrap_or(d.loss_tolerance),
            eval_samples: self.eval_samples.unwrap_or(d.eval_samples),
            continuity_delta: self.continuity_delta.unwrap_or(d.continuity_delta),
            alpha: self.alpha.unwrap_or(d.alpha),
            distance_tolerance: self.distance_tolerance.unwrap_or(d.distance_tolerance),
            init_final_ratio: self.init_final_ratio.unwrap_or(d.init_final_ratio),
            ..d
        };
        config.validate()?;
        Ok(config)
    }
}

/// What the checks run on, wherever it came from.
struct Loaded {
    model: Model,
    dataset: DatasetName,
    init_seed: Option<u64>,
    /// The owner's initial checkpoint named by the spec (a fine-tune).
    init: Option<funetun_core::Hash>,
    /// An uploaded data set, fetched by hash from the orchestrator.
    data: Option<funetun_ml::Dataset>,
    checkpoints: Vec<funetun_core::TensorSet>,
    source: String,
    /// The aggregation check (none for a directory without manifests).
    aggregation: Option<CheckResult>,
}

/// Runs `funetun verify-chain`.
pub fn run(args: VerifyChainArgs) -> anyhow::Result<()> {
    let config = args.thresholds.config()?;
    let loaded = match (&args.dir, args.job) {
        (Some(dir), _) => load_dir(dir, &args)?,
        (None, Some(job)) => match load_job(job, &args)? {
            Ok(loaded) => loaded,
            Err(problems) => return report_anchor_problems(&problems, args.json),
        },
        (None, None) => bail!("pass --dir DIR or --job ID"),
    };
    let chain = Chain::new(loaded.model, loaded.checkpoints)?;
    let data = match loaded.data {
        Some(data) => data,
        None => DataArgs {
            dataset: Some(loaded.dataset.clone()),
            data_dir: args.data_dir.clone(),
            offline: args.offline,
        }
        .load(loaded.model.kind())?,
    };
    let compute = args.compute.compute()?;
    eprintln!(
        "verifying {} checkpoints of {} from {} against the {} test split",
        chain.checkpoints().len(),
        loaded.model,
        loaded.source,
        loaded.dataset
    );
    let mut report = match loaded.init {
        Some(init) => proof::verify_fine_tune(&chain, init, &data, &compute, &config)?,
        None => proof::verify(&chain, loaded.init_seed, &data, &compute, &config)?,
    };
    match loaded.aggregation {
        Some(check) => report = Report::new([report.checks, vec![check]].concat()),
        None => eprintln!(
            "no aggregation manifests beside the checkpoints: the aggregation check is skipped"
        ),
    }
    print_report(&report, args.json)?;
    verdict(&report)
}

#[derive(Serialize)]
struct JsonReport<'a> {
    passed: bool,
    checks: &'a [CheckResult],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    anchors: &'a [AnchorProblem],
}

fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    for line in human_lines(report) {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    if json {
        print_json(&JsonReport {
            passed: report.passed,
            checks: &report.checks,
            anchors: &[],
        })?;
    }
    Ok(())
}

/// A number readable at any size (huge ones in exponent form).
fn number(v: f64) -> String {
    if v != 0.0 && !(1e-3..1e4).contains(&v.abs()) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// One line per check, then the verdict.
fn human_lines(report: &Report) -> Vec<String> {
    let mut lines: Vec<String> = report
        .checks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{} {:<29} value {:>10}  threshold {:>10}  {}  {}",
                i + 1,
                c.name,
                number(c.value),
                number(c.threshold),
                if c.passed { "PASS" } else { "FAIL" },
                c.detail
            )
        })
        .collect();
    let failed = report.checks.iter().filter(|c| !c.passed).count();
    lines.push(if failed == 0 {
        format!("PASS: all {} checks passed", report.checks.len())
    } else {
        format!("FAIL: {failed} of {} checks failed", report.checks.len())
    });
    lines
}

fn verdict(report: &Report) -> anyhow::Result<()> {
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("proof of training failed: {}", failed.join(", "))
    }
}

fn report_anchor_problems(problems: &[AnchorProblem], json: bool) -> anyhow::Result<()> {
    for p in problems {
        eprintln!("MISMATCH {p}");
    }
    if json {
        print_json(&JsonReport {
            passed: false,
            checks: &[],
            anchors: problems,
        })?;
    }
    bail!(
        "{} checkpoint(s) do not match the hashes committed on-chain; no check was run",
        problems.len()
    )
}

// ------------------------------------------------------------ directories

/// The round of a file called `round-NNNN.safetensors`.
fn round_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("round-")?.strip_suffix(".safetensors")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The checkpoint files of `dir` in round order, which must run 0, 1, … without gaps.
fn chain_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading directory {}", dir.display()))?;
        if let Some(round) = entry.file_name().to_str().and_then(round_of) {
            files.push((round, entry.path()));
        }
    }
    files.sort();
    if files.is_empty() {
        bail!(
            "{} holds no checkpoint files named round-NNNN.safetensors",
            dir.display()
        );
    }
    for (expected, (round, path)) in files.iter().enumerate() {
        if *round != expected as u64 {
            bail!(
                "{}: expected round {expected} next, found {} (checkpoints must be numbered 0, 1, 2, … without gaps or duplicates)",
                dir.display(),
                path.display()
            );
        }
    }
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// A checkpoint file, decoded, and the keccak256 of its bytes.
fn read_checkpoint_file(
    path: &Path,
    model: Model,
) -> anyhow::Result<(funetun_core::TensorSet, funetun_core::Hash)> {
    let limit = model.decode_limits().max_bytes;
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > limit as u64 {
        bail!(
            "{} is {size} bytes, more than a {model} checkpoint ({limit} bytes at most)",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let checkpoint = proof::decode_checkpoint(model, &bytes)
        .with_context(|| format!("{} is not a {model} checkpoint", path.display()))?;
    Ok((checkpoint, funetun_core::keccak256(&bytes)))
}

fn load_dir(dir: &Path, args: &VerifyChainArgs) -> anyhow::Result<Loaded> {
    let kind = args.model.unwrap_or(ModelKind::Mlp);
    let model = Model::new(kind, None).map_err(|_| {
        anyhow::anyhow!(
            "--dir holds {kind} checkpoints, whose numbers a directory does not carry; verify a transformer job with --job ID"
        )
    })?;
    let files = chain_files(dir)?;
    let (checkpoints, hashes): (Vec<_>, Vec<_>) = files
        .iter()
        .map(|p| read_checkpoint_file(p, model))
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .unzip();
    let blobs = args
        .blobs
        .clone()
        .or_else(|| Some(dir.join("..").join("blobs")).filter(|b| b.is_dir()));
    let aggregation = crate::audit::audit_dir(dir, &files, &hashes, blobs.as_deref())?;
    Ok(Loaded {
        model,
        dataset: args.dataset.clone().unwrap_or(DatasetName::Mnist),
        init_seed: args.init_seed,
        init: None,
        data: None,
        source: format!(
            "{} (round-0000 … round-{:04})",
            dir.display(),
            checkpoints.len().saturating_sub(1)
        ),
        checkpoints,
        aggregation,
    })
}

// ------------------------------------------------------------------- jobs

/// The contract `funetun deploy` creates first on a fresh dev chain.
fn default_contract() -> Address {
    dev_accounts(1)
        .first()
        .map(|a| a.address.create(0))
        .unwrap_or_default()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Downloads and anchors a job's chain. `Ok(Err(problems))` when some
/// checkpoint does not match its on-chain hash.
fn load_job(
    job: u64,
    args: &VerifyChainArgs,
) -> anyhow::Result<Result<Loaded, Vec<AnchorProblem>>> {
    let (Some(orchestrator), Some(rpc)) = (&args.orchestrator, &args.rpc) else {
        bail!(
            "--job needs --orchestrator URL and --rpc URL (or FUNETUN_ORCHESTRATOR and FUNETUN_RPC)"
        );
    };
    let contract = args.contract.unwrap_or_else(default_contract);
    runtime()?.block_on(async {
        let ledger = Ledger::connect(rpc, contract, keys::new_key(), LedgerConfig::default())
            .await
            .with_context(|| format!("connecting to the JobManager at {contract} via {rpc}"))?;
        let view = ledger.job(U256::from(job)).await?;
        let committed = view.checkpoints as usize;
        if view.status != job_status::NONE && committed < 2 {
            bail!(
                "job {job} has {committed} checkpoint(s) committed on-chain; at least θ₀ and one round are needed"
            );
        }
        let client = Client::new(orchestrator, None);
        let downloads = match fetch_checkpoints(&client, &ledger, job, Which::All).await? {
            Ok(downloads) => downloads,
            Err(problems) => return Ok(Err(problems)),
        };

        let spec = job_spec(&client, job, view.specHash).await?;
        let aggregation = audit_job(&client, &ledger, job, &downloads, &spec).await?;
        let model = match args.model {
            Some(kind) if kind != spec.model => bail!(
                "--model {kind} contradicts the job's spec ({}); leave --model out with --job",
                spec.model
            ),
            _ => spec.model()?,
        };
        let dataset = args.dataset.clone().unwrap_or_else(|| spec.dataset.clone());
        let data = fetch_uploaded_data(&client, &dataset).await?;
        let space = funetun_ml::Space::new(model, spec.lora.as_ref())?;
        let (checkpoints, init) = match space.lora() {
            None => {
                let checkpoints = downloads
                    .iter()
                    .map(|Anchored { round, bytes, .. }| {
                        proof::decode_checkpoint(model, bytes).with_context(|| {
                            format!("the checkpoint of round {round} is not a {model} checkpoint")
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                (checkpoints, spec.init)
            }
            // A LoRA job's checkpoints are adapters: the chain checked is
            // the frozen model merged with each, and C₀ must be the merge
            // of the adapters' seeded init (so the frozen model itself).
            Some(lora) => {
                let init = spec.init.context("a LoRA job names its frozen model as init")?;
                let frozen = proof::decode_checkpoint(model, &client.get_blob(init).await?)
                    .with_context(|| format!("the frozen model {init} is not a {model}"))?;
                let adapters = downloads
                    .iter()
                    .map(|Anchored { round, bytes, .. }| {
                        space.decode(bytes).with_context(|| {
                            format!("the checkpoint of round {round} is not the job's adapters")
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let (checkpoints, expected) = merged_chain(lora, &frozen, &adapters, spec.seed)?;
                (checkpoints, Some(expected))
            }
        };
        Ok(Ok(Loaded {
            model,
            dataset,
            init_seed: Some(args.init_seed.unwrap_or(spec.seed)),
            init,
            data,
            checkpoints,
            source: format!("job {job} at {orchestrator}, anchored to {contract}"),
            aggregation: Some(aggregation),
        }))
    })
}

/// The aggregation check of a job: each checkpoint's manifest is the blob
/// its `CheckpointCommitted` event names, follows the spec, aggregates only
/// updates the chain accepted with those hashes, and rebuilds the
/// checkpoint bit for bit from blobs the orchestrator serves.
async fn audit_job(
    client: &Client,
    ledger: &Ledger,
    job: u64,
    downloads: &[Anchored],
    spec: &JobSpec,
) -> anyhow::Result<CheckResult> {
    let id = U256::from(job);
    let hashes: Vec<B256> = downloads.iter().map(|a| a.hash).collect();
    let committed = ledger.checkpoint_manifests(id, 0).await?;
    let exec = funetun_aggregate::Exec::sequential();
    let mut failures = Vec::new();
    let mut prev_outer = None;
    for i in 1..hashes.len() as u64 {
        let outcome = async {
            let m_hash = committed
                .get(&i)
                .copied()
                .filter(|h| *h != B256::ZERO)
                .ok_or("no manifest was committed with it")?;
            let bytes = client
                .get_blob(m_hash)
                .await
                .map_err(|e| format!("manifest {m_hash}: {e}"))?;
            let m = tokio::task::block_in_place(|| {
                let handle = tokio::runtime::Handle::current();
                let mut blob = |h: B256| -> anyhow::Result<Vec<u8>> {
                    match downloads.iter().find(|a| a.hash == h) {
                        Some(a) => Ok(a.bytes.clone()),
                        None => Ok(handle.block_on(client.get_blob(h))?),
                    }
                };
                crate::audit::audit_round(i, &bytes, &hashes, prev_outer, &mut blob, &exec)
            })?;
            crate::audit::check_against_spec(&m, spec)?;
            for input in &m.inputs {
                let view = ledger
                    .update(id, input.index)
                    .await
                    .map_err(|e| format!("reading update {}: {e}", input.update))?;
                let accepted = matches!(
                    view.status,
                    update_status::ACCEPTED | update_status::BONUSED
                ) && ledger
                    .matches_hash(id, input.index, input.update)
                    .await
                    .map_err(|e| format!("reading update {}: {e}", input.update))?;
                if !accepted {
                    return Err(format!(
                        "it aggregates update {}, which the chain did not accept with that hash",
                        input.update
                    ));
                }
            }
            Ok::<_, String>(m)
        }
        .await;
        match outcome {
            Ok(m) => prev_outer = m.outer_state_out,
            Err(why) => failures.push((i, why)),
        }
    }
    Ok(crate::audit::check_result(
        hashes.len().saturating_sub(1),
        &failures,
    ))
}

/// A LoRA job's chain as the checks read it: the frozen model merged with
/// each checkpoint's adapters, and the hash C₀ must have — the merge of
/// the adapters' seeded init (every `B` zero: the frozen model itself).
/// When C₀'s adapters are not exactly that init, the hash returned is the
/// init adapters' own, which no merged model has, so the check fails
/// even if the merge happens to equal the frozen model (another seed's
/// `A` with `B` zero): trainers replayed from C₀'s adapters, not from its
/// merge.
pub fn merged_chain(
    lora: &funetun_ml::Lora,
    frozen: &funetun_core::TensorSet,
    adapters: &[funetun_core::TensorSet],
    seed: u64,
) -> anyhow::Result<(Vec<funetun_core::TensorSet>, funetun_core::Hash)> {
    let merged = adapters
        .iter()
        .map(|a| Ok(lora.merge(frozen, a)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let init = lora.init(seed);
    let committed = if adapters.first() == Some(&init) {
        funetun_core::keccak256(funetun_core::encode(&lora.merge(frozen, &init)?))
    } else {
        funetun_core::keccak256(funetun_core::encode(&init))
    };
    Ok((merged, committed))
}

/// An uploaded data set's blobs, downloaded (hash-checked) and loaded;
/// `None` for a built-in data set.
async fn fetch_uploaded_data(
    client: &Client,
    name: &DatasetName,
) -> anyhow::Result<Option<funetun_ml::Dataset>> {
    if name.blobs().is_empty() {
        return Ok(None);
    }
    let mut blobs = std::collections::HashMap::new();
    for hash in name.blobs() {
        let bytes = client
            .get_blob(hash)
            .await
            .with_context(|| format!("downloading blob {hash} of data set {name}"))?;
        blobs.insert(hash, bytes);
    }
    let data =
        funetun_ml::Dataset::from_blobs(name, |hash| Ok(blobs.remove(&hash).unwrap_or_default()))
            .with_context(|| format!("loading data set {name}"))?;
    Ok(Some(data))
}

/// The job's spec: the blob named by the on-chain spec hash (so seed, model
/// and data set are the committed ones), else the orchestrator's copy.
async fn job_spec(client: &Client, job: u64, spec_hash: B256) -> anyhow::Result<JobSpec> {
    match client.get_blob(spec_hash).await {
        Ok(bytes) => Ok(JobSpec::from_bytes(&bytes)
            .with_context(|| format!("job {job}'s spec blob {spec_hash}"))?),
        Err(e) => {
            tracing::warn!(error = %e, "spec blob {spec_hash} not served; using the orchestrator's copy of the spec");
            let spec = client.job(job).await?.spec;
            if spec.init.is_some() {
                bail!(
                    "job {job} starts from an owner's checkpoint, and check 3 needs the spec \
                     committed on-chain ({spec_hash}), which the orchestrator does not serve: {e}"
                );
            }
            Ok(spec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use funetun_client::anchored::listed_hashes;
    use funetun_core::api::RoundInfo;
    use funetun_core::protocol::RoundStatus;

    #[test]
    fn a_lora_chain_starts_from_its_frozen_model_and_a_crafted_start_is_told_apart() {
        use funetun_ml::Architecture as _;
        let model = funetun_ml::Model::new(
            funetun_ml::ModelKind::Gpt,
            Some(funetun_ml::TransformerConfig::preset("tiny", 16).unwrap()),
        )
        .unwrap();
        let config = funetun_ml::LoraConfig {
            rank: 2,
            alpha: 4.0,
            targets: vec!["c_attn".into()],
        };
        let lora = funetun_ml::Lora::new(model, &config).unwrap();
        let frozen = model.init(1);
        let start = lora.init(7);
        let mut trained = start.clone();
        for (name, t) in trained.iter_mut() {
            if name.ends_with("lora_B.weight") {
                t.data.iter_mut().for_each(|v| *v = 0.01);
            }
        }
        let (merged, expected) =
            merged_chain(&lora, &frozen, &[start.clone(), trained.clone()], 7).unwrap();
        // C₀ of an honest chain is the frozen model, bit for bit.
        assert_eq!(
            funetun_core::keccak256(funetun_core::encode(&merged[0])),
            expected
        );
        assert_eq!(
            funetun_core::keccak256(funetun_core::encode(&frozen)),
            expected
        );
        assert_ne!(merged[1], frozen, "trained adapters change the model");
        // A chain that starts from trained adapters, or from another seed's
        // (which merge to the frozen model too), fails the rule.
        for crafted in [trained, lora.init(8)] {
            let (m, committed) = merged_chain(&lora, &frozen, &[crafted], 7).unwrap();
            assert_ne!(
                funetun_core::keccak256(funetun_core::encode(&m[0])),
                committed
            );
        }
    }

    #[test]
    fn checkpoint_file_names_give_their_round() {
        assert_eq!(round_of("round-0000.safetensors"), Some(0));
        assert_eq!(round_of("round-0012.safetensors"), Some(12));
        assert_eq!(round_of("round-12345.safetensors"), Some(12345));
        for bad in [
            "round-.safetensors",
            "round-00a1.safetensors",
            "round-0001.safetensors.tmp",
            "round--001.safetensors",
            "delta-0001.safetensors",
        ] {
            assert_eq!(round_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn chain_files_must_start_at_zero_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        assert!(chain_files(dir.path()).is_err());
        for r in [0, 1, 3] {
            std::fs::write(dir.path().join(format!("round-{r:04}.safetensors")), b"x").unwrap();
        }
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let err = chain_files(dir.path()).unwrap_err().to_string();
        assert!(err.contains("expected round 2"), "{err}");
        std::fs::write(dir.path().join("round-0002.safetensors"), b"x").unwrap();
        assert_eq!(chain_files(dir.path()).unwrap().len(), 4);
    }

    fn round(t: u64, base: u8, next: Option<u8>) -> RoundInfo {
        RoundInfo {
            round: t,
            status: if next.is_some() {
                RoundStatus::Closed
            } else {
                RoundStatus::Open
            },
            base_hash: B256::repeat_byte(base),
            checkpoint_hash: next.map(B256::repeat_byte),
            leased: 0,
            submitted: 0,
            replayed: 0,
            accepted: 0,
            rejected: 0,
            test_loss: None,
            test_accuracy: None,
            test_perplexity: None,
            sample: None,
            train_loss: None,
            opened_at: 0,
            closed_at: None,
            commit_tx: None,
            manifest_hash: None,
            led_by: None,
        }
    }

    #[test]
    fn listed_hashes_follow_rounds_and_leave_gaps_empty() {
        let rounds = vec![round(1, 2, None), round(0, 1, Some(2))];
        let listed = listed_hashes(&rounds, 4);
        assert_eq!(
            listed,
            vec![
                Some(B256::repeat_byte(1)),
                Some(B256::repeat_byte(2)),
                None,
                None
            ]
        );
        assert_eq!(listed_hashes(&[], 2), vec![None, None]);
    }

    #[test]
    fn failing_reports_exit_non_zero_and_read_as_a_table() {
        let pass = CheckResult {
            name: proof::ACCURACY_MONOTONIC,
            passed: true,
            value: 0.0,
            threshold: 0.03,
            detail: "never drops".into(),
        };
        let fail = CheckResult {
            name: proof::INIT_TO_FINAL,
            passed: false,
            value: f64::MAX,
            threshold: 0.9,
            detail: "far".into(),
        };
        let report = Report::new(vec![pass.clone(), fail]);
        let lines = human_lines(&report);
        assert!(
            lines[0].contains("PASS") && lines[0].contains("0.0300"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("FAIL") && lines[1].contains("e308"),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2], "FAIL: 1 of 2 checks failed");
        let err = verdict(&report).unwrap_err().to_string();
        assert!(err.contains(proof::INIT_TO_FINAL), "{err}");
        assert!(verdict(&Report::new(vec![pass])).is_ok());
    }

    #[test]
    fn anchor_problems_stop_before_any_check() {
        let problem = AnchorProblem::Mismatch {
            round: 2,
            onchain: B256::repeat_byte(1),
            downloaded: B256::repeat_byte(2),
        };
        let err = report_anchor_problems(&[problem], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no check was run"), "{err}");
        let json = serde_json::to_value(JsonReport {
            passed: false,
            checks: &[],
            anchors: &[AnchorProblem::NotCommitted { round: 3 }],
        })
        .unwrap();
        assert_eq!(json["anchors"][0]["problem"], "not_committed");
        assert_eq!(json["anchors"][0]["round"], 3);
    }

    #[test]
    fn the_default_contract_is_the_first_dev_deployment() {
        assert_eq!(
            default_contract().to_string(),
            "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        );
    }
}
