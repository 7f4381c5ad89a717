//! Local training: the deterministic training task that trainers run and
//! validators replay, plus evaluation.
//!
//! A task trains either the whole model ([`train_task`]) or, when its spec
//! carries a [`LoraConfig`], low-rank adapters on a frozen base
//! ([`train_task_lora`], see [`crate::lora`]).

use funetun_core::TensorSet;
use funetun_core::lora::LoraConfig;

use crate::data::sampler::{BatchSampler, eval_sample, shard_indices};
use crate::data::text::{gather_windows, shard_windows};
use crate::data::{Dataset, NUM_CLASSES, Split};
use crate::engine::loss::{evaluate_logits, evaluate_token_logits};
use crate::engine::transformer::Transformer;
use crate::engine::{Compute, Network, network};
use crate::error::{Error, Result};
use crate::lora::Lora;
use crate::model::Architecture as _;
use crate::model::{Model, transformer};
use crate::optim::{Optimizer, OptimizerKind, Schedule, clip_grad_norm};

/// Samples on which a task measures its loss before and after training.
pub const TASK_EVAL_SAMPLES: usize = 1024;
/// Context windows on which a text task measures its loss before and after.
pub const TASK_EVAL_WINDOWS: usize = 64;
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
    /// Learning rate over the job's global step.
    pub schedule: Schedule,
    /// The job's global step at the task's first step.
    pub step0: u64,
    /// Largest global gradient norm (0: no clipping).
    pub grad_clip: f32,
    /// Seed of the data order.
    pub seed: u64,
    /// Train low-rank adapters on a frozen base instead of the whole
    /// model ([`train_task_lora`]); `None`: the whole model.
    pub lora: Option<LoraConfig>,
}

impl TaskSpec {
    /// What the task's base checkpoint and delta are: the model's weights,
    /// or its adapters when the task carries [`Self::lora`].
    pub fn space(&self) -> Result<crate::space::Space> {
        crate::space::Space::new(self.model, self.lora.as_ref())
    }

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
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return Err(Error::invalid(
                "grad_clip",
                format!("{} must be a number ≥ 0 (0: no clipping)", self.grad_clip),
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
        if let Some(lora) = &self.lora {
            // Checks the numbers and that every target names projections of the model.
            Lora::new(self.model, lora)?;
        }
        Ok(())
    }
}

/// What a training task produced.
#[derive(Clone, Debug)]
pub struct TaskOutcome {
    /// θ_S − θ_base, tensor by tensor (a LoRA task: the adapters after
    /// minus the adapters before).
    pub delta: TensorSet,
    /// Mean loss of the base weights on the task's evaluation sample (a
    /// LoRA task: of the base merged with the adapters it started from).
    pub loss_before: f32,
    /// Mean loss of the trained weights on the same sample (a LoRA task:
    /// of the base merged with the trained adapters).
    pub loss_after: f32,
    /// Samples processed (steps × batch).
    pub samples: usize,
}

/// Loss and accuracy of some weights on some samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy (per image, or per predicted token).
    pub loss: f64,
    /// Fraction classified correctly (images) or next tokens predicted
    /// correctly (text).
    pub accuracy: f64,
    /// Number of samples evaluated (images, or context windows).
    pub count: usize,
}

impl Evaluation {
    /// e^loss: the perplexity of a language model's next-token predictions.
    pub fn perplexity(&self) -> f64 {
        self.loss.exp()
    }
}

/// The mean next-token loss of a token stream ([`stream_loss`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamLoss {
    /// Mean cross-entropy per predicted token (nats).
    pub loss: f64,
    /// Tokens predicted: `windows × context`.
    pub tokens: usize,
    /// Context windows evaluated.
    pub windows: usize,
}

/// The network and the batch buffers a trainer feeds it.
enum Engine {
    Images {
        net: Box<dyn Network>,
        inputs: Vec<f32>,
        labels: Vec<u8>,
    },
    Text {
        net: Transformer,
        tokens: Vec<u32>,
        targets: Vec<u32>,
        context: usize,
    },
}

