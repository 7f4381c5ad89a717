//! The content-addressed blob store: checkpoints, deltas, outer-optimizer
//! states and job specs, named by the keccak256 of their bytes.
//!
//! [`BlobStore`] is the seam (an object store behind it would be a second
//! implementation); [`LocalBlobStore`] is `funetun_core`'s [`BlobDir`] —
//! the same checked, atomic, write-once directory that participants cache
//! blobs in (`ab/abcdef….bin`, written through `tmp/`, so a blob is never
//! half-visible). The orchestrator is the directory's only writer, so a
//! crash's stray temporary files are removed when it opens.

use std::path::{Path, PathBuf};

use alloy_primitives::B256;
use funetun_core::blobs::{BlobDir, BlobWriter};

use crate::error::{Error, Result};

/// A store of immutable blobs named by their keccak256.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `hash`, which must be their keccak256. Storing a
    /// blob that is already there is a no-op. Returns whether it was new.
    fn put(&self, hash: B256, bytes: &[u8]) -> Result<bool>;
    /// The blob, if stored.
    fn get(&self, hash: B256) -> Result<Option<Vec<u8>>>;
    /// Whether the blob is stored.
    fn contains(&self, hash: B256) -> Result<bool>;
    /// A writer that streams a new blob in (an owner's data or checkpoint,
    /// too large to hold in memory); it is stored when its hash checks.
    fn writer(&self) -> Result<BlobWriter>;
    /// A file holding the blob, to stream it out; `None` if not stored.
    /// Its bytes are checked by the reader (the client hashes what it got).
    fn file(&self, hash: B256) -> Result<Option<PathBuf>>;
    /// Deletes the blob (retention, docs/orchestrator.md); whether it was
    /// stored.
    fn remove(&self, hash: B256) -> Result<bool>;
}

/// Blobs as files in a local directory.
#[derive(Debug)]
pub struct LocalBlobStore {
    dir: BlobDir,
}

fn store_error(e: funetun_core::Error) -> Error {
    match e {
        funetun_core::Error::BlobHash { .. } => Error::Inconsistent(e.to_string()),
        funetun_core::Error::Io { source, .. } => Error::Io(source),
        other => Error::Tensors(other),
    }
}

impl LocalBlobStore {
    /// Opens (creating) the store at `root` and clears leftover temporary files.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let dir = BlobDir::open(root).map_err(store_error)?;
        dir.clear_temporaries().map_err(store_error)?;
        Ok(LocalBlobStore { dir })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        self.dir.root()
    }
}

impl BlobStore for LocalBlobStore {
    fn put(&self, hash: B256, bytes: &[u8]) -> Result<bool> {
        self.dir.put(hash, bytes).map_err(store_error)
    }

    fn get(&self, hash: B256) -> Result<Option<Vec<u8>>> {
        self.dir.get(hash).map_err(store_error)
    }

    fn contains(&self, hash: B256) -> Result<bool> {
        Ok(self.dir.contains(hash))
    }

    fn writer(&self) -> Result<BlobWriter> {
        self.dir.writer().map_err(store_error)
    }

    fn file(&self, hash: B256) -> Result<Option<PathBuf>> {
        let path = self.dir.path(hash);
        Ok(path.is_file().then_some(path))
    }

    fn remove(&self, hash: B256) -> Result<bool> {
        self.dir.remove(hash).map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use funetun_core::keccak256;

    use super::*;

    #[test]
    fn blobs_round_trip_and_refuse_a_wrong_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let bytes = b"hello blobs".to_vec();
        let hash = keccak256(&bytes);
        assert!(!store.contains(hash).unwrap());
        assert!(store.put(hash, &bytes).unwrap());
        assert!(!store.put(hash, &bytes).unwrap());
        assert_eq!(store.get(hash).unwrap().unwrap(), bytes);
        assert!(store.put(B256::ZERO, &bytes).is_err());
        assert_eq!(store.get(B256::ZERO).unwrap(), None);
        let leftovers = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
        assert_eq!(leftovers, 0);
    }
}
