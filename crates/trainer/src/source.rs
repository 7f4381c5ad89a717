//! Where a trainer's delta comes from: the [`DeltaSource`] seam, chosen
//! when the trainer is built. [`Honest`] trains the task as given; the
//! attack modes (`crate::attack`, feature `byzantine`) are the other
//! implementations, so the trainer loop itself holds no attack branches.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use alloy_primitives::B256;
use funetun_core::api::Task;
use funetun_ml::{Dataset, Start, TaskSpec};
use funetun_participant::{Workbench, compute_delta};

use crate::error::Result;

/// A boxed future of a [`DeltaSource`].
pub type Produce<'a> = Pin<Box<dyn Future<Output = Result<Produced>> + Send + 'a>>;

/// What a source is given for one task.
pub struct Work<'a> {
    /// The trainer's connection, caches and compute threads.
    pub bench: &'a Workbench,
    /// The leased task.
    pub task: &'a Task,
    /// The base checkpoint (with a LoRA job's frozen model).
    pub base: Start,
    /// The task's data set.
    pub data: Arc<Dataset>,
    /// The task read as a training run.
    pub spec: TaskSpec,
}

/// What a source produced for submission.
#[derive(Clone, Debug)]
pub struct Produced {
    /// Canonical safetensors of the delta.
    pub bytes: Vec<u8>,
    /// keccak256 of `bytes`.
    pub hash: B256,
    /// The loss before training, as reported.
    pub loss_before: f32,
    /// The loss after training, as reported.
    pub loss_after: f32,
    /// Not what the task asked for: journal lines say `forged`, and a
    /// refused upload or report is logged instead of failing the task.
    pub forged: bool,
    /// Training steps actually run.
    pub steps_trained: u64,
    /// Seconds spent training.
    pub training_seconds: f64,
}

/// Produces the delta a trainer submits for a task.
pub trait DeltaSource: Send + Sync {
    /// The delta for `work`.
    fn produce<'a>(&'a self, work: Work<'a>) -> Produce<'a>;

    /// Told after each submission (bytes and hash as committed).
    fn submitted(&self, _bytes: &[u8], _hash: B256) {}
}

/// Trains every task exactly as given.
#[derive(Clone, Copy, Debug, Default)]
pub struct Honest;

impl DeltaSource for Honest {
    fn produce<'a>(&'a self, work: Work<'a>) -> Produce<'a> {
        Box::pin(train(work.bench, work.base, work.data, work.spec))
    }
}

/// Trains `spec` from `base`, timing it.
pub async fn train(
    bench: &Workbench,
    base: Start,
    data: Arc<Dataset>,
    spec: TaskSpec,
) -> Result<Produced> {
    let started = Instant::now();
    let computed = compute_delta(base, data, spec, bench.compute.clone()).await?;
    Ok(Produced {
        bytes: computed.bytes,
        hash: computed.hash,
        loss_before: computed.loss_before,
        loss_after: computed.loss_after,
        forged: false,
        steps_trained: computed.steps as u64,
        training_seconds: started.elapsed().as_secs_f64(),
    })
}
