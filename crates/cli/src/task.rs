//! `funetun task run`: one training task, exactly as a trainer runs it for
//! a lease and a validator replays it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use funetun_core::{TensorSet, encode, keccak256};
use funetun_ml::optim::Schedule;
use funetun_ml::{Model, OptimizerKind, TaskSpec, platform::platform_class, train_task};
use serde::Serialize;

use crate::args::{ComputeArgs, DataArgs, ModelArgs, step_bar};
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
    #[command(flatten)]
    model: ModelArgs,
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
    /// Samples (images, or context windows) per step (default: 64; a
    /// transformer configuration's own).
    #[arg(long)]
    batch: Option<usize>,
    /// Learning rate (default: 0.1; a transformer configuration's own).
    #[arg(long)]
    lr: Option<f32>,
    /// sgd, momentum[:MU], adam or adamw[:WD[,BETA2]] (default: sgd; a
    /// transformer configuration's own).
    #[arg(long)]
    optimizer: Option<OptimizerKind>,
    /// Learning-rate schedule over the job's global step: constant or
    /// cosine:WARMUP,TOTAL,MIN_LR (default: constant; a transformer
    /// configuration's own).
    #[arg(long)]
    lr_schedule: Option<Schedule>,
    /// The job's global step at the task's first step.
    #[arg(long, default_value_t = 0)]
    global_step: u64,
    /// Largest gradient norm (0: no clipping; default: 0; a transformer
    /// configuration's own).
    #[arg(long)]
    grad_clip: Option<f32>,
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
    model: Model,
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
    let data = args.data.load(args.model.model)?;
    let model = args.model.resolve(&data)?;
    let recipe = args.model.recipe().filter(|_| model.is_text());
    let spec = TaskSpec {
        model,
        shard: args.shard,
        shards: args.shards,
        steps: args.steps,
        batch: args.batch.or(recipe.map(|r| r.batch)).unwrap_or(64),
        lr: args.lr.or(recipe.map(|r| r.lr)).unwrap_or(0.1),
        optimizer: args
            .optimizer
            .or(recipe.map(|r| r.optimizer))
            .unwrap_or(OptimizerKind::Sgd),
        schedule: args
            .lr_schedule
            .or(recipe.map(|r| r.schedule))
            .unwrap_or(Schedule::Constant),
        step0: args.global_step,
        grad_clip: args
            .grad_clip
            .or(recipe.map(|r| r.grad_clip))
            .unwrap_or(0.0),
        seed: args.seed,
        lora: None,
    };
    spec.validate()?;
    let (base, base_bytes) = match &args.base {
        Some(path) => read_checkpoint(path, model)?,
        None => {
            let base = model.init(args.init_seed);
            let bytes = encode(&base);
            (base, bytes)
        }
    };
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
