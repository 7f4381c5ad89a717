//! `funetun bench`: benchmarks with a baseline measured in the same run.

use std::time::Instant;

use anyhow::Context as _;

use funetun_ml::data::synthetic;
use funetun_ml::reference::CandleModel;
use funetun_ml::{Model, OptimizerKind, TaskSpec, train_task};
use serde::Serialize;

use crate::args::ModelArgs;
use crate::chain::runtime;
use crate::output::print_json;
use funetun_ml::Architecture as _;

/// Subcommands of `funetun bench`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Training throughput (forward + backward + optimizer step) against a
    /// baseline on the same model, batch and threads: candle's autograd for
    /// the image models, PyTorch for the transformers.
    Train(TrainBenchArgs),
    /// An aggregation rule on n random inputs of length d, against the time
    /// to read them once (the memory bandwidth).
    Aggregate(crate::aggregate::AggregateBenchArgs),
    /// Deploys JobManager on the embedded chain, runs every call once, prints call → gas.
    Gas,
    /// submitUpdate transactions per second over JSON-RPC on loopback (embedded chain),
    /// against plain transfers as the baseline.
    Chain(ChainBenchArgs),
    /// Signed lease requests per second against an orchestrator (SQLite, dev chain),
    /// sent from a second process over loopback.
    Api(crate::orchestrator::ApiBenchArgs),
    /// `funetun demo` against the same training work in one process without
    /// chain, HTTP or validation; prints {"demo_seconds","local_seconds","ratio"}.
    Demo(Box<crate::demo::DemoArgs>),
    /// The demo under `sync` and under `stale:S`, one after the other, with
    /// stragglers (--slow, at least 1; --slowdown 4): seconds to a test
    /// accuracy under each, and final accuracy after as many merged updates
    /// (the stale job runs the rounds that takes); prints
    /// {"sync_seconds","stale_seconds","ratio","stale_utilization","accuracy_delta",…}.
    Sync(Box<crate::demo::SyncBenchArgs>),
    /// Bytes of one update with LoRA against a full update of the same
    /// model: both encoded canonically (what a trainer uploads); prints
    /// {"update_bytes","full_update_bytes","ratio"}.
    Lora(LoraBenchArgs),
    /// An owner's large blob up to and down from an orchestrator, its blobs
    /// in a directory and (with --s3) in an S3 bucket: MiB/s of each, S3
    /// over the directory, and the orchestrator's peak memory per blob size.
    Blobs(crate::bench_blobs::BlobBenchArgs),
    /// The load process of `bench api`.
    #[command(hide = true)]
    ApiClient(crate::orchestrator::ApiClientArgs),
    /// Tiny generic WebAssembly tasks dispatched through an orchestrator
    /// with quorum 2 (bulk submissions, workers' exchanges), beside signed
    /// training leases per second in the same run; prints
    /// {"tasks_per_sec","lease_requests_per_sec","ratio_tasks_to_leases",…}.
    Tasks(crate::orchestrator::TasksBenchArgs),
    /// One MLP training step inside the WebAssembly sandbox (the `sweep`
    /// example: funetun-ml compiled to wasm32) against the native engine
    /// on one thread; prints {"wasm_step_ms","native_step_ms","ratio",…}.
    Sandbox(crate::bench_sandbox::SandboxBenchArgs),
    /// The load process of `bench tasks`.
    #[command(hide = true)]
    TasksClient(crate::orchestrator::TasksClientArgs),
}

/// Arguments of `funetun bench lora`.
#[derive(Debug, clap::Args)]
pub struct LoraBenchArgs {
    #[command(flatten)]
    model: crate::args::ModelArgs,
    /// Adapter rank.
    #[arg(long, default_value_t = 8)]
    rank: u32,
    /// LoRA's alpha (scale = alpha / rank; does not change the size).
    #[arg(long, default_value_t = 16.0)]
    alpha: f32,
    /// Projections to adapt, comma-separated (e.g. q_proj,v_proj or c_attn).
    #[arg(long, value_delimiter = ',', default_value = "q_proj,v_proj")]
    targets: Vec<String>,
    /// Print one JSON line as the last stdout line.
    #[arg(long)]
    json: bool,
}

