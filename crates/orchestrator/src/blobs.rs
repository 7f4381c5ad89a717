//! The content-addressed blob store: checkpoints, deltas, outer-optimizer
//! states and job specs, named by the keccak256 of their bytes.
//!
//! [`BlobStore`] is the seam (an object store behind it would be a second
//! implementation); [`LocalBlobStore`] keeps blobs in a directory as
//! `ab/abcdef….bin`, written to a temporary file in `tmp/`, flushed and
//! renamed into place, so a blob is never half-visible, and a crash leaves at
//! worst a stray temporary file (removed on the next open).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use alloy_primitives::B256;
use funetun_core::keccak256;

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
}

/// Blobs as files in a local directory.
#[derive(Debug)]
pub struct LocalBlobStore {
    root: PathBuf,
    counter: AtomicU64,
}

impl LocalBlobStore {
    /// Opens (creating) the store at `root` and clears leftover temporary files.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        for entry in std::fs::read_dir(&tmp)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(LocalBlobStore {
            root,
            counter: AtomicU64::new(0),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, hash: B256) -> PathBuf {
        let hex = hex::encode(hash);
        self.root.join(&hex[..2]).join(format!("{hex}.bin"))
    }
}

impl BlobStore for LocalBlobStore {
    fn put(&self, hash: B256, bytes: &[u8]) -> Result<bool> {
        let actual = keccak256(bytes);
        if actual != hash {
            return Err(Error::Inconsistent(format!(
                "blob named {hash} hashes to {actual}"
            )));
        }
        let path = self.path(hash);
        if path.exists() {
            return Ok(false);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.root.join("tmp").join(format!(
            "{}-{}-{n}.tmp",
            hex::encode(&hash[..8]),
            std::process::id()
        ));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        Ok(true)
    }

    fn get(&self, hash: B256) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(hash)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn contains(&self, hash: B256) -> Result<bool> {
        Ok(self.path(hash).exists())
    }
}

#[cfg(test)]
mod tests {
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
