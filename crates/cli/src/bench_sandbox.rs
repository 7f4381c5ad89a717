//! `funetun bench sandbox`: what the WebAssembly sandbox costs a training
//! step. The `sweep` example is the engine of `funetun-ml` compiled to
//! WebAssembly; it trains the MLP in the sandbox a worker uses, and the
//! same engine trains the same spec natively here, on one thread (a task
//! has one). A step's time in the sandbox comes from two runs that differ
//! only in their number of steps, so drawing the data, compiling the
//! module and the evaluations cancel out.

use std::time::Instant;

use anyhow::Context as _;
use funetun_compute::examples::example;
use funetun_compute::{Input, Limits, Program, Sandbox};
use funetun_ml::data::synthetic;
use funetun_ml::optim::Schedule;
use funetun_ml::{Architecture as _, Model, OptimizerKind, TaskSpec};
use serde::Serialize;

use crate::output::print_json;

/// Arguments of `funetun bench sandbox`.
#[derive(Debug, clap::Args)]
pub struct SandboxBenchArgs {
    /// Steps of the shorter sandbox run.
    #[arg(long, default_value_t = 5)]
    short_steps: usize,
    /// Steps of the longer sandbox run (and of the native run).
    #[arg(long, default_value_t = 45)]
    long_steps: usize,
    /// Samples per step.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Times each run is repeated; the fastest counts.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Print the report as one JSON line on stdout.
    #[arg(long)]
    json: bool,
}

/// The report of `funetun bench sandbox`.
#[derive(Debug, Serialize)]
struct SandboxReport {
    model: String,
    batch: usize,
    /// Milliseconds per step inside the sandbox.
    wasm_step_ms: f64,
    /// Milliseconds per step of the native engine on one thread.
    native_step_ms: f64,
    /// Sandbox over native: the price of bitwise agreement across machines.
    ratio: f64,
    /// WebAssembly fuel per step (about one unit per instruction).
    fuel_per_step: f64,
    /// Seconds to compile the module (once per worker and module).
    compile_seconds: f64,
    /// The module's size.
    module_bytes: usize,
    /// Test accuracy after `long_steps` in the sandbox and natively: the
    /// same engine, so close, though not equal in their bits (the native
    /// matrix products use fused multiply-adds and wider vectors).
    wasm_val_accuracy: f64,
    native_val_accuracy: f64,
}

const LR: f32 = 0.05;
const OPTIMIZER: &str = "momentum";
const SEED: u64 = 1;
const TRAIN: usize = 500;
const TEST: usize = 300;

/// Runs the benchmark.
pub fn run(args: SandboxBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.short_steps >= 1 && args.long_steps > args.short_steps,
        "--long-steps must be greater than --short-steps, which must be at least 1"
    );
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    let repeats = args.repeats.max(1);
    let wasm = example("sweep")
        .context("the sweep example is not shipped")?
        .wasm;
    let sandbox = Sandbox::new().map_err(|e| anyhow::anyhow!("the sandbox did not start: {e}"))?;
    let started = Instant::now();
    let program = sandbox
        .compile(wasm)
        .map_err(|e| anyhow::anyhow!("the sweep module did not compile: {e}"))?;
    let compile_seconds = started.elapsed().as_secs_f64();

    let short = sandboxed(&sandbox, &program, args.short_steps, args.batch, repeats)?;
    let long = sandboxed(&sandbox, &program, args.long_steps, args.batch, repeats)?;
    let extra = (args.long_steps - args.short_steps) as f64;
    let wasm_step = (long.seconds - short.seconds) / extra;
    let fuel_per_step = (long.fuel - short.fuel) as f64 / extra;
    eprintln!(
        "sandbox: {:.2} ms a step ({fuel_per_step:.3e} fuel), {} bytes compiled in {compile_seconds:.2} s",
        wasm_step * 1e3,
        wasm.len()
    );

    let (native_step, native_accuracy) = native(args.long_steps, args.batch, repeats)?;
    eprintln!(
        "native engine, 1 thread: {:.2} ms a step",
        native_step * 1e3
    );
    let report = SandboxReport {
        model: Model::Mlp.to_string(),
        batch: args.batch,
        wasm_step_ms: wasm_step * 1e3,
        native_step_ms: native_step * 1e3,
        ratio: wasm_step / native_step,
        fuel_per_step,
        compile_seconds,
        module_bytes: wasm.len(),
        wasm_val_accuracy: long.accuracy,
        native_val_accuracy: native_accuracy,
    };
    eprintln!(
        "ratio sandbox / native: {:.1}× (test accuracy {:.3} in the sandbox, {:.3} native)",
        report.ratio, report.wasm_val_accuracy, report.native_val_accuracy
    );
    if args.json {
        print_json(&report)?;
    }
    Ok(())
}