/// `funetun bench lora`: the update sizes, measured on encoded deltas.
fn bench_lora(args: LoraBenchArgs) -> anyhow::Result<()> {
    let spec = args
        .model
        .transformer_spec()
        .context("LoRA adapts a transformer; use --model gpt or llama")?;
    let config = spec
        .resolve(None)
        .map_err(|e| anyhow::anyhow!("{e}; pass --vocab"))?;
    let model = Model::new(args.model.model, Some(config))?;
    let lora = funetun_ml::Lora::new(
        model,
        &funetun_ml::LoraConfig {
            rank: args.rank,
            alpha: args.alpha,
            targets: args.targets.clone(),
        },
    )?;
    // A delta is the same size whatever its values: encode zeros.
    let update_bytes = funetun_core::encode(&lora.zeros()).len();
    let full_update_bytes = funetun_core::encode(&model.zeros()).len();
    let ratio = full_update_bytes as f64 / update_bytes as f64;
    eprintln!(
        "{model}: LoRA rank {} on {}: {} parameters, {update_bytes} bytes per update; \
         full update {} parameters, {full_update_bytes} bytes ({ratio:.1}× larger)",
        args.rank,
        args.targets.join(","),
        lora.num_params(),
        model.num_params()
    );
    if args.json {
        print_json(&serde_json::json!({
            "model": model.to_string(),
            "rank": args.rank,
            "targets": args.targets,
            "lora_params": lora.num_params(),
            "full_params": model.num_params(),
            "update_bytes": update_bytes,
            "full_update_bytes": full_update_bytes,
            "ratio": ratio,
        }))?;
    }
    Ok(())
}

/// Arguments of `funetun bench chain`.
#[derive(Debug, clap::Args)]
pub struct ChainBenchArgs {
    /// Number of submitUpdate transactions.
    #[arg(long, env = "FUNETUN_BENCH_TXS", default_value_t = 4000)]
    pub txs: usize,
    /// Concurrent senders, one key each (at most 8).
    #[arg(long, env = "FUNETUN_BENCH_SENDERS", default_value_t = 8)]
    pub senders: usize,
}

/// Arguments of `funetun bench train`.
#[derive(Debug, clap::Args)]
pub struct TrainBenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Compute threads for both engines.
    #[arg(long, env = "FUNETUN_THREADS", default_value_t = 1)]
    threads: usize,
    /// Samples (images, or context windows) per step (default: 64, or the
    /// transformer configuration's).
    #[arg(long)]
    batch: Option<usize>,
    /// Transformers: the Python interpreter with torch installed (default:
    /// the one `benches/torch/setup.sh` makes).
    #[arg(long, env = "FUNETUN_TORCH_PYTHON")]
    python: Option<std::path::PathBuf>,
    /// Seconds to spend measuring each engine (after warm-up).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Skip the candle baseline.
    #[arg(long)]
    no_baseline: bool,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct TrainReport {
    model: String,
    batch: usize,
    threads: usize,
    samples_per_sec: f64,
    candle_samples_per_sec: Option<f64>,
    ratio_vs_candle: Option<f64>,
}

/// Runs `funetun bench …`.
pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Train(args) => bench_train(args),
        BenchCommand::Aggregate(args) => crate::aggregate::bench(args),
        BenchCommand::Gas => {
            let rt = runtime()?;
            print_json(&rt.block_on(funetun_chain::bench::gas_report())?)
        }
        BenchCommand::Api(args) => crate::orchestrator::bench_api(args),
        BenchCommand::Blobs(args) => crate::bench_blobs::run(args),
        BenchCommand::Lora(args) => bench_lora(args),
        BenchCommand::Demo(args) => crate::demo::bench(*args),
        BenchCommand::Sync(args) => crate::demo::bench_sync(*args),
        BenchCommand::ApiClient(args) => crate::orchestrator::api_client(args),
        BenchCommand::Tasks(args) => crate::orchestrator::bench_tasks(args),
        BenchCommand::Sandbox(args) => crate::bench_sandbox::run(args),
        BenchCommand::TasksClient(args) => crate::orchestrator::tasks_client(args),
        BenchCommand::Chain(args) => {
            let rt = runtime()?;
            let r = rt.block_on(funetun_chain::bench::chain_throughput(
                args.txs,
                args.senders,
            ))?;
            eprintln!(
                "submitUpdate: {} tx in {:.2} s = {:.0} tx/s over JSON-RPC ({} senders); plain transfers {:.0} tx/s; ratio {:.2}",
                r.transactions,
                r.seconds,
                r.tx_per_sec,
                r.senders,
                r.transfer_tx_per_sec,
                r.tx_per_sec / r.transfer_tx_per_sec
            );
            print_json(&r)
        }
    }
}

