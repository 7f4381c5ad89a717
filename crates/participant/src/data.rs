//! Data sets loaded once per process, by name, off the async runtime.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use funetun_client::Client;
use funetun_ml::{Dataset, DatasetName, LoadOptions};

use crate::blobs::BlobCache;
use tokio::sync::OnceCell;
use tracing::{debug, info};

use crate::error::{Error, Result};

/// Where data sets are found.
#[derive(Clone, Debug, Default)]
pub struct DataConfig {
    /// Searched first (`--data-dir`); then `FUNETUN_DATA_DIR`, then the cache.
    pub data_dir: Option<PathBuf>,
    /// Download missing public data sets (with checksum checks).
    pub download: bool,
}

/// A data set's place in the cache: empty until its one load finishes.
type Slot = Arc<OnceCell<Arc<Dataset>>>;

/// How long [`Datasets::preload`] waits for its job to start.
pub const PRELOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Data sets loaded once per process, by name.
#[derive(Clone, Default)]
pub struct Datasets {
    config: DataConfig,
    /// One cell per data set: concurrent callers (a preload and the first
    /// task) wait for the same load.
    loaded: Arc<Mutex<HashMap<DatasetName, Slot>>>,
}

impl Datasets {
    /// An empty cache.
    pub fn new(config: DataConfig) -> Self {
        Self {
            config,
            loaded: Arc::default(),
        }
    }

    /// The data set `name`, loading it off the async runtime on first use.
    /// An uploaded data set's blobs are streamed from the orchestrator into
    /// `blobs` (checked against their hashes) first; a built-in one is
    /// found locally or downloaded per the configuration. A participant
    /// never opens a path a job names.
    pub async fn get(
        &self,
        name: &DatasetName,
        blobs: &BlobCache,
        client: &Client,
    ) -> Result<Arc<Dataset>> {
        if let DatasetName::Path(dir) = name {
            return Err(Error::Config(format!(
                "the job names a path ({}) as its data set; participants read only built-in \
                 data sets and uploaded blobs",
                dir.display()
            )));
        }
        let cell = self
            .loaded
            .lock()
            .expect("dataset cache lock")
            .entry(name.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.load(name, blobs, client))
            .await
            .cloned()
    }

    /// Starts loading `job`'s data set in the background, so that its
    /// first task or check finds it in memory. A job the orchestrator does
    /// not know or has not started yet is asked for again every 100 ms for
    /// up to [`PRELOAD_WAIT`]. Failures are only logged: the first real use
    /// reports them.
    pub fn preload(&self, job: u64, blobs: &BlobCache, client: &Client) {
        let (this, blobs, client) = (self.clone(), blobs.clone(), client.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let detail = loop {
                match client.job(job).await {
                    Ok(detail) => break detail,
                    Err(e)
                        if matches!(e.code(), Some("unknown_job" | "spec_unavailable"))
                            && started.elapsed() < PRELOAD_WAIT =>
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    Err(e) => {
                        debug!(job, error = %e, "data set not preloaded");
                        return;
                    }
                }
            };
            if let Err(e) = this.get(&detail.spec.dataset, &blobs, &client).await {
                debug!(job, error = %e, "data set not preloaded");
            }
        });
    }

    async fn load(
        &self,
        name: &DatasetName,
        blobs: &BlobCache,
        client: &Client,
    ) -> Result<Arc<Dataset>> {
        for hash in name.blobs() {
            blobs.ensure(client, hash).await?;
        }
        let parsed = name.clone();
        let config = self.config.clone();
        let dir = blobs.dir();
        let data = tokio::task::spawn_blocking(move || {
            if parsed.blobs().is_empty() {
                return Dataset::load(
                    &parsed,
                    &LoadOptions {
                        data_dir: config.data_dir.as_deref(),
                        download: config.download,
                        progress: None,
                    },
                );
            }
            Dataset::from_blobs(&parsed, |hash| {
                dir.get(hash)
                    .map_err(|e| funetun_ml::Error::DataUnavailable(e.to_string()))?
                    .ok_or_else(|| {
                        funetun_ml::Error::DataUnavailable(format!(
                            "blob {hash} of {parsed} was damaged in the cache; it is fetched again next time"
                        ))
                    })
            })
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
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_load() {
        let cache = tempfile::tempdir().unwrap();
        let blobs = BlobCache::open(cache.path()).unwrap();
        let client = Client::new("http://127.0.0.1:9", None);
        let datasets = Datasets::new(DataConfig::default());
        let name = DatasetName::Synthetic(7);
        let (a, b) = tokio::join!(
            datasets.get(&name, &blobs, &client),
            datasets.get(&name, &blobs, &client)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        // One load: both callers hold the same data set, and so does a
        // later caller.
        assert!(Arc::ptr_eq(&a, &b));
        let c = datasets.get(&name, &blobs, &client).await.unwrap();
        assert!(Arc::ptr_eq(&a, &c));
        assert!(!a.train.is_empty());
    }

    #[tokio::test]
    async fn a_path_named_by_a_job_is_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        // Real IDX-named files, so only the refusal can stop the load.
        for name in [
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ] {
            std::fs::write(dir.path().join(name), b"not read").unwrap();
        }
        let cache = tempfile::tempdir().unwrap();
        let blobs = BlobCache::open(cache.path()).unwrap();
        let client = Client::new("http://127.0.0.1:9", None);
        let name = DatasetName::Path(dir.path().to_path_buf());
        let e = Datasets::new(DataConfig::default())
            .get(&name, &blobs, &client)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("names a path"), "{e}");
    }
}
