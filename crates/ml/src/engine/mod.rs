//! The CPU training engine: forward and backward passes written out by
//! hand over flat f32 buffers, with matrix products from `gemm`.
//!
//! - [`linalg`]: a checked, strided matrix-product wrapper and row sums.
//! - [`mlp`], [`cnn`]: the two networks, each owning its scratch buffers so
//!   a training step allocates nothing.
//! - [`loss`]: softmax cross-entropy and its gradient.
//! - [`transformer`]: the decoder-only transformers, dispatching to
//!   `gpt` and `llama`, which share the [`kernels`] (norms,
//!   activations, rotary embeddings, causal attention, embeddings, the
//!   language-model loss).
//!
//! Every kernel reduces in a fixed order whatever the thread count: `gemm`
//! splits work across threads by output blocks, never along the reduction
//! axis, and our own loops are either sequential or split by sample with
//! each output written by exactly one thread. So a step's result is a pure
//! function of its inputs on a given instruction set (see [`crate::platform`]).

pub mod cnn;
mod gpt;
pub mod kernels;
pub mod linalg;
mod llama;
pub mod loss;
pub mod mlp;
pub mod transformer;

use crate::model::Model;

pub use llama::ROPE_THETA;

/// A thread pool sized for one training job, used by every kernel of it.
///
/// On WebAssembly (a sandboxed task has no threads) it is the calling
/// thread alone: one thread, no pool, and every kernel takes its serial
/// path, whose bytes are the same as on any thread count.
pub struct Compute {
    threads: usize,
    #[cfg(not(target_family = "wasm"))]
    pool: rayon::ThreadPool,
}

impl Compute {
    /// A pool of `threads` threads (at least one).
    #[cfg(not(target_family = "wasm"))]
    pub fn new(threads: usize) -> crate::Result<Self> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("funetun-compute-{i}"))
            .build()
            .map_err(|e| {
                crate::Error::invalid("threads", format!("cannot start {threads} threads: {e}"))
            })?;
        Ok(Self { threads, pool })
    }

    /// The calling thread alone, whatever `threads` asks.
    #[cfg(target_family = "wasm")]
    pub fn new(_threads: usize) -> crate::Result<Self> {
        Ok(Self { threads: 1 })
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` inside the pool, so kernels it calls use these threads.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        #[cfg(not(target_family = "wasm"))]
        return self.pool.install(f);
        #[cfg(target_family = "wasm")]
        f()
    }

    pub(crate) fn par(&self) -> Par {
        Par {
            threads: self.threads,
        }
    }
}

/// How kernels may parallelise; copied into every call.
#[derive(Clone, Copy, Debug)]
pub struct Par {
    /// Threads available in the current pool.
    pub threads: usize,
}

impl Par {
    /// A single-threaded setting.
    pub const SERIAL: Par = Par { threads: 1 };
}

/// A network with fixed-size scratch buffers for batches up to a maximum.
pub trait Network: Send {
    /// The largest batch the scratch buffers hold.
    fn max_batch(&self) -> usize;

    /// Mean cross-entropy over the batch; writes the gradient of every
    /// parameter (flat, name order) into `grads`, overwriting it.
    /// `x` holds `labels.len()` normalised images, one per row.
    fn loss_and_grad(
        &mut self,
        params: &[f32],
        x: &[f32],
        labels: &[u8],
        grads: &mut [f32],
        par: Par,
    ) -> f32;

    /// Writes the logits of `batch` images into `logits` (`batch × 10`).
    fn forward(&mut self, params: &[f32], x: &[f32], batch: usize, logits: &mut [f32], par: Par);
}

/// An image network for `model` with scratch for batches up to
/// `max_batch`; `None` for the transformers, which take tokens
/// ([`transformer::Transformer`]).
pub fn network(model: Model, max_batch: usize) -> Option<Box<dyn Network>> {
    match model {
        Model::Mlp => Some(Box::new(mlp::Mlp::new(max_batch))),
        Model::Cnn => Some(Box::new(cnn::Cnn::new(max_batch))),
        Model::Gpt(_) | Model::Llama(_) => None,
    }
}
