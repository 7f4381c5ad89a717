//! Data sets loaded once per process, by name, off the async runtime.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use funetun_ml::{Dataset, DatasetName, LoadOptions};
use tracing::info;

use crate::error::{Error, Result};

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

    /// The data set `name`, loading it off the async runtime on first use.
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
