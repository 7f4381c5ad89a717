//! `funetun task run`: one training task, exactly as a trainer runs it for
//! a lease and a validator replays it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use funetun_core::{TensorSet, encode, keccak256};
use funetun_ml::{ModelKind, OptimizerKind, TaskSpec, platform::platform_class, train_task};
use serde::Serialize;

use crate::args::{ComputeArgs, DataArgs, step_bar};
use crate::output::{print_json, write_atomic};
use funetun_ml::Architecture as _;

/// Subcommands of `funetun task`.
#[derive(Debug, clap::Subcommand)]
pub enum TaskCommand {
    /// Run one training task and write its weight delta.
    Run(RunArgs),
}

/// Arguments of `funetun task run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    compute: ComputeArgs,
    /// Network: mlp or cnn.
    #[arg(long, default_value = "mlp")]
    model: ModelKind,
    /// Base checkpoint (canonical safetensors); without it θ₀ is built from --init-seed.
    #[arg(long, conflicts_with = "init_seed")]
    base: Option<PathBuf>,
    /// Seed of θ₀ when no --base is given.
    #[arg(long, default_value_t = 0)]
    init_seed: u64,
    /// Shard index, in 0..shards.
    #[arg(long, default_value_t = 0)]
    shard: usize,
    /// Number of shards of the training split.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Optimizer steps.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f32,
    /// sgd, momentum[:MU], adam or adamw[:WD].
    #[arg(long, default_value = "sgd")]
    optimizer: OptimizerKind,
    /// Seed of the data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to write the delta (canonical safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    delta_hash: String,
    base_hash: String,
    loss_before: f32,
    loss_after: f32,
    samples: usize,
    seconds: f64,
    platform: String,
    threads: usize,
}

/// Reads a checkpoint file of `model`, refusing anything that does not fit it.
pub fn read_checkpoint(
    path: &std::path::Path,
    model: ModelKind,
) -> anyhow::Result<(TensorSet, Vec<u8>)> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    let set = model
        .decode(&bytes)
        .with_context(|| format!("{} is not a {model} checkpoint", path.display()))?;
    Ok((set, bytes))
}

/// Runs `funetun task …`.
pub fn run(cmd: TaskCommand) -> anyhow::Result<()> {
    match cmd {
        TaskCommand::Run(args) => run_task(args),
    }
}

fn run_task(args: RunArgs) -> anyhow::Result<()> {
    let spec = TaskSpec {
        model: args.model,
        shard: args.shard,
        shards: args.shards,
        steps: args.steps,
        batch: args.batch,
        lr: args.lr,
        optimizer: args.optimizer,
        schedule: funetun_ml::optim::Schedule::Constant,
        step0: 0,
        grad_clip: 0.0,
        seed: args.seed,
    };
    spec.validate()?;
    let (base, base_bytes) = match &args.base {
        Some(path) => read_checkpoint(path, args.model)?,
        None => {
            let base = args.model.init(args.init_seed);
            let bytes = encode(&base);
            (base, bytes)
        }
    };
    let data = args.data.load()?;
    let compute = args.compute.compute()?;
    let bar = step_bar(spec.steps as u64, "task");
    let start = Instant::now();
    let outcome = train_task(&base, &data, &spec, &compute, &mut |_| bar.inc(1))?;
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let delta_bytes = encode(&outcome.delta);
    write_atomic(&args.out, &delta_bytes)?;
    let report = Report {
        delta_hash: keccak256(&delta_bytes).to_string(),
        base_hash: keccak256(&base_bytes).to_string(),
        loss_before: outcome.loss_before,
        loss_after: outcome.loss_after,
        samples: outcome.samples,
        seconds,
        platform: platform_class(),
        threads: compute.threads(),
    };
    eprintln!(
        "loss {:.4} → {:.4} over {} samples in {seconds:.2}s; delta {} written to {}",
        report.loss_before,
        report.loss_after,
        report.samples,
        report.delta_hash,
        args.out.display()
    );
    if args.json {
        print_json(&report)?;
    }
    Ok(())
}
