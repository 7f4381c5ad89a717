//! Local training: the deterministic training task that trainers run and
//! validators replay, plus evaluation.

use funetun_core::TensorSet;

use crate::data::sampler::{BatchSampler, eval_sample, shard_indices};
use crate::data::{Dataset, NUM_CLASSES, Split};
use crate::engine::loss::evaluate_logits;
use crate::engine::{Compute, Network, network};
use crate::error::{Error, Result};
use crate::model::Architecture as _;
use crate::model::Model;
use crate::optim::{Optimizer, OptimizerKind};

/// Samples on which a task measures its loss before and after training.
pub const TASK_EVAL_SAMPLES: usize = 1024;
/// Largest accepted batch size.
pub const MAX_BATCH: usize = 4096;
/// Largest accepted number of steps in one task.
pub const MAX_STEPS: usize = 1_000_000;
const EVAL_BATCH: usize = 500;

/// Everything that determines a training task's delta, besides the base
/// weights and the data set.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    /// The network.
    pub model: Model,
    /// Which shard of the training split to train on.
    pub shard: usize,
    /// How many shards the training split is cut into.
    pub shards: usize,
    /// Number of optimizer steps.
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Learning rate.
    pub lr: f32,
    /// Update rule.
    pub optimizer: OptimizerKind,
    /// Seed of the data order.
    pub seed: u64,
}

impl TaskSpec {
    /// Checks ranges, naming the offending field and its valid range.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(Error::invalid(
                "steps",
                format!("{} is outside 1..={MAX_STEPS}", self.steps),
            ));
        }
        if self.batch == 0 || self.batch > MAX_BATCH {
            return Err(Error::invalid(
                "batch",
                format!("{} is outside 1..={MAX_BATCH}", self.batch),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 10.0) {
            return Err(Error::invalid(
                "lr",
                format!("{} must be a number in (0, 10]", self.lr),
            ));
        }
        if self.shards == 0 || self.shard >= self.shards {
            return Err(Error::invalid(
                "shard",
                format!(
                    "shard {} of {}: need shards ≥ 1 and shard < shards",
                    self.shard, self.shards
                ),
            ));
        }
        Ok(())
    }
}

/// What a training task produced.
#[derive(Clone, Debug)]
pub struct TaskOutcome {
    /// θ_S − θ_base, tensor by tensor.
    pub delta: TensorSet,
    /// Mean loss of the base weights on the task's evaluation sample.
    pub loss_before: f32,
    /// Mean loss of the trained weights on the same sample.
    pub loss_after: f32,
    /// Samples processed (steps × batch).
    pub samples: usize,
}

/// Loss and accuracy of some weights on some samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Number of samples evaluated.
    pub count: usize,
}

/// A model being trained: weights, optimizer state, data order, scratch.
pub struct LocalTrainer {
    model: Model,
    net: Box<dyn Network>,
    params: Vec<f32>,
    grads: Vec<f32>,
    optimizer: Optimizer,
    sampler: BatchSampler,
    indices: Vec<u32>,
    inputs: Vec<f32>,
    labels: Vec<u8>,
    steps_done: usize,
}

impl LocalTrainer {
    /// Starts from `base` (which must fit `model`), drawing batches of
    /// `batch` from `pool` in the order fixed by `seed`.
    pub fn new(
        model: Model,
        base: &TensorSet,
        pool: Vec<u32>,
        batch: usize,
        lr: f32,
        optimizer: OptimizerKind,
        seed: u64,
    ) -> Result<Self> {
        model.zeros().check_same_layout(base)?;
        base.check_finite()?;
        if pool.is_empty() {
            return Err(Error::invalid("shard", "the shard holds no samples"));
        }
        let params = base.to_flat();
        let n = params.len();
        Ok(Self {
            model,
            net: network(model, batch)
                .ok_or_else(|| Error::invalid("model", format!("{model} trains on text")))?,
            grads: vec![0.0; n],
            optimizer: Optimizer::new(optimizer, lr, n),
            sampler: BatchSampler::new(pool, seed),
            indices: vec![0; batch],
            inputs: vec![0.0; batch * 784],
            labels: vec![0; batch],
            params,
            steps_done: 0,
        })
    }

