//! The compute entry points: a task's training run off the async runtime,
//! giving the delta's canonical bytes and hash. What a trainer submits is
//! what a validator or challenger replays, bit for bit.

use std::sync::Arc;

use alloy_primitives::B256;
use funetun_core::{encode, keccak256};
use funetun_ml::{Compute, Dataset, Start, TaskSpec};

use crate::error::{Error, Result};

/// A computed delta: its canonical bytes, their hash and the losses.
#[derive(Clone, Debug)]
pub struct Computed {
    /// Canonical safetensors of Δ.
    pub bytes: Vec<u8>,
    /// keccak256 of `bytes`.
    pub hash: B256,
    /// Loss of the base on the task's evaluation sample.
    pub loss_before: f32,
    /// Loss after training on the same sample.
    pub loss_after: f32,
    /// Training steps run.
    pub steps: usize,
}

/// Runs `spec` from `start` on `data` off the async runtime: the delta a
/// trainer submits and a validator replays.
pub async fn compute_delta(
    start: Start,
    data: Arc<Dataset>,
    spec: TaskSpec,
    compute: Arc<Compute>,
) -> Result<Computed> {
    tokio::task::spawn_blocking(move || {
        let outcome = funetun_ml::train_from(&start, &data, &spec, &compute, &mut |_| {})?;
        let bytes = encode(&outcome.delta);
        Ok(Computed {
            hash: keccak256(&bytes),
            bytes,
            loss_before: outcome.loss_before,
            loss_after: outcome.loss_after,
            steps: spec.steps,
        })
    })
    .await
    .map_err(|e| Error::Config(format!("training stopped: {e}")))?
}

#[cfg(test)]
mod tests {
    use funetun_core::api::Task;
    use funetun_ml::{Architecture as _, DatasetName, ModelKind, task_spec};

    use super::*;
    use crate::data::{DataConfig, Datasets};

    fn task() -> Task {
        Task {
            task_id: 7,
            job_id: 1,
            round: 0,
            base_hash: B256::ZERO,
            model: ModelKind::Mlp,
            transformer: None,
            dataset: DatasetName::Synthetic(0),
            shard: 1,
            slot: 1,
            shards: 4,
            steps: 3,
            batch: 16,
            lr: 0.05,
            optimizer: "momentum:0.9".into(),
            lr_schedule: "constant".into(),
            global_step: 0,
            grad_clip: 0.0,
            seed: 11,
            lease_expires_at: 0,
            lora: None,
            frozen_hash: None,
            sync: Default::default(),
        }
    }

    #[tokio::test]
    async fn the_same_task_gives_the_same_delta_hash() {
        let t = task();
        let spec = task_spec(&t).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let blobs = crate::blobs::BlobCache::open(cache.path()).unwrap();
        // A built-in data set: nothing is fetched from this (absent) server.
        let client = funetun_client::Client::new("http://127.0.0.1:9", None);
        let data = Datasets::new(DataConfig::default())
            .get(&DatasetName::Synthetic(0), &blobs, &client)
            .await
            .unwrap();
        let base = Start::full(funetun_ml::Model::Mlp.init(3));
        let a = compute_delta(
            base.clone(),
            data.clone(),
            spec.clone(),
            Arc::new(Compute::new(1).unwrap()),
        )
        .await
        .unwrap();
        let b = compute_delta(base, data, spec, Arc::new(Compute::new(2).unwrap()))
            .await
            .unwrap();
        assert_eq!(a.hash, b.hash);
        assert_eq!(funetun_ml::Model::Mlp.decode(&a.bytes).unwrap().len(), 4);
        assert!(a.loss_after.is_finite());
    }
}