/// The fastest of `repeats` sandboxed runs of `steps` steps.
struct Run {
    seconds: f64,
    fuel: u64,
    accuracy: f64,
}

fn sandboxed(
    sandbox: &Sandbox,
    program: &Program,
    steps: usize,
    batch: usize,
    repeats: usize,
) -> anyhow::Result<Run> {
    let input = serde_json::json!({
        "lr": LR, "optimizer": OPTIMIZER, "batch": batch, "steps": steps,
        "seed": SEED, "train": TRAIN, "test": TEST,
    });
    let input = Input::new(serde_json::to_vec(&input)?)?;
    let limits = Limits {
        fuel: 10_000_000_000_000,
        ..Limits::TASK
    };
    let mut best: Option<Run> = None;
    for _ in 0..repeats {
        let started = Instant::now();
        let outcome = sandbox.run(program, &input, &limits);
        let seconds = started.elapsed().as_secs_f64();
        let output = outcome
            .result
            .as_ref()
            .map_err(|f| anyhow::anyhow!("the sweep task failed in the sandbox: {f}"))?;
        let output: serde_json::Value = serde_json::from_slice(output)?;
        let accuracy = output["val_accuracy"]
            .as_f64()
            .with_context(|| format!("the sweep task answered without an accuracy: {output}"))?;
        if best.as_ref().is_none_or(|b| seconds < b.seconds) {
            best = Some(Run {
                seconds,
                fuel: outcome.fuel_used,
                accuracy,
            });
        }
    }
    Ok(best.expect("at least one repeat"))
}

/// The native engine on the task `sweep` runs: seconds a step (the fastest
/// of `repeats` runs of `steps` steps) and the test accuracy after them.
fn native(steps: usize, batch: usize, repeats: usize) -> anyhow::Result<(f64, f64)> {
    let data = synthetic::generate(0, TRAIN, TEST)?;
    let compute = funetun_ml::Compute::new(1)?;
    let model = Model::Mlp;
    let base = model.init(SEED);
    let spec = TaskSpec {
        model,
        shard: 0,
        shards: 1,
        steps,
        batch,
        lr: LR,
        optimizer: OPTIMIZER.parse::<OptimizerKind>()?,
        schedule: Schedule::Constant,
        step0: 0,
        grad_clip: 0.0,
        seed: SEED,
        lora: None,
    };
    spec.validate()?;
    let mut best = f64::INFINITY;
    let mut trained = None;
    for _ in 0..repeats {
        let mut trainer = funetun_ml::LocalTrainer::new(&spec, &base, (0..TRAIN as u32).collect())?;
        let started = Instant::now();
        for _ in 0..steps {
            trainer.step(&data, &compute)?;
        }
        best = best.min(started.elapsed().as_secs_f64() / steps as f64);
        trained = Some(trainer);
    }
    // Every repeat trains the same bits: evaluate the last one.
    let trainer = trained.expect("at least one repeat");
    let eval = funetun_ml::evaluate(model, trainer.params(), &data, &data.test, None, &compute)?;
    Ok((best, eval.accuracy))
}