impl Engine {
    fn new(model: Model, batch: usize) -> Self {
        match (network(model, batch), model.transformer()) {
            (_, Some(c)) => Self::Text {
                net: Transformer::new(model, batch),
                tokens: vec![0; batch * c.context],
                targets: vec![0; batch * c.context],
                context: c.context,
            },
            (Some(net), None) => Self::Images {
                net,
                inputs: vec![0.0; batch * 784],
                labels: vec![0; batch],
            },
            (None, None) => unreachable!("every model is an image network or a transformer"),
        }
    }
}

/// The pool of samples a task of `model` draws from on its shard: image
/// indices, or window starts inside the shard's token range.
pub fn shard_pool(model: Model, data: &Dataset, shard: usize, shards: usize) -> Result<Vec<u32>> {
    check_fits(model, data)?;
    match model.transformer() {
        None => shard_indices(data.train.len(), shard, shards),
        Some(c) => shard_windows(data.train.len(), c.context, shard, shards),
    }
}

/// Refuses a model that cannot read the data set: an image model on text,
/// a transformer on images, or a vocabulary smaller than the tokenizer's.
pub fn check_fits(model: Model, data: &Dataset) -> Result<()> {
    match (model.transformer(), data.vocab()) {
        (None, None) => Ok(()),
        (Some(c), Some(v)) if c.vocab >= v.size() => Ok(()),
        (Some(c), Some(v)) => Err(Error::invalid(
            "vocab",
            format!(
                "the model's vocabulary ({}) is smaller than {}'s {} tokens ({} tokenizer); set vocab ≥ {}",
                c.vocab,
                data.name,
                v.size(),
                v.describe(),
                v.size()
            ),
        )),
        (Some(_), None) => Err(Error::invalid(
            "dataset",
            format!(
                "{model} trains on text, and {} is images; choose a text data set such as tinyshakespeare",
                data.name
            ),
        )),
        (None, Some(_)) => Err(Error::invalid(
            "model",
            format!(
                "{} is text; an {model} reads images, choose gpt or llama",
                data.name
            ),
        )),
    }
}

/// A model being trained: weights, optimizer state, data order, scratch.
///
/// In LoRA mode ([`Self::new_lora`]) the optimizer owns the adapters, and
/// `params` holds the base merged with the current adapters, re-merged
/// after every update.
pub struct LocalTrainer {
    model: Model,
    engine: Engine,
    /// The full model's weights (LoRA: merged), what the engine reads.
    params: Vec<f32>,
    /// The gradient of the full model's weights.
    grads: Vec<f32>,
    optimizer: Optimizer,
    lr: f32,
    schedule: Schedule,
    step0: u64,
    grad_clip: f32,
    sampler: BatchSampler,
    indices: Vec<u32>,
    steps_done: usize,
    lora: Option<Box<LoraState>>,
}

/// What a trainer adds in LoRA mode.
struct LoraState {
    lora: Lora,
    /// The frozen base model, flat.
    frozen: Vec<f32>,
    /// The adapters being trained, flat.
    adapters: Vec<f32>,
    /// Their gradient.
    grads: Vec<f32>,
}

/// The refusal of a spec that trains adapters where the whole model was asked for.
fn lora_needs_adapters(what: &str) -> Error {
    Error::invalid(
        "lora",
        format!(
            "the task trains low-rank adapters on a frozen base; run it with {what}, \
             passing the base model and the adapters, or remove [lora] to train the whole model"
        ),
    )
}

impl LocalTrainer {
    /// Starts from `base` (which must fit the spec's model) for the task
    /// `spec` (its batch, optimizer, schedule and seed), drawing batches
    /// from `pool` in the order fixed by the seed. A spec with
    /// [`TaskSpec::lora`] set is refused: see [`Self::new_lora`].
    pub fn new(spec: &TaskSpec, base: &TensorSet, pool: Vec<u32>) -> Result<Self> {
        let model = spec.model;
        if spec.lora.is_some() {
            return Err(lora_needs_adapters("LocalTrainer::new_lora"));
        }
        model.zeros().check_same_layout(base)?;
        base.check_finite()?;
        if pool.is_empty() {
            return Err(Error::invalid("shard", "the shard holds no samples"));
        }
        let params = base.to_flat();
        let n = params.len();
        let mut optimizer = Optimizer::new(spec.optimizer, spec.lr, n);
        if model.is_text() {
            // nanoGPT decays matrices and embeddings only.
            let layout = model.layout();
            let exempt = model
                .shapes()
                .into_iter()
                .filter(|(_, shape)| !transformer::decays(shape))
                .map(|(name, _)| layout.range(&name))
                .collect();
            optimizer = optimizer.without_decay(exempt);
        }
        Ok(Self::assemble(spec, pool, params, optimizer, None))
    }

