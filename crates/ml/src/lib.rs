//! Funetun's machine learning: data, models and deterministic training.
//!
//! - [`data`]: MNIST / Fashion-MNIST IDX files and the tiny-shakespeare
//!   corpus (found locally or downloaded with checksums), the built-in
//!   synthetic set, tokenizers, shards and seeded batch order.
//! - [`model`]: the networks' parameter layouts (`mlp`, `cnn`, and the
//!   `gpt` and `llama` transformers in Hugging Face's names) and seeded θ₀
//!   ([`Architecture`] on the protocol's [`Model`]), and the one decoder
//!   of a model's bytes.
//! - [`engine`]: the CPU engine, forward and backward by hand over `gemm`,
//!   bitwise reproducible at any thread count.
//! - [`lora`]: low-rank adapters on a transformer's projections (PEFT's
//!   names and shapes): their layout, seeded init, the merge into the full
//!   model and the chain rule back onto the adapters.
//! - [`space`]: what a job's checkpoints and updates are (the model's
//!   weights, or adapters on a frozen model) and what a task starts from.
//! - [`optim`]: SGD, SGD with momentum and AdamW on flat buffers.
//! - [`train`]: the training task `(θ_base, shard, steps, …) → Δ` (or,
//!   with LoRA, `(θ_frozen, adapters, …) → Δadapters`) and evaluation.
//! - [`generate`]: sampling text from a transformer checkpoint.
//! - [`hf`]: Hugging Face model directories in and out (`config.json`,
//!   `model.safetensors`, `tokenizer.json`) and their loss on a text.
//! - [`task`]: [`task_spec`], an orchestrator's task read as a [`TaskSpec`].
//! - [`recipe`]: named configurations' optimisation (nanoGPT's `baby`).
//! - [`reference`]: the same networks in candle, the oracle for the engine's
//!   gradients and the baseline of the training benchmark (the `host`
//!   feature, on by default; without it the crate builds for WebAssembly).
//! - [`platform`]: the platform class under which results are bit-exact.
//! - [`rng`]: seeded randomness.
//! - [`error`]: the crate's [`Error`] and [`Result`].

pub mod data;
pub mod engine;
pub mod error;
pub mod generate;
pub mod hf;
pub mod lora;
pub mod model;
pub mod optim;
pub mod platform;
pub mod recipe;
#[cfg(feature = "host")]
pub mod reference;
pub mod rng;
pub mod space;
pub mod task;
pub mod train;

pub use data::{Dataset, DatasetName, LoadOptions};
pub use engine::Compute;
pub use error::{Error, Result};
pub use lora::{Lora, LoraConfig};
pub use model::{Architecture, Model, ModelKind, TransformerConfig};
pub use optim::OptimizerKind;
pub use space::{Space, Start, train_from};
pub use task::task_spec;
pub use train::{
    Evaluation, LocalTrainer, StreamLoss, TaskOutcome, TaskSpec, evaluate, stream_loss, train_task,
    train_task_lora,
};
