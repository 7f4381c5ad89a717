//! From an API task to a deterministic training run: what a trainer computes
//! and a validator replays.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use alloy_primitives::B256;
use funetun_client::Client;
use funetun_core::api::Task;
use funetun_core::encoding::decode_with_layout;
use funetun_core::{DecodeLimits, TensorSet, encode, keccak256};
use funetun_ml::{Compute, Dataset, DatasetName, LoadOptions, ModelKind, OptimizerKind, TaskSpec};
use tracing::{debug, info};

use crate::error::{Error, Result};
use funetun_ml::Architecture as _;

/// The ML side of a task, checked.
pub fn task_spec(task: &Task) -> Result<TaskSpec> {
    let bad = |detail: String| Error::BadTask {
        task_id: task.task_id,
        detail,
    };
    let model: ModelKind = task.model;
    let optimizer: OptimizerKind = task
        .optimizer
        .parse()
        .map_err(|e| bad(format!("optimizer: {e}")))?;
    let spec = TaskSpec {
        model,
        shard: task.shard as usize,
        shards: task.shards as usize,
        steps: task.steps as usize,
        batch: task.batch as usize,
        lr: task.lr,
        optimizer,
        seed: task.seed,
    };
    spec.validate().map_err(|e| bad(e.to_string()))?;
    Ok(spec)
}

/// Where data sets are found.
#[derive(Clone, Debug, Default)]
pub struct DataConfig {
    /// Searched first (`--data-dir`); then `FUNETUN_DATA_DIR`, then the cache.
    pub data_dir: Option<PathBuf>,
    /// Download missing public data sets (with checksum checks).
    pub download: bool,
}

/// Data sets loaded once per process, by name.
#[derive(Clone, Default)]
pub struct Datasets {
    config: DataConfig,
    loaded: Arc<Mutex<HashMap<DatasetName, Arc<Dataset>>>>,
}

impl Datasets {
    /// An empty cache.
    pub fn new(config: DataConfig) -> Self {
        Self {
            config,
            loaded: Arc::default(),
        }
    }

    /// The data set called `name`, loading it off the async runtime on first use.
    pub async fn get(&self, name: &DatasetName) -> Result<Arc<Dataset>> {
        if let Some(d) = self.loaded.lock().expect("dataset cache lock").get(name) {
            return Ok(d.clone());
        }
        let parsed = name.clone();
        let config = self.config.clone();
        let data = tokio::task::spawn_blocking(move || {
            Dataset::load(
                &parsed,
                &LoadOptions {
                    data_dir: config.data_dir.as_deref(),
                    download: config.download,
                    progress: None,
                },
            )
        })
        .await
        .map_err(|e| Error::Config(format!("data loading stopped: {e}")))??;
        let data = Arc::new(data);
        info!(
            dataset = %name,
            train = data.train.len(),
            test = data.test.len(),
            "data set loaded"
        );
        self.loaded
            .lock()
            .expect("dataset cache lock")
            .insert(name.clone(), data.clone());
        Ok(data)
    }
}

/// Checkpoints and deltas kept on disk by hash, so a base is downloaded once.
#[derive(Clone, Debug)]
pub struct BlobCache {
    dir: PathBuf,
}

impl BlobCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, hash: B256) -> PathBuf {
        self.dir.join(format!("{hash}.safetensors"))
    }

    /// The bytes of blob `hash`: from disk if present and intact, else
    /// downloaded (hash-checked by the client) and stored atomically.
    pub async fn bytes(&self, client: &Client, hash: B256) -> Result<Vec<u8>> {
        let path = self.path(hash);
        if let Ok(bytes) = std::fs::read(&path) {
            if keccak256(&bytes) == hash {
                return Ok(bytes);
            }
            debug!(path = %path.display(), "cached blob is damaged; downloading again");
        }
        let bytes = client.get_blob(hash).await?;
        write_atomic(&path, &bytes)?;
        Ok(bytes)
    }

    /// Blob `hash` decoded as weights of `model`.
    pub async fn tensors(
        &self,
        client: &Client,
        hash: B256,
        model: ModelKind,
    ) -> Result<TensorSet> {
        let bytes = self.bytes(client, hash).await?;
        decode_tensors(&bytes, model).map_err(|source| Error::Blob {
            hash: hash.to_string(),
            source,
        })
    }
}

/// Decodes canonical safetensors bytes that must have `model`'s layout.
pub fn decode_tensors(bytes: &[u8], model: ModelKind) -> funetun_core::Result<TensorSet> {
    let layout = model.zeros();
    let limits = DecodeLimits::for_model(layout.num_params(), layout.len());
    decode_with_layout(bytes, &limits, &layout)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

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

/// Runs `spec` from `base` on `data` off the async runtime: the delta a
/// trainer submits and a validator replays.
pub async fn compute_delta(
    base: TensorSet,
    data: Arc<Dataset>,
    spec: TaskSpec,
    compute: Arc<Compute>,
) -> Result<Computed> {
    tokio::task::spawn_blocking(move || {
        let outcome = funetun_ml::train_task(&base, &data, &spec, &compute, &mut |_| {})?;
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
    use super::*;

    fn task() -> Task {
        Task {
            task_id: 7,
            job_id: 1,
            round: 0,
            base_hash: B256::ZERO,
            model: ModelKind::Mlp,
            dataset: funetun_ml::DatasetName::Synthetic(0),
            shard: 1,
            shards: 4,
            steps: 3,
            batch: 16,
            lr: 0.05,
            optimizer: "momentum:0.9".into(),
            seed: 11,
            lease_expires_at: 0,
        }
    }

    #[test]
    fn tasks_map_to_training_specs_and_bad_fields_are_named() {
        let spec = task_spec(&task()).unwrap();
        assert_eq!(spec.shard, 1);
        assert_eq!(spec.optimizer, OptimizerKind::Momentum { momentum: 0.9 });
        // An unknown model is refused where the task arrives, by its type.
        let mut json = serde_json::to_value(task()).unwrap();
        json["model"] = "resnet".into();
        let e = serde_json::from_value::<Task>(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains("resnet") && e.contains("mlp"), "{e}");
        for (field, t) in [
            (
                "optimizer",
                Task {
                    optimizer: "lion".into(),
                    ..task()
                },
            ),
            ("shard", Task { shard: 4, ..task() }),
            ("steps", Task { steps: 0, ..task() }),
        ] {
            let e = task_spec(&t).unwrap_err().to_string();
            assert!(e.contains("task 7") && e.contains(field), "{e}");
        }
    }

    #[tokio::test]
    async fn the_same_task_gives_the_same_delta_hash() {
        let t = task();
        let spec = task_spec(&t).unwrap();
        let data = Datasets::new(DataConfig::default())
            .get(&DatasetName::Synthetic(0))
            .await
            .unwrap();
        let base = ModelKind::Mlp.init(3);
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
        assert_eq!(decode_tensors(&a.bytes, ModelKind::Mlp).unwrap().len(), 4);
        assert!(a.loss_after.is_finite());
    }
}
