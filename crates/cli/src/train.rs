//! `funetun train`: train a model locally. Image models report test
//! accuracy per epoch; transformers report validation loss every
//! `--eval-every` steps and tokens per second.

use std::time::Instant;

use funetun_core::{encode, keccak256};
use funetun_ml::optim::Schedule;
use funetun_ml::recipe::Recipe;
use funetun_ml::train::{LocalTrainer, evaluate, shard_pool};
use funetun_ml::{Architecture as _, Model, OptimizerKind, TaskSpec};
use serde::Serialize;

use crate::args::{ComputeArgs, DataArgs, ModelArgs, step_bar};
use crate::output::print_json;

/// Arguments of `funetun train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    compute: ComputeArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Image models: passes over the training split.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Transformers: optimizer steps (default: the configuration's, 2,000 for baby).
    #[arg(long)]
    iters: Option<u64>,
    /// Transformers: steps between validation-loss measurements (0: only at the end).
    #[arg(long, default_value_t = 500)]
    eval_every: u64,
    /// Transformers: validation windows per measurement, spread over the
    /// split (0: every non-overlapping window).
    #[arg(long, default_value_t = 0)]
    eval_windows: usize,
    /// Learning rate (default: 0.02 for mlp, 0.001 for cnn, the configuration's for transformers).
    #[arg(long)]
    lr: Option<f32>,
    /// Samples (images, or context windows) per step (default: 64, the configuration's for transformers).
    #[arg(long)]
    batch: Option<usize>,
    /// sgd, momentum[:MU], adam or adamw[:WD[,BETA2]] (default: momentum:0.9 for mlp, adam for cnn, the configuration's for transformers).
    #[arg(long)]
    optimizer: Option<OptimizerKind>,
    /// Learning-rate schedule: constant or cosine:WARMUP,TOTAL,MIN_LR (default: the configuration's).
    #[arg(long)]
    lr_schedule: Option<Schedule>,
    /// Largest gradient norm (0: no clipping; default: the configuration's).
    #[arg(long)]
    grad_clip: Option<f32>,
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

#[derive(Serialize)]
struct TextReport {
    dataset: String,
    model: String,
    params: usize,
    iters: u64,
    batch: usize,
    tokens_trained: u64,
    val_loss: f64,
    val_perplexity: f64,
    val_loss_curve: Vec<(u64, f64)>,
    train_loss: f64,
    tokens_per_sec: f64,
    train_seconds: f64,
    peak_rss_bytes: Option<u64>,
    threads: usize,
    final_hash: String,
}