    /// A trainer for `spec` on `pool` over the full buffer `params`, with
    /// its optimizer and, in LoRA mode, the adapters' state.
    fn assemble(
        spec: &TaskSpec,
        pool: Vec<u32>,
        params: Vec<f32>,
        optimizer: Optimizer,
        lora: Option<Box<LoraState>>,
    ) -> Self {
        Self {
            model: spec.model,
            engine: Engine::new(spec.model, spec.batch),
            grads: vec![0.0; params.len()],
            optimizer,
            lr: spec.lr,
            schedule: spec.schedule,
            step0: spec.step0,
            grad_clip: spec.grad_clip,
            sampler: BatchSampler::new(pool, spec.seed),
            indices: vec![0; spec.batch],
            params,
            steps_done: 0,
            lora,
        }
    }

    /// Starts LoRA training for the task `spec` (whose [`TaskSpec::lora`]
    /// names the adapters): `frozen` is the full base model, which never
    /// changes, and `adapters` the adapters to start from ([`Lora::init`],
    /// or a previous round's). The optimizer (the spec's rule, learning
    /// rate, schedule and gradient clipping, the clip measured over the
    /// adapters' gradient) updates only the adapters. AdamW's weight decay
    /// applies to every adapter tensor, as PEFT's trainers do (they are
    /// all matrices): it pulls `B·A` towards zero, the merged model
    /// towards the base.
    ///
    /// The full buffer the engine reads always holds `frozen` merged with
    /// the current adapters ([`Lora::merge_flat`]). A step runs the
    /// engine's forward and backward on it, maps the full gradient onto
    /// the adapters ([`Lora::adapter_grads`]), clips, updates the adapters
    /// and merges them again. Memory: the base twice (frozen and merged)
    /// and its gradient, plus optimizer state for the adapters only.
    pub fn new_lora(
        spec: &TaskSpec,
        frozen: &TensorSet,
        adapters: &TensorSet,
        pool: Vec<u32>,
    ) -> Result<Self> {
        let model = spec.model;
        let config = spec.lora.as_ref().ok_or_else(|| {
            Error::invalid(
                "lora",
                "the spec names no adapters; set its lora (rank, alpha, targets), \
                 or train the whole model with LocalTrainer::new",
            )
        })?;
        let lora = Lora::new(model, config)?;
        lora.check_inputs(frozen, adapters)?;
        if pool.is_empty() {
            return Err(Error::invalid("shard", "the shard holds no samples"));
        }
        let frozen = frozen.to_flat();
        let adapters = adapters.to_flat();
        let mut params = frozen.clone();
        lora.merge_flat(&frozen, &adapters, &mut params, crate::engine::Par::SERIAL);
        let a = adapters.len();
        let state = LoraState {
            lora,
            frozen,
            adapters,
            grads: vec![0.0; a],
        };
        let optimizer = Optimizer::new(spec.optimizer, spec.lr, a);
        Ok(Self::assemble(
            spec,
            pool,
            params,
            optimizer,
            Some(Box::new(state)),
        ))
    }

