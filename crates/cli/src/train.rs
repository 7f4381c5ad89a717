//! `funetun train`: train a model locally and report test accuracy per epoch.

use std::time::Instant;

use funetun_core::{encode, keccak256};
use funetun_ml::train::{LocalTrainer, evaluate};
use funetun_ml::{ModelKind, OptimizerKind};
use serde::Serialize;

use crate::args::{ComputeArgs, DataArgs, step_bar};
use crate::output::print_json;
use funetun_ml::Architecture as _;

/// Arguments of `funetun train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    compute: ComputeArgs,
    /// Network: mlp or cnn.
    #[arg(long, default_value = "mlp")]
    model: ModelKind,
    /// Passes over the training split.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Learning rate (default: 0.02 for mlp, 0.001 for cnn).
    #[arg(long)]
    lr: Option<f32>,
    /// Samples per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// sgd, momentum[:MU] or adam / adamw[:WD] (default: momentum:0.9 for mlp, adam for cnn).
    #[arg(long)]
    optimizer: Option<OptimizerKind>,
    /// Seed of θ₀ and of the data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the trained weights here (canonical safetensors).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Print one JSON object as the last stdout line.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    dataset: String,
    model: String,
    epochs: usize,
    test_accuracy: f64,
    test_loss: f64,
    accuracy_per_epoch: Vec<f64>,
    samples_per_sec: f64,
    threads: usize,
    final_hash: String,
}

/// Runs `funetun train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let (default_lr, default_opt) = match args.model {
        ModelKind::Mlp => (0.02, OptimizerKind::Momentum { momentum: 0.9 }),
        ModelKind::Cnn => (0.001, OptimizerKind::ADAM),
    };
    let lr = args.lr.unwrap_or(default_lr);
    let optimizer = args.optimizer.unwrap_or(default_opt);
    anyhow::ensure!(args.epochs >= 1, "--epochs must be at least 1");
    funetun_ml::TaskSpec {
        model: args.model,
        shard: 0,
        shards: 1,
        steps: 1,
        batch: args.batch,
        lr,
        optimizer,
        schedule: funetun_ml::optim::Schedule::Constant,
        step0: 0,
        grad_clip: 0.0,
        seed: args.seed,
    }
    .validate()?;
    let data = args.data.load()?;
    let compute = args.compute.compute()?;
    let n = data.train.len();
    let steps_per_epoch = n.div_ceil(args.batch);
    let mut trainer = LocalTrainer::new(
        args.model,
        &args.model.init(args.seed),
        (0..n as u32).collect(),
        args.batch,
        lr,
        optimizer,
        args.seed,
    )?;
    eprintln!(
        "training {} on {} ({n} samples), {} epochs, batch {}, {optimizer} lr {lr}, {} thread(s)",
        args.model,
        data.name,
        args.epochs,
        args.batch,
        compute.threads()
    );
    let mut accuracy_per_epoch = Vec::new();
    let mut train_seconds = 0.0;
    let mut last = None;
    for epoch in 1..=args.epochs {
        let bar = step_bar(
            steps_per_epoch as u64,
            &format!("epoch {epoch}/{}", args.epochs),
        );
        let start = Instant::now();
        let mut loss_sum = 0.0;
        for step in 1..=steps_per_epoch {
            loss_sum += f64::from(trainer.step(&data, &compute)?);
            if step % 50 == 0 {
                bar.set_message(format!("loss {:.4}", loss_sum / step as f64));
            }
            bar.inc(1);
        }
        train_seconds += start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let eval = evaluate(
            args.model,
            trainer.params(),
            &data,
            &data.test,
            None,
            &compute,
        )?;
        eprintln!(
            "epoch {epoch}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}%",
            loss_sum / steps_per_epoch as f64,
            eval.loss,
            100.0 * eval.accuracy
        );
        accuracy_per_epoch.push(eval.accuracy);
        last = Some(eval);
    }
    let weights = trainer.weights()?;
    let bytes = encode(&weights);
    if let Some(out) = &args.out {
        crate::output::write_atomic(out, &bytes)?;
    }
    let eval = last.ok_or_else(|| anyhow::anyhow!("no epoch ran"))?;
    let report = Report {
        dataset: data.name.to_string(),
        model: args.model.to_string(),
        epochs: args.epochs,
        test_accuracy: eval.accuracy,
        test_loss: eval.loss,
        accuracy_per_epoch,
        samples_per_sec: (steps_per_epoch * args.epochs * args.batch) as f64 / train_seconds,
        threads: compute.threads(),
        final_hash: keccak256(&bytes).to_string(),
    };
    eprintln!(
        "test accuracy {:.2}%, {:.0} samples/s, weights {}",
        100.0 * report.test_accuracy,
        report.samples_per_sec,
        report.final_hash
    );
    if args.json {
        print_json(&report)?;
    }
    Ok(())
}
