//! What a job's checkpoints and updates are made of: the whole model's
//! weights, or low-rank adapters on a frozen model.
//!
//! A full job's checkpoint `t` is the model's weights θ_t and an update is
//! θ − θ_t. A LoRA job (`[lora]` in its spec) freezes the owner's model
//! and its checkpoints are adapters: checkpoint 0 is [`Lora::init`] of the
//! job's seed (every `B` zero, so the merged model is exactly the frozen
//! one), an update is the adapters' change, and aggregation and the outer
//! optimizer run on adapters. Evaluating a checkpoint merges it into the
//! frozen model first ([`Space::full_weights`]).
//!
//! [`Start`] is what a task starts from: a checkpoint, with the frozen model
//! when the job is a LoRA one; [`train_from`] trains it, whichever it is.

use std::sync::Arc;

use funetun_core::encoding::decode_with_layout;
use funetun_core::{DecodeLimits, TensorSet};

use crate::data::Dataset;
use crate::engine::Compute;
use crate::error::{Error, Result};
use crate::lora::{Lora, LoraConfig};
use crate::model::{Architecture as _, Model};
use crate::train::{TaskOutcome, TaskSpec, train_task, train_task_lora};

/// The tensors a job's checkpoints and updates hold.
#[derive(Clone, Debug)]
pub enum Space {
    /// The whole model's weights.
    Full(Model),
    /// Adapters on a frozen model (boxed: a [`Lora`] carries its layout).
    Lora(Box<Lora>),
}

impl Space {
    /// The space of `model`, or of its adapters under `lora`; refuses
    /// adapters the model cannot carry (see [`Lora::new`]).
    pub fn new(model: Model, lora: Option<&LoraConfig>) -> Result<Self> {
        Ok(match lora {
            None => Space::Full(model),
            Some(config) => Space::Lora(Box::new(Lora::new(model, config)?)),
        })
    }

    /// The network.
    pub fn model(&self) -> Model {
        match self {
            Space::Full(model) => *model,
            Space::Lora(lora) => lora.model(),
        }
    }

    /// The adapters, for a LoRA job.
    pub fn lora(&self) -> Option<&Lora> {
        match self {
            Space::Full(_) => None,
            Space::Lora(lora) => Some(lora),
        }
    }

    /// Zero-filled tensors of a checkpoint's layout.
    pub fn zeros(&self) -> TensorSet {
        match self {
            Space::Full(model) => model.zeros(),
            Space::Lora(lora) => lora.zeros(),
        }
    }

    /// Number of scalars in a checkpoint (and in an update).
    pub fn num_params(&self) -> usize {
        match self {
            Space::Full(model) => model.num_params(),
            Space::Lora(lora) => lora.num_params(),
        }
    }

    /// The decoder's limits for a checkpoint or an update.
    pub fn decode_limits(&self) -> DecodeLimits {
        match self {
            Space::Full(model) => model.decode_limits(),
            Space::Lora(lora) => lora.decode_limits(),
        }
    }

    /// Decodes a checkpoint or an update from canonical safetensors bytes,
    /// refusing anything larger, of another layout, or not finite.
    pub fn decode(&self, bytes: &[u8]) -> funetun_core::Result<TensorSet> {
        decode_with_layout(bytes, &self.decode_limits(), &self.zeros())
    }

    /// Checkpoint 0 of a job seeded `seed` that does not start from an
    /// owner's model: θ₀ drawn from the seed, or the adapters' init.
    pub fn init(&self, seed: u64) -> TensorSet {
        match self {
            Space::Full(model) => model.init(seed),
            Space::Lora(lora) => lora.init(seed),
        }
    }

    /// The model's flat weights at checkpoint `flat`: the checkpoint
    /// itself, or the frozen model merged with the adapters `flat`.
    /// `frozen` is required exactly for a LoRA space.
    pub fn full_weights(&self, frozen: Option<&[f32]>, flat: &[f32]) -> Result<Vec<f32>> {
        match (self, frozen) {
            (Space::Full(_), _) => Ok(flat.to_vec()),
            (Space::Lora(lora), Some(frozen)) => {
                let n = lora.model().num_params();
                if frozen.len() != n || flat.len() != lora.num_params() {
                    return Err(Error::invalid(
                        "lora",
                        format!(
                            "a merge needs the {n} weights of {} and {} adapter values; got {} and {}",
                            lora.model(),
                            lora.num_params(),
                            frozen.len(),
                            flat.len()
                        ),
                    ));
                }
                let mut full = frozen.to_vec();
                lora.merge_flat(frozen, flat, &mut full, crate::engine::Par::SERIAL);
                Ok(full)
            }
            (Space::Lora(_), None) => Err(Error::invalid(
                "lora",
                "adapters were given without their frozen model",
            )),
        }
    }
}

/// What a task starts from.
#[derive(Clone, Debug)]
pub struct Start {
    /// The base checkpoint: the model's weights, or a LoRA job's adapters.
    pub checkpoint: TensorSet,
    /// A LoRA job's frozen model (shared: it is large and never changes).
    pub frozen: Option<Arc<TensorSet>>,
}

impl Start {
    /// Starts from a full checkpoint.
    pub fn full(checkpoint: TensorSet) -> Self {
        Self {
            checkpoint,
            frozen: None,
        }
    }

    /// The model's flat weights at the base checkpoint and after `delta`
    /// (an update's change of the checkpoint) — what evaluating the base and
    /// the trained result reads — flattening the frozen model once.
    pub fn before_and_after(
        &self,
        space: &Space,
        delta: &TensorSet,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let frozen = self.frozen.as_ref().map(|f| f.to_flat());
        Ok((
            self.merged(space, frozen.as_deref(), None)?,
            self.merged(space, frozen.as_deref(), Some(delta))?,
        ))
    }

    fn merged(
        &self,
        space: &Space,
        frozen: Option<&[f32]>,
        delta: Option<&TensorSet>,
    ) -> Result<Vec<f32>> {
        let checkpoint = match delta {
            Some(delta) => self.checkpoint.add(delta)?,
            None => self.checkpoint.clone(),
        };
        space.full_weights(frozen, &checkpoint.to_flat())
    }
}

/// Runs the task `spec` from `start`: [`train_task`] for a full job,
/// [`train_task_lora`] when the spec carries adapters (which then needs
/// the frozen model).
pub fn train_from(
    start: &Start,
    data: &Dataset,
    spec: &TaskSpec,
    compute: &Compute,
    on_step: &mut dyn FnMut(usize),
) -> Result<TaskOutcome> {
    match (&spec.lora, &start.frozen) {
        (None, _) => train_task(&start.checkpoint, data, spec, compute, on_step),
        (Some(_), Some(frozen)) => {
            train_task_lora(frozen, &start.checkpoint, data, spec, compute, on_step)
        }
        (Some(_), None) => Err(Error::invalid(
            "lora",
            "a LoRA task needs its frozen model; the task named none",
        )),
    }
}