    /// One optimizer step on the next batch; returns the batch's mean loss.
    pub fn step(&mut self, data: &Dataset, compute: &Compute) -> Result<f32> {
        self.sampler.next_batch(&mut self.indices);
        data.gather(
            &data.train,
            &self.indices,
            &mut self.inputs,
            &mut self.labels,
        );
        let par = compute.par();
        let Self {
            net,
            params,
            grads,
            optimizer,
            inputs,
            labels,
            ..
        } = self;
        let loss = compute.run(|| {
            let loss = net.loss_and_grad(params, inputs, labels, grads, par);
            optimizer.step(params, grads, par.threads > 1);
            loss
        });
        self.steps_done += 1;
        if !loss.is_finite() {
            return Err(Error::Diverged {
                step: self.steps_done,
                detail: format!("batch loss is {loss}"),
            });
        }
        Ok(loss)
    }

    /// The current weights, flat in name order.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The current weights as named tensors.
    pub fn weights(&self) -> Result<TensorSet> {
        Ok(self.model.zeros().from_flat_like(&self.params)?)
    }
}

/// Loss and accuracy of flat weights `params` on `split` (all of it, or
/// the samples in `indices`).
pub fn evaluate(
    model: Model,
    params: &[f32],
    data: &Dataset,
    split: &Split,
    indices: Option<&[u32]>,
    compute: &Compute,
) -> Result<Evaluation> {
    let all: Vec<u32>;
    let indices = match indices {
        Some(i) => i,
        None => {
            all = (0..split.len() as u32).collect();
            &all
        }
    };
    if params.len() != model.num_params() {
        return Err(Error::invalid(
            "weights",
            format!(
                "{} values for a {model} with {} parameters",
                params.len(),
                model.num_params()
            ),
        ));
    }
    let mut net = network(model, EVAL_BATCH)
        .ok_or_else(|| Error::invalid("model", format!("{model} trains on text")))?;
    let mut inputs = vec![0.0; EVAL_BATCH * data.input_size()];
    let mut labels = vec![0u8; EVAL_BATCH];
    let mut logits = vec![0.0; EVAL_BATCH * NUM_CLASSES];
    let (mut loss, mut correct) = (0.0, 0);
    let par = compute.par();
    for chunk in indices.chunks(EVAL_BATCH) {
        let b = chunk.len();
        data.gather(split, chunk, &mut inputs, &mut labels[..b]);
        compute.run(|| net.forward(params, &inputs, b, &mut logits, par));
        let (l, c) = evaluate_logits(&logits[..b * NUM_CLASSES], &labels[..b], NUM_CLASSES);
        loss += l;
        correct += c;
    }
    let count = indices.len().max(1);
    Ok(Evaluation {
        loss: loss / count as f64,
        accuracy: correct as f64 / count as f64,
        count: indices.len(),
    })
}

/// Runs one training task: `spec.steps` steps from `base` on the task's
/// shard. The delta is a pure function of (base, data set, spec) on a given
/// platform class, whatever `compute`'s thread count. `on_step` is called
/// after every step with the number of steps done.
pub fn train_task(
    base: &TensorSet,
    data: &Dataset,
    spec: &TaskSpec,
    compute: &Compute,
    on_step: &mut dyn FnMut(usize),
) -> Result<TaskOutcome> {
    spec.validate()?;
    let pool = shard_indices(data.train.len(), spec.shard, spec.shards)?;
    let sample = eval_sample(&pool, TASK_EVAL_SAMPLES, spec.seed);
    let mut trainer = LocalTrainer::new(
        spec.model,
        base,
        pool,
        spec.batch,
        spec.lr,
        spec.optimizer,
        spec.seed,
    )?;
    let before = evaluate(
        spec.model,
        trainer.params(),
        data,
        &data.train,
        Some(&sample),
        compute,
    )?;
    for step in 1..=spec.steps {
        trainer.step(data, compute)?;
        on_step(step);
    }
    let after = evaluate(
        spec.model,
        trainer.params(),
        data,
        &data.train,
        Some(&sample),
        compute,
    )?;
    let trained = trainer.weights()?;
    trained.check_finite().map_err(|e| Error::Diverged {
        step: spec.steps,
        detail: e.to_string(),
    })?;
    Ok(TaskOutcome {
        delta: trained.sub(base)?,
        loss_before: before.loss as f32,
        loss_after: after.loss as f32,
        samples: spec.steps * spec.batch,
    })
}
