//! The participant's blob cache: checkpoints and deltas kept on disk by
//! hash in a [`BlobDir`] (checked, atomic, write-once — the same directory
//! format as the orchestrator's store), so a base is downloaded once.

use std::path::Path;
use std::sync::Arc;

use alloy_primitives::B256;
use funetun_client::Client;
use funetun_core::TensorSet;
use funetun_core::blobs::BlobDir;
use funetun_ml::Space;
use tracing::debug;

use crate::error::{Error, Result};

/// A cached blob unused this long is removed by [`BlobCache::prune`]: every
/// blob a participant still needs (the open round's base, a data set in
/// use) is used, and so touched, far more often; anything removed is
/// downloaded again by hash when asked for.
pub const CACHE_IDLE: std::time::Duration = std::time::Duration::from_secs(3_600);

/// How often a running participant prunes its cache.
pub const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Checkpoints and deltas kept on disk by hash.
#[derive(Clone, Debug)]
pub struct BlobCache {
    dir: Arc<BlobDir>,
}

impl BlobCache {
    /// A cache in `dir` (created if missing).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Ok(Self {
            dir: Arc::new(BlobDir::open(dir).map_err(Error::Cache)?),
        })
    }

    /// The bytes of blob `hash`: from disk if present and intact, else
    /// downloaded (hash-checked by the client) and stored.
    pub async fn bytes(&self, client: &Client, hash: B256) -> Result<Vec<u8>> {
        if let Some(bytes) = self.dir.get(hash).map_err(Error::Cache)? {
            self.dir.touch(hash);
            return Ok(bytes);
        }
        debug!(%hash, "blob not cached; downloading");
        let bytes = client.get_blob(hash).await?;
        self.dir.put(hash, &bytes).map_err(Error::Cache)?;
        Ok(bytes)
    }

    /// Makes sure blob `hash` is on disk, streaming it from the
    /// orchestrator if not (an owner's data may be larger than memory
    /// should hold twice).
    pub async fn ensure(&self, client: &Client, hash: B256) -> Result<()> {
        if self.dir.contains(hash) {
            self.dir.touch(hash);
            return Ok(());
        }
        debug!(%hash, "data blob not cached; streaming it");
        let writer = self.dir.writer().map_err(Error::Cache)?;
        client.download_blob(hash, writer).await?;
        Ok(())
    }

    /// Removes the blobs unused for [`CACHE_IDLE`] (off the async runtime).
    pub async fn prune(&self) -> Result<funetun_core::blobs::Pruned> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || dir.prune(Some(CACHE_IDLE), None))
            .await
            .map_err(|e| {
                Error::Cache(funetun_core::Error::Io {
                    path: "blob cache".into(),
                    source: std::io::Error::other(e.to_string()),
                })
            })?
            .map_err(Error::Cache)
    }

    /// The blob directory.
    pub fn dir(&self) -> Arc<BlobDir> {
        self.dir.clone()
    }

    /// Blob `hash` decoded as a checkpoint or update of `space` (the
    /// model's weights, or a LoRA job's adapters).
    pub async fn tensors(&self, client: &Client, hash: B256, space: &Space) -> Result<TensorSet> {
        let bytes = self.bytes(client, hash).await?;
        space.decode(&bytes).map_err(|source| Error::Blob {
            hash: hash.to_string(),
            source,
        })
    }
}
