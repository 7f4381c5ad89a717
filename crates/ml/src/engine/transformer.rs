//! Decoder-only transformers (`gpt`, `llama`): forward and backward over
//! flat parameter buffers in the model's name order.
//!
//! INTERFACE SKELETON: the kernels land in the next commit.

use crate::engine::Par;
use crate::model::Model;

/// A transformer with scratch buffers for up to `max_batch` sequences of
/// up to `context` tokens.
pub struct Transformer {
    model: Model,
    max_batch: usize,
}

impl Transformer {
    /// Scratch for `max_batch` sequences of the model's context.
    ///
    /// # Panics
    /// When `model` is not a transformer.
    pub fn new(model: Model, max_batch: usize) -> Self {
        assert!(model.is_text(), "{model} is not a transformer");
        Self { model, max_batch }
    }

    /// The model.
    pub fn model(&self) -> Model {
        self.model
    }

    /// The largest batch the scratch buffers hold.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Mean next-token cross-entropy over `batch × seq` positions; writes
    /// the gradient of every parameter (flat, name order) into `grads`,
    /// overwriting it. `tokens` and `targets` hold `batch` rows of `seq`
    /// ids each (`seq ≤ context`).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad(
        &mut self,
        params: &[f32],
        tokens: &[u32],
        targets: &[u32],
        batch: usize,
        seq: usize,
        grads: &mut [f32],
        par: Par,
    ) -> f32 {
        let _ = (params, tokens, targets, batch, seq, grads, par);
        unimplemented!("transformer kernels")
    }

    /// Mean next-token cross-entropy, forward only.
    pub fn loss(
        &mut self,
        params: &[f32],
        tokens: &[u32],
        targets: &[u32],
        batch: usize,
        seq: usize,
        par: Par,
    ) -> f32 {
        let _ = (params, tokens, targets, batch, seq, par);
        unimplemented!("transformer kernels")
    }

    /// The logits of every position: `batch × seq × vocab` into `logits`.
    pub fn logits(
        &mut self,
        params: &[f32],
        tokens: &[u32],
        batch: usize,
        seq: usize,
        logits: &mut [f32],
        par: Par,
    ) {
        let _ = (params, tokens, batch, seq, logits, par);
        unimplemented!("transformer kernels")
    }
}
