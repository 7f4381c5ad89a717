//! `funetun bench`: benchmarks with a baseline measured in the same run.

use std::time::Instant;

use funetun_ml::data::synthetic;
use funetun_ml::reference::CandleModel;
use funetun_ml::{ModelKind, OptimizerKind, TaskSpec, train_task};
use serde::Serialize;

use crate::chain::runtime;
use crate::output::print_json;
use funetun_ml::Architecture as _;

/// Subcommands of `funetun bench`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Training throughput (forward + backward + SGD step) against candle's
    /// autograd on the same model, batch and threads.
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
    /// The load process of `bench api`.
    #[command(hide = true)]
    ApiClient(crate::orchestrator::ApiClientArgs),
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
    /// Network: mlp or cnn.
    #[arg(long, default_value = "mlp")]
    model: ModelKind,
    /// Compute threads for both engines.
    #[arg(long, env = "FUNETUN_THREADS", default_value_t = 1)]
    threads: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
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
        BenchCommand::Demo(args) => crate::demo::bench(*args),
        BenchCommand::ApiClient(args) => crate::orchestrator::api_client(args),
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
fn chunk_steps(model: ModelKind) -> usize {
    match model {
        ModelKind::Mlp => 50,
        ModelKind::Cnn => 5,
    }
}

fn bench_train(args: TrainBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    // candle sizes its pools from these variables on first use.
    // SAFETY: no other thread exists yet.
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", args.threads.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", args.threads.to_string());
    }
    let data = synthetic::generate(0, 4096, 512)?;
    let compute = funetun_ml::Compute::new(args.threads)?;
    let base = args.model.init(0);

    // Ours: the real training task, timed in chunks until the budget is spent.
    let spec = |steps| TaskSpec {
        model: args.model,
        shard: 0,
        shards: 1,
        steps,
        batch: args.batch,
        lr: 0.01,
        optimizer: OptimizerKind::Sgd,
        schedule: funetun_ml::optim::Schedule::Constant,
        step0: 0,
        grad_clip: 0.0,
        seed: 0,
    };
    let mut trainer = funetun_ml::LocalTrainer::new(
        args.model,
        &base,
        (0..data.train.len() as u32).collect(),
        args.batch,
        0.01,
        OptimizerKind::Sgd,
        0,
    )?;
    spec(1).validate()?;
    for _ in 0..3 {
        trainer.step(&data, &compute)?;
    }
    let ours = time_steps(args.seconds, chunk_steps(args.model), || {
        trainer.step(&data, &compute)?;
        Ok(())
    })? * args.batch as f64;
    // Make sure the task path (with its evaluations) also runs.
    train_task(&base, &data, &spec(2), &compute, &mut |_| {})?;
    eprintln!(
        "funetun engine: {ours:.0} samples/s ({} threads, batch {})",
        args.threads, args.batch
    );

    let candle = if args.no_baseline {
        None
    } else {
        let model = CandleModel::new(args.model, &base)?;
        let mut sgd = model.sgd(0.01)?;
        let mut x = vec![0f32; args.batch * 784];
        let mut y = vec![0u8; args.batch];
        let idx: Vec<u32> = (0..args.batch as u32).collect();
        data.gather(&data.train, &idx, &mut x, &mut y);
        for _ in 0..2 {
            model.sgd_step(&mut sgd, &x, &y)?;
        }
        let rate = time_steps(args.seconds, chunk_steps(args.model), || {
            model.sgd_step(&mut sgd, &x, &y)?;
            Ok(())
        })? * args.batch as f64;
        eprintln!("candle autograd baseline: {rate:.0} samples/s");
        Some(rate)
    };
    let report = TrainReport {
        model: args.model.to_string(),
        batch: args.batch,
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
fn time_steps(
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
