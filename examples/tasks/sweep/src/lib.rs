//! One point of a hyper-parameter sweep: trains Funetun's MLP (784–256–10)
//! with the training engine itself, `funetun-ml` compiled to WebAssembly,
//! on the built-in synthetic image set, and returns its validation
//! accuracy.
//!
//! Input (every field but `lr` optional):
//!
//! ```json
//! {"lr": 0.05, "optimizer": "momentum", "batch": 32, "steps": 60,
//!  "seed": 1, "data_seed": 0, "train": 1000, "test": 500}
//! ```
//!
//! `optimizer` is any the engine takes (`sgd`, `momentum[:μ]`, `adam`,
//! `adamw[:decay[,β₂]]`); `seed` fixes the initial weights and the batch
//! order, `data_seed` the synthetic set. Output: the settings as used,
//! `val_accuracy` and `val_loss` on the test split, and the loss on a
//! fixed training sample before and after. The engine's bytes are fixed
//! by its serial reduction order, so honest replicas agree bit for bit.
//! The defaults take about 4.3·10⁹ units of fuel, inside a task's default
//! budget of 10¹⁰: a step of 32 samples costs about 4.3·10⁷ (`funetun
//! bench sandbox`), the rest is drawing the data and measuring the loss
//! and accuracy; give more fuel (`--fuel`) for longer runs.

use funetun_ml::data::synthetic;
use funetun_ml::optim::Schedule;
use funetun_ml::{
    Architecture as _, Compute, Model, OptimizerKind, TaskSpec, evaluate, train_task,
};
use serde::{Deserialize, Serialize};

/// The most samples of each split, and of steps × batch: bounds that keep
/// a task's memory well under the sandbox's cap.
const MAX_SAMPLES: usize = 20_000;
const MAX_WORK: usize = 200_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    lr: f32,
    #[serde(default = "default_optimizer")]
    optimizer: String,
    #[serde(default = "default_batch")]
    batch: usize,
    #[serde(default = "default_steps")]
    steps: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    data_seed: u64,
    #[serde(default = "default_train")]
    train: usize,
    #[serde(default = "default_test")]
    test: usize,
}

fn default_optimizer() -> String {
    "sgd".into()
}
fn default_batch() -> usize {
    32
}
fn default_steps() -> usize {
    60
}
fn default_train() -> usize {
    1_000
}
fn default_test() -> usize {
    500
}

#[derive(Serialize)]
struct Output {
    lr: f32,
    optimizer: String,
    batch: usize,
    steps: usize,
    seed: u64,
    val_accuracy: f64,
    val_loss: f64,
    train_loss_before: f32,
    train_loss_after: f32,
}

fn sweep(input: Input) -> Result<Output, String> {
    if input.train == 0 || input.train > MAX_SAMPLES || input.test == 0 || input.test > MAX_SAMPLES
    {
        return Err(format!(
            "train and test must be between 1 and {MAX_SAMPLES} samples"
        ));
    }
    if input.steps.saturating_mul(input.batch) > MAX_WORK {
        return Err(format!("steps × batch must be at most {MAX_WORK}"));
    }
    let optimizer: OptimizerKind = input.optimizer.parse().map_err(|e| format!("{e}"))?;
    let data =
        synthetic::generate(input.data_seed, input.train, input.test).map_err(|e| e.to_string())?;
    let model = Model::Mlp;
    let base = model.init(input.seed);
    let spec = TaskSpec {
        model,
        shard: 0,
        shards: 1,
        steps: input.steps,
        batch: input.batch,
        lr: input.lr,
        optimizer,
        schedule: Schedule::Constant,
        step0: 0,
        grad_clip: 0.0,
        seed: input.seed,
        lora: None,
    };
    let compute = Compute::new(1).map_err(|e| e.to_string())?;
    let outcome =
        train_task(&base, &data, &spec, &compute, &mut |_| {}).map_err(|e| e.to_string())?;
    let trained = base
        .add(&outcome.delta)
        .map_err(|e| e.to_string())?
        .to_flat();
    let eval =
        evaluate(model, &trained, &data, &data.test, None, &compute).map_err(|e| e.to_string())?;
    Ok(Output {
        lr: input.lr,
        optimizer: input.optimizer,
        batch: input.batch,
        steps: input.steps,
        seed: input.seed,
        val_accuracy: eval.accuracy,
        val_loss: eval.loss,
        train_loss_before: outcome.loss_before,
        train_loss_after: outcome.loss_after,
    })
}

funetun_guest::task!(sweep);