/// Runs `funetun train`.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if args.model.model.is_transformer() {
        return run_text(args);
    }
    let model = args.model.model;
    let (default_lr, default_opt) = match model {
        funetun_ml::ModelKind::Cnn => (0.001, OptimizerKind::ADAM),
        _ => (0.02, OptimizerKind::Momentum { momentum: 0.9 }),
    };
    let batch = args.batch.unwrap_or(64);
    let spec = TaskSpec {
        model: Model::new(model, None)?,
        shard: 0,
        shards: 1,
        steps: 1,
        batch,
        lr: args.lr.unwrap_or(default_lr),
        optimizer: args.optimizer.unwrap_or(default_opt),
        schedule: args.lr_schedule.unwrap_or(Schedule::Constant),
        step0: 0,
        grad_clip: args.grad_clip.unwrap_or(0.0),
        seed: args.seed,
        lora: None,
    };
    anyhow::ensure!(args.epochs >= 1, "--epochs must be at least 1");
    spec.validate()?;
    let data = args.data.load(model)?;
    let model = args.model.resolve(&data)?;
    let compute = args.compute.compute()?;
    let n = data.train.len();
    let steps_per_epoch = n.div_ceil(batch);
    let mut trainer = LocalTrainer::new(&spec, &model.init(args.seed), (0..n as u32).collect())?;
    eprintln!(
        "training {model} on {} ({n} samples), {} epochs, batch {batch}, {} lr {}, {} thread(s)",
        data.name,
        args.epochs,
        spec.optimizer,
        spec.lr,
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
        let eval = evaluate(model, trainer.params(), &data, &data.test, None, &compute)?;
        eprintln!(
            "epoch {epoch}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}%",
            loss_sum / steps_per_epoch as f64,
            eval.loss,
            100.0 * eval.accuracy
        );
        accuracy_per_epoch.push(eval.accuracy);
        last = Some(eval);
    }
    let bytes = encode(&trainer.weights()?);
    if let Some(out) = &args.out {
        crate::output::write_atomic(out, &bytes)?;
    }
    let eval = last.ok_or_else(|| anyhow::anyhow!("no epoch ran"))?;
    let report = Report {
        dataset: data.name.to_string(),
        model: model.to_string(),
        epochs: args.epochs,
        test_accuracy: eval.accuracy,
        test_loss: eval.loss,
        accuracy_per_epoch,
        samples_per_sec: (steps_per_epoch * args.epochs * batch) as f64 / train_seconds,
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

/// Flags that override a named configuration's recipe.
#[derive(Clone, Copy, Debug, Default)]
pub struct Overrides {
    /// Context windows per step.
    pub batch: Option<usize>,
    /// Peak learning rate.
    pub lr: Option<f32>,
    /// Inner optimizer.
    pub optimizer: Option<OptimizerKind>,
    /// Learning-rate schedule.
    pub schedule: Option<Schedule>,
    /// Gradient clipping norm.
    pub grad_clip: Option<f32>,
}

/// A transformer's training run: the task spec over the whole training
/// split, from the named configuration's recipe (baby's when none is
/// named) overridden by flags.
pub fn text_spec(model: Model, recipe: Option<Recipe>, o: Overrides, seed: u64) -> TaskSpec {
    let r = recipe.unwrap_or(Recipe::named("baby").expect("baby is a recipe"));
    TaskSpec {
        model,
        shard: 0,
        shards: 1,
        steps: 1,
        batch: o.batch.unwrap_or(r.batch),
        lr: o.lr.unwrap_or(r.lr),
        optimizer: o.optimizer.unwrap_or(r.optimizer),
        schedule: o.schedule.unwrap_or(r.schedule),
        step0: 0,
        grad_clip: o.grad_clip.unwrap_or(r.grad_clip),
        seed,
        lora: None,
    }
}

fn run_text(args: TrainArgs) -> anyhow::Result<()> {
    let data = args.data.load(args.model.model)?;
    let model = args.model.resolve(&data)?;
    let recipe = args.model.recipe();
    let spec = text_spec(
        model,
        recipe,
        Overrides {
            batch: args.batch,
            lr: args.lr,
            optimizer: args.optimizer,
            schedule: args.lr_schedule,
            grad_clip: args.grad_clip,
        },
        args.seed,
    );
    spec.validate()?;
    let iters = args.iters.or(recipe.map(|r| r.iters)).unwrap_or(2000);
    anyhow::ensure!(iters >= 1, "--iters must be at least 1");
    let compute = args.compute.compute()?;
    let context = model.transformer().map_or(0, |c| c.context);
    let pool = shard_pool(model, &data, 0, 1)?;
    let mut trainer = LocalTrainer::new(&spec, &model.init(args.seed), pool)?;
    eprintln!(
        "training {model} ({} parameters) on {} ({} training tokens), {iters} steps of {} × {context} tokens, \
         {} lr {} ({}), clip {}, {} thread(s)",
        model.num_params(),
        data.name,
        data.train.len(),
        spec.batch,
        spec.optimizer,
        spec.lr,
        spec.schedule,
        spec.grad_clip,
        compute.threads()
    );
    // Non-overlapping windows, all of them or `--eval-windows` spread evenly.
    let eval_windows: Option<Vec<u32>> = (args.eval_windows > 0).then(|| {
        let all = funetun_ml::data::text::windows(data.test.len(), context) / context.max(1);
        let n = args.eval_windows.min(all);
        (0..n).map(|i| ((i * all / n) * context) as u32).collect()
    });
    let bar = step_bar(iters, "train");
    let mut curve = Vec::new();
    let mut train_seconds = 0.0;
    let mut recent = Vec::new();
    for step in 1..=iters {
        let start = Instant::now();
        recent.push(f64::from(trainer.step(&data, &compute)?));
        train_seconds += start.elapsed().as_secs_f64();
        bar.inc(1);
        if step % 20 == 0 {
            bar.set_message(format!("loss {:.4}", mean_tail(&recent, 20)));
        }
        if step == iters || (args.eval_every > 0 && step % args.eval_every == 0) {
            let eval = evaluate(
                model,
                trainer.params(),
                &data,
                &data.test,
                eval_windows.as_deref(),
                &compute,
            )?;
            bar.suspend(|| {
                eprintln!(
                    "step {step}: train loss {:.4}, val loss {:.4} (perplexity {:.2})",
                    mean_tail(&recent, 50),
                    eval.loss,
                    eval.perplexity()
                )
            });
            curve.push((step, eval.loss));
        }
    }
    bar.finish_and_clear();
    let bytes = encode(&trainer.weights()?);
    if let Some(out) = &args.out {
        crate::output::write_atomic(out, &bytes)?;
    }
    let val_loss = curve.last().map_or(f64::NAN, |&(_, l)| l);
    let tokens = iters * (spec.batch * context) as u64;
    let report = TextReport {
        dataset: data.name.to_string(),
        model: model.to_string(),
        params: model.num_params(),
        iters,
        batch: spec.batch,
        tokens_trained: tokens,
        val_loss,
        val_perplexity: val_loss.exp(),
        val_loss_curve: curve,
        train_loss: mean_tail(&recent, 50),
        tokens_per_sec: tokens as f64 / train_seconds,
        train_seconds,
        peak_rss_bytes: peak_rss_bytes(),
        threads: compute.threads(),
        final_hash: keccak256(&bytes).to_string(),
    };
    eprintln!(
        "val loss {:.4}, {:.0} tokens/s over {:.1} s, peak memory {}, weights {}",
        report.val_loss,
        report.tokens_per_sec,
        report.train_seconds,
        report
            .peak_rss_bytes
            .map_or("unknown".into(), |b| format!("{:.0} MB", b as f64 / 1e6)),
        report.final_hash
    );
    if args.json {
        print_json(&report)?;
    }
    Ok(())
}

fn mean_tail(values: &[f64], n: usize) -> f64 {
    let tail = &values[values.len().saturating_sub(n)..];
    tail.iter().sum::<f64>() / tail.len().max(1) as f64
}

/// The process's peak resident memory (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time (user + system) so far, in seconds, of this process (`.0`) and
/// of its children that were waited for (`.1`), from Linux
/// `/proc/self/stat` (in ticks of the fixed `USER_HZ`, 1/100 s); `None`
/// elsewhere.
pub fn cpu_seconds() -> Option<(f64, f64)> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at the
    // state, field 3; utime, stime, cutime and cstime are fields 14 to 17.
    let fields: Vec<u64> = stat
        .rsplit_once(") ")?
        .1
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let [utime, stime, cutime, cstime] = fields[..] else {
        return None;
    };
    Some((
        (utime + stime) as f64 / USER_HZ,
        (cutime + cstime) as f64 / USER_HZ,
    ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::cpu_seconds;

    #[test]
    fn cpu_seconds_count_this_process_and_its_reaped_children() {
        let (self0, children0) = cpu_seconds().expect("/proc/self/stat is readable");
        // Arithmetic here until the count moves by 0.2 s (it must, within
        // a minute), and a third of a second or so in a child.
        let started = std::time::Instant::now();
        let mut x = 1u64;
        while cpu_seconds().expect("readable").0 - self0 < 0.2 {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "own CPU time did not move from {self0}"
            );
        }
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .expect("sh runs");
        assert!(status.success());
        let (_, children1) = cpu_seconds().expect("/proc/self/stat is readable");
        assert!(
            children1 - children0 >= 0.05,
            "children's CPU {children0} → {children1}"
        );
    }
}