/// Steps per timed chunk: enough that timing overhead is negligible.
fn chunk_steps(model: Model) -> usize {
    match model {
        Model::Mlp => 50,
        _ => 5,
    }
}

fn bench_train(args: TrainBenchArgs) -> anyhow::Result<()> {
    if args.model.model.is_transformer() {
        return crate::bench_text::bench_train_text(
            &args.model,
            args.threads,
            args.batch,
            args.seconds,
            args.python.clone(),
            args.no_baseline,
            args.json,
        );
    }
    let model = Model::new(args.model.model, None)?;
    let batch = args.batch.unwrap_or(64);
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    // candle sizes its pools from these variables on first use.
    // SAFETY: no other thread exists yet.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", args.threads.to_string());
    }
    let data = synthetic::generate(0, 4096, 512)?;
    let compute = funetun_ml::Compute::new(args.threads)?;
    let base = model.init(0);

    // Ours: the real training task, timed in chunks until the budget is spent.
    let spec = |steps| TaskSpec {
        model,
        shard: 0,
        shards: 1,
        steps,
        batch,
        lr: 0.01,
        optimizer: OptimizerKind::Sgd,
        schedule: funetun_ml::optim::Schedule::Constant,
        step0: 0,
        grad_clip: 0.0,
        seed: 0,
        lora: None,
    };
    spec(1).validate()?;
    let mut trainer =
        funetun_ml::LocalTrainer::new(&spec(1), &base, (0..data.train.len() as u32).collect())?;
    for _ in 0..3 {
        trainer.step(&data, &compute)?;
    }
    let ours = time_steps(args.seconds, chunk_steps(model), || {
        trainer.step(&data, &compute)?;
        Ok(())
    })? * batch as f64;
    // Make sure the task path (with its evaluations) also runs.
    train_task(&base, &data, &spec(2), &compute, &mut |_| {})?;
    eprintln!(
        "funetun engine: {ours:.0} samples/s ({} threads, batch {batch})",
        args.threads
    );

    let candle = if args.no_baseline {
        None
    } else {
        let reference = CandleModel::new(model, &base)?;
        let mut sgd = reference.sgd(0.01)?;
        let mut x = vec![0f32; batch * 784];
        let mut y = vec![0u8; batch];
        let idx: Vec<u32> = (0..batch as u32).collect();
        data.gather(&data.train, &idx, &mut x, &mut y);
        for _ in 0..2 {
            reference.sgd_step(&mut sgd, &x, &y)?;
        }
        let rate = time_steps(args.seconds, chunk_steps(model), || {
            reference.sgd_step(&mut sgd, &x, &y)?;
            Ok(())
        })? * batch as f64;
        eprintln!("candle autograd baseline: {rate:.0} samples/s");
        Some(rate)
    };
    let report = TrainReport {
        model: model.to_string(),
        batch,
        threads: args.threads,
        samples_per_sec: ours,
        candle_samples_per_sec: candle,
        ratio_vs_candle: candle.map(|c| ours / c),
    };
    if let Some(r) = report.ratio_vs_candle {
        eprintln!("ratio funetun / candle: {r:.2}×");
    }
    if args.json {
        print_json(&report)?;
    }
    Ok(())
}

/// Runs `step` in chunks of `chunk` until `seconds` have passed; returns steps/s.
pub(crate) fn time_steps(
    seconds: f64,
    chunk: usize,
    mut step: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut steps = 0usize;
    while start.elapsed().as_secs_f64() < seconds {
        for _ in 0..chunk {
            step()?;
        }
        steps += chunk;
    }
    Ok(steps as f64 / start.elapsed().as_secs_f64())
}