    /// One optimizer step on the next batch; returns the batch's mean loss.
    pub fn step(&mut self, data: &Dataset, compute: &Compute) -> Result<f32> {
        self.sampler.next_batch(&mut self.indices);
        let par = compute.par();
        let lr = self
            .schedule
            .lr_at(self.lr, self.step0 + self.steps_done as u64);
        self.optimizer.set_lr(lr);
        let Self {
            engine,
            params,
            grads,
            optimizer,
            indices,
            grad_clip,
            lora,
            ..
        } = self;
        let loss = match engine {
            Engine::Images {
                net,
                inputs,
                labels,
            } => {
                data.gather(&data.train, indices, inputs, labels);
                compute.run(|| net.loss_and_grad(params, inputs, labels, grads, par))
            }
            Engine::Text {
                net,
                tokens,
                targets,
                context,
            } => {
                gather_windows(data.train.tokens(), indices, *context, tokens, targets);
                let batch = indices.len();
                compute
                    .run(|| net.loss_and_grad(params, tokens, targets, batch, *context, grads, par))
            }
        };
        compute.run(|| match lora.as_deref_mut() {
            None => {
                if *grad_clip > 0.0 {
                    clip_grad_norm(grads, *grad_clip, par.threads > 1);
                }
                optimizer.step(params, grads, par.threads > 1);
            }
            Some(LoraState {
                lora,
                frozen,
                adapters,
                grads: adapter_grads,
            }) => {
                lora.adapter_grads(grads, adapters, adapter_grads, par);
                if *grad_clip > 0.0 {
                    clip_grad_norm(adapter_grads, *grad_clip, par.threads > 1);
                }
                optimizer.step(adapters, adapter_grads, par.threads > 1);
                lora.merge_flat(frozen, adapters, params, par);
            }
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

    /// The full model's current weights, flat in name order (LoRA: the
    /// base merged with the current adapters): what evaluation reads.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The weights being trained as named tensors: the whole model, or in
    /// LoRA mode the adapters.
    pub fn weights(&self) -> Result<TensorSet> {
        match &self.lora {
            None => self.merged_weights(),
            Some(state) => Ok(state.lora.zeros().from_flat_like(&state.adapters)?),
        }
    }

    /// The full model's current weights as named tensors (LoRA: the base
    /// merged with the current adapters).
    pub fn merged_weights(&self) -> Result<TensorSet> {
        Ok(self.model.zeros().from_flat_like(&self.params)?)
    }

    /// The adapters' layout and merge, in LoRA mode.
    pub fn lora(&self) -> Option<&Lora> {
        self.lora.as_ref().map(|s| &s.lora)
    }
}

/// Loss and accuracy of flat weights `params` on `split` (all of it, or
/// the samples in `indices`). For text, samples are context windows by
/// their first token; "all of it" is the split's non-overlapping windows.
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
            all = match model.transformer() {
                None => (0..split.len() as u32).collect(),
                Some(c) => (0..crate::data::text::windows(split.len(), c.context))
                    .step_by(c.context)
                    .map(|s| s as u32)
                    .collect(),
            };
            &all
        }
    };
    check_weights(model, params)?;
    if let Some(c) = model.transformer() {
        return evaluate_text(model, c.context, c.vocab, params, split, indices, compute);
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

/// Windows of text evaluated per forward pass.
const EVAL_WINDOWS: usize = 16;

fn evaluate_text(
    model: Model,
    context: usize,
    vocab: usize,
    params: &[f32],
    split: &Split,
    starts: &[u32],
    compute: &Compute,
) -> Result<Evaluation> {
    let stream = split.tokens();
    if let Some(&bad) = starts
        .iter()
        .find(|&&s| s as usize + context >= stream.len())
    {
        return Err(Error::invalid(
            "data set",
            format!(
                "window {bad} needs {} tokens but the split has {}; the text is shorter than one context window ({context})",
                bad as usize + context + 1,
                stream.len()
            ),
        ));
    }
    let mut net = Transformer::new(model, EVAL_WINDOWS);
    let mut tokens = vec![0; EVAL_WINDOWS * context];
    let mut targets = vec![0; EVAL_WINDOWS * context];
    let mut logits = vec![0.0; EVAL_WINDOWS * context * vocab];
    let (mut loss, mut correct) = (0.0, 0);
    let par = compute.par();
    for chunk in starts.chunks(EVAL_WINDOWS) {
        let b = chunk.len();
        let n = b * context;
        gather_windows(stream, chunk, context, &mut tokens[..n], &mut targets[..n]);
        compute.run(|| {
            net.logits(
                params,
                &tokens[..n],
                b,
                context,
                &mut logits[..n * vocab],
                par,
            )
        });
        let (l, c) = evaluate_token_logits(&logits[..n * vocab], &targets[..n], vocab);
        loss += l;
        correct += c;
    }
    let predicted = (starts.len() * context).max(1);
    Ok(Evaluation {
        loss: loss / predicted as f64,
        accuracy: correct as f64 / predicted as f64,
        count: starts.len(),
    })
}

/// Bytes of logits [`stream_loss`] lets one forward pass hold (the batch
/// shrinks for large vocabularies and contexts, down to one window).
const STREAM_LOGITS_BYTES: usize = 256 << 20;

/// Mean next-token loss of transformer weights `params` over the
/// non-overlapping context windows of `stream`: window `k` is tokens
/// `k·context .. (k+1)·context`, each predicting the token after it; the
/// first `max_windows` windows (all when 0). Refuses a stream shorter than
/// one window plus its target, and ids outside the model's vocabulary.
pub fn stream_loss(
    model: Model,
    params: &[f32],
    stream: &[u32],
    max_windows: usize,
    compute: &Compute,
) -> Result<StreamLoss> {
    let c = model.transformer().ok_or_else(|| {
        Error::invalid(
            "model",
            format!("{model} reads images, not text; choose gpt or llama"),
        )
    })?;
    check_weights(model, params)?;
    let available = stream.len().saturating_sub(1) / c.context;
    if available == 0 {
        return Err(Error::invalid(
            "text",
            format!(
                "it is {} tokens, shorter than one context window of {} tokens plus the token \
                 it predicts; use a longer text",
                stream.len(),
                c.context
            ),
        ));
    }
    if u32::try_from(stream.len()).is_err() {
        return Err(Error::invalid(
            "text",
            format!("it is {} tokens; split it below 2^32 tokens", stream.len()),
        ));
    }
    if let Some((i, t)) = stream
        .iter()
        .enumerate()
        .find(|(_, t)| **t as usize >= c.vocab)
    {
        return Err(Error::invalid(
            "text",
            format!(
                "token {i} is id {t}, outside the model's vocabulary of {}; \
                 tokenize with the model's own tokenizer",
                c.vocab
            ),
        ));
    }
    let windows = if max_windows == 0 {
        available
    } else {
        max_windows.min(available)
    };
    let per_window = c.context * c.vocab * size_of::<f32>();
    let batch = (STREAM_LOGITS_BYTES / per_window)
        .clamp(1, EVAL_WINDOWS)
        .min(windows);
    let mut net = Transformer::new(model, batch);
    let starts: Vec<u32> = (0..windows).map(|k| (k * c.context) as u32).collect();
    let mut tokens = vec![0; batch * c.context];
    let mut targets = vec![0; batch * c.context];
    let par = compute.par();
    let mut sum = 0.0;
    for chunk in starts.chunks(batch) {
        let (b, n) = (chunk.len(), chunk.len() * c.context);
        gather_windows(
            stream,
            chunk,
            c.context,
            &mut tokens[..n],
            &mut targets[..n],
        );
        let loss = compute.run(|| net.loss(params, &tokens[..n], &targets[..n], b, c.context, par));
        sum += f64::from(loss) * n as f64;
    }
    let predicted = windows * c.context;
    Ok(StreamLoss {
        loss: sum / predicted as f64,
        tokens: predicted,
        windows,
    })
}

/// Runs one training task: `spec.steps` steps from `base` on the task's
/// shard. The delta is a pure function of (base, data set, spec) on a given
/// platform class, whatever `compute`'s thread count. `on_step` is called
/// after every step with the number of steps done.
///
/// A spec with [`TaskSpec::lora`] set is refused: see [`train_task_lora`].
pub fn train_task(
    base: &TensorSet,
    data: &Dataset,
    spec: &TaskSpec,
    compute: &Compute,
    on_step: &mut dyn FnMut(usize),
) -> Result<TaskOutcome> {
    if spec.lora.is_some() {
        return Err(lora_needs_adapters("train_task_lora"));
    }
    spec.validate()?;
    let pool = shard_pool(spec.model, data, spec.shard, spec.shards)?;
    let sample = eval_sample(&pool, task_eval_samples(spec.model), spec.seed);
    let trainer = LocalTrainer::new(spec, base, pool)?;
    run_task(trainer, base, data, spec, &sample, compute, on_step)
}

/// Runs one LoRA training task: `spec.steps` steps of the adapters named
/// by `spec.lora`, from `adapters`, on the frozen base model `frozen`
/// ([`LocalTrainer::new_lora`]). The outcome's delta is the adapters
/// after minus `adapters`; its losses are the merged model's, on the same
/// evaluation sample a full task measures. Like [`train_task`], the delta
/// is a pure function of (frozen, adapters, data set, spec) on a given
/// platform class, whatever `compute`'s thread count.
pub fn train_task_lora(
    frozen: &TensorSet,
    adapters: &TensorSet,
    data: &Dataset,
    spec: &TaskSpec,
    compute: &Compute,
    on_step: &mut dyn FnMut(usize),
) -> Result<TaskOutcome> {
    spec.validate()?;
    let pool = shard_pool(spec.model, data, spec.shard, spec.shards)?;
    let sample = eval_sample(&pool, task_eval_samples(spec.model), spec.seed);
    let trainer = LocalTrainer::new_lora(spec, frozen, adapters, pool)?;
    run_task(trainer, adapters, data, spec, &sample, compute, on_step)
}

/// Refuses flat weights that are not `model`'s.
fn check_weights(model: Model, params: &[f32]) -> Result<()> {
    if params.len() == model.num_params() {
        return Ok(());
    }
    Err(Error::invalid(
        "weights",
        format!(
            "{} values for a {model} with {} parameters",
            params.len(),
            model.num_params()
        ),
    ))
}

/// Measures, trains `spec.steps` steps, measures again; the delta is the
/// trained weights ([`LocalTrainer::weights`]) minus `start`.
fn run_task(
    mut trainer: LocalTrainer,
    start: &TensorSet,
    data: &Dataset,
    spec: &TaskSpec,
    sample: &[u32],
    compute: &Compute,
    on_step: &mut dyn FnMut(usize),
) -> Result<TaskOutcome> {
    let before = evaluate(
        spec.model,
        trainer.params(),
        data,
        &data.train,
        Some(sample),
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
        Some(sample),
        compute,
    )?;
    let trained = trainer.weights()?;
    trained.check_finite().map_err(|e| Error::Diverged {
        step: spec.steps,
        detail: e.to_string(),
    })?;
    Ok(TaskOutcome {
        delta: trained.sub(start)?,
        loss_before: before.loss as f32,
        loss_after: after.loss as f32,
        samples: spec.steps * spec.batch,
    })
}

/// Samples a task evaluates before and after training.
pub fn task_eval_samples(model: Model) -> usize {
    if model.is_text() {
        TASK_EVAL_WINDOWS
    } else {
        TASK_EVAL_SAMPLES
    }
}

/// A seeded sample of at most `n` samples of the test split (text: windows
/// that fit in the validation split), for measurements outside the task's
/// shard such as a spot-check's held-out loss.
pub fn held_out_sample(model: Model, data: &Dataset, n: usize, seed: u64) -> Vec<u32> {
    let pool: Vec<u32> = match model.transformer() {
        None => (0..data.test.len() as u32).collect(),
        Some(c) => (0..crate::data::text::windows(data.test.len(), c.context) as u32).collect(),
    };
    let n = if model.is_text() {
        n.min(TASK_EVAL_WINDOWS)
    } else {
        n
    };
    eval_sample(&pool, n, seed)
}

/// The seeded sample of a task's shard on which it measures its loss
/// before and after training: what a validator's spot-check re-measures.
pub fn task_eval_sample(spec: &TaskSpec, data: &Dataset) -> Result<Vec<u32>> {
    let pool = shard_pool(spec.model, data, spec.shard, spec.shards)?;
    Ok(eval_sample(&pool, task_eval_samples(spec.model), spec.seed))
}
