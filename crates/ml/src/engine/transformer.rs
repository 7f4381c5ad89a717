//! Decoder-only transformers (`gpt`, `llama`): forward and backward over
//! flat parameter buffers in the model's name order.
//!
//! [`Transformer`] dispatches to `engine::gpt` or `engine::llama`, each
//! written out over the shared [`super::kernels`]. All sequences of a
//! batch go through every projection together, as one `batch·seq`-row
//! matrix product; attention runs one work item per sequence.
//!
//! Scratch is sized in [`Transformer::new`] for `max_batch` sequences of
//! the full context, and a step allocates nothing of its own (gemm
//! allocates its packing workspace per product). Most of the scratch is
//! what the backward pass needs from the forward pass, per block and
//! token: `8·d_model + 2·d_ff` values for `gpt`, `5·d_model + (n_head +
//! 2·n_kv_head)·head_dim + 4·d_ff` for `llama`, and `n_head · context`
//! attention probabilities; then `vocab` logits per token.
//! [`Transformer::scratch_bytes`] gives the exact figure: 34 MB for
//! `baby` `gpt` (vocabulary 65) at batch 12, 50 MB for `baby` `llama`,
//! and 2.0 GB for `llama-100m` (32,000 tokens) at batch 8, of which 15%
//! are attention probabilities and 13% logits (the two to recompute or
//! chunk first if memory ever binds).

use super::Par;
use super::gpt::Gpt;
use super::llama::Llama;
use crate::model::{Architecture as _, Model};

/// A transformer with scratch buffers for up to `max_batch` sequences of
/// up to `context` tokens.
pub struct Transformer {
    model: Model,
    max_batch: usize,
    num_params: usize,
    net: Net,
}

/// The network behind a [`Transformer`].
enum Net {
    Gpt(Box<Gpt>),
    Llama(Box<Llama>),
}

impl Transformer {
    /// Scratch for `max_batch` sequences of the model's context.
    ///
    /// # Panics
    /// When `model` is not a transformer.
    pub fn new(model: Model, max_batch: usize) -> Self {
        let net = match model {
            Model::Gpt(c) => Net::Gpt(Box::new(Gpt::new(c, max_batch))),
            Model::Llama(c) => Net::Llama(Box::new(Llama::new(c, max_batch))),
            Model::Mlp | Model::Cnn => panic!("{model} is not a transformer"),
        };
        Self {
            model,
            max_batch,
            num_params: model.num_params(),
            net,
        }
    }

    /// The model.
    pub fn model(&self) -> Model {
        self.model
    }

    /// The largest batch the scratch buffers hold.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Bytes of scratch this transformer holds (activations kept for the
    /// backward pass, logits, gradients of activations).
    pub fn scratch_bytes(&self) -> usize {
        let floats = match &self.net {
            Net::Gpt(n) => n.scratch_floats(),
            Net::Llama(n) => n.scratch_floats(),
        };
        floats * size_of::<f32>()
    }

    /// Mean next-token cross-entropy over `batch × seq` positions; writes
    /// the gradient of every parameter (flat, name order) into `grads`,
    /// overwriting it. `tokens` and `targets` hold `batch` rows of `seq`
    /// ids each (`seq ≤ context`).
    ///
    /// # Panics
    /// When the shapes disagree with the model or the scratch, or an id is
    /// outside the vocabulary.
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
        self.check(params, tokens, batch, seq);
        assert_eq!(targets.len(), batch * seq, "targets: need batch × seq ids");
        assert_eq!(grads.len(), params.len(), "grads: one per parameter");
        match &mut self.net {
            Net::Gpt(n) => {
                n.forward(params, tokens, batch, seq, par);
                let loss = n.loss(targets, par);
                n.backward(params, tokens, batch, seq, grads, par);
                loss
            }
            Net::Llama(n) => {
                n.forward(params, tokens, batch, seq, par);
                let loss = n.loss(targets, par);
                n.backward(params, tokens, batch, seq, grads, par);
                loss
            }
        }
    }

    /// Mean next-token cross-entropy, forward only.
    ///
    /// # Panics
    /// As [`Self::loss_and_grad`].
    pub fn loss(
        &mut self,
        params: &[f32],
        tokens: &[u32],
        targets: &[u32],
        batch: usize,
        seq: usize,
        par: Par,
    ) -> f32 {
        self.check(params, tokens, batch, seq);
        assert_eq!(targets.len(), batch * seq, "targets: need batch × seq ids");
        match &mut self.net {
            Net::Gpt(n) => {
                n.forward(params, tokens, batch, seq, par);
                n.loss(targets, par)
            }
            Net::Llama(n) => {
                n.forward(params, tokens, batch, seq, par);
                n.loss(targets, par)
            }
        }
    }

    /// The logits of every position: `batch × seq × vocab` into `logits`.
    ///
    /// # Panics
    /// As [`Self::loss_and_grad`], or when `logits` is too small.
    pub fn logits(
        &mut self,
        params: &[f32],
        tokens: &[u32],
        batch: usize,
        seq: usize,
        logits: &mut [f32],
        par: Par,
    ) {
        self.check(params, tokens, batch, seq);
        let rows = batch * seq;
        let out = match &mut self.net {
            Net::Gpt(n) => {
                n.forward(params, tokens, batch, seq, par);
                n.logits(rows)
            }
            Net::Llama(n) => {
                n.forward(params, tokens, batch, seq, par);
                n.logits(rows)
            }
        };
        logits[..out.len()].copy_from_slice(out);
    }

    fn check(&self, params: &[f32], tokens: &[u32], batch: usize, seq: usize) {
        let (Model::Gpt(c) | Model::Llama(c)) = self.model else {
            unreachable!("built only for transformers")
        };
        assert!(
            (1..=self.max_batch).contains(&batch),
            "batch {batch} outside 1..={} (the scratch size)",
            self.max_batch
        );
        assert!(
            (1..=c.context).contains(&seq),
            "sequence length {seq} outside 1..={}",
            c.context
        );
        assert_eq!(tokens.len(), batch * seq, "tokens: need batch × seq ids");
        assert_eq!(
            params.len(),
            self.num_params,
            "params: not this model's flat view"
        );
    }
}
