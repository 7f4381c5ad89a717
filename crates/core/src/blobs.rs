//! The content-addressed blob directory: immutable blobs (checkpoints,
//! deltas, optimizer states, job specs) named by the keccak256 of their
//! bytes, kept as files `ab/abcdef….bin` under a root directory.
//!
//! One implementation serves the orchestrator's blob store and every
//! participant's cache. Its rules:
//!
//! - **Checked on the way in.** [`BlobDir::put`] refuses bytes whose
//!   keccak256 is not the name they are stored under.
//! - **Never half-visible.** Bytes are written to a temporary file in
//!   `tmp/`, fsynced, and renamed into place ([`write_atomic`]); a reader
//!   sees the whole blob or none, and a crash leaves at worst a temporary
//!   file, which [`BlobDir::clear_temporaries`] removes.
//! - **Write-once.** Storing a blob that is already there is a no-op.
//! - **Checked on the way out.** [`BlobDir::get`] hashes what it read; a
//!   damaged file is removed and reported as absent, so it is fetched again.
//!
//! Synchronous and std-only: async callers wrap it (`spawn_blocking`, or
//! directly for small blobs).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::hash::{Hash, keccak256};

/// Blobs as files in a local directory, named by their keccak256.
#[derive(Debug)]
pub struct BlobDir {
    root: PathBuf,
    counter: AtomicU64,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

impl BlobDir {
    /// Opens (creating) the directory at `root`. Leaves temporary files
    /// alone: another process may be writing into the same directory.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
        Ok(Self {
            root,
            counter: AtomicU64::new(0),
        })
    }

    /// Removes leftover temporary files of crashed writers; call it only
    /// when no other process writes here. Returns how many it removed.
    pub fn clear_temporaries(&self) -> Result<usize> {
        let tmp = self.root.join("tmp");
        let mut removed = 0;
        for entry in std::fs::read_dir(&tmp).map_err(io_error(&tmp))?.flatten() {
            if std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where blob `hash` lives.
    pub fn path(&self, hash: Hash) -> PathBuf {
        Self::path_in(&self.root, hash)
    }

    /// Where a blob directory at `root` keeps `hash`, for reading one
    /// without opening it (which creates `tmp/`).
    pub fn path_in(root: &Path, hash: Hash) -> PathBuf {
        let hex = hex::encode(hash);
        root.join(&hex[..2]).join(format!("{hex}.bin"))
    }

    /// Stores `bytes` under `hash`, which must be their keccak256. Returns
    /// whether the blob was new (false: it was already stored, nothing
    /// written).
    pub fn put(&self, hash: Hash, bytes: &[u8]) -> Result<bool> {
        let actual = keccak256(bytes);
        if actual != hash {
            return Err(Error::BlobHash {
                named: hash,
                actual,
            });
        }
        let path = self.path(hash);
        if path.exists() {
            return Ok(false);
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.root.join("tmp").join(format!(
            "{}-{}-{n}.tmp",
            hex::encode(&hash[..8]),
            std::process::id()
        ));
        write_atomic(&tmp, &path, bytes)?;
        Ok(true)
    }

    /// The blob, if stored and intact. A file whose bytes do not hash to
    /// its name is removed and reported as absent.
    pub fn get(&self, hash: Hash) -> Result<Option<Vec<u8>>> {
        let path = self.path(hash);
        match std::fs::read(&path) {
            Ok(bytes) if keccak256(&bytes) == hash => Ok(Some(bytes)),
            Ok(_) => {
                remove_damaged(&path);
                Ok(None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Marks blob `hash` as used now (its file's modification time), so
    /// [`BlobDir::prune`] keeps it longest. Best effort: a blob that is
    /// missing or read-only is left as it is.
    pub fn touch(&self, hash: Hash) {
        let path = self.path(hash);
        if let Ok(f) = std::fs::File::options().write(true).open(&path) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }

    /// Removes blob `hash`; whether it was there.
    pub fn remove(&self, hash: Hash) -> Result<bool> {
        let path = self.path(hash);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(Error::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Removes the blobs unused (by modification time, see
    /// [`BlobDir::touch`]) for at least `idle`, then the least recently
    /// used ones until at most `max_bytes` remain. Temporary files are left
    /// alone. Only for a cache: every blob removed must be fetchable again.
    pub fn prune(
        &self,
        idle: Option<std::time::Duration>,
        max_bytes: Option<u64>,
    ) -> Result<Pruned> {
        let mut blobs = Vec::new();
        for shard in std::fs::read_dir(&self.root)
            .map_err(io_error(&self.root))?
            .flatten()
        {
            let dir = shard.path();
            if !dir.is_dir() || shard.file_name() == "tmp" {
                continue;
            }
            for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))?.flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "bin") {
                    continue;
                }
                if let Ok(meta) = entry.metadata() {
                    let used = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                    blobs.push((used, meta.len(), path));
                }
            }
        }
        blobs.sort();
        let now = std::time::SystemTime::now();
        let mut total: u64 = blobs.iter().map(|(_, len, _)| len).sum();
        let mut out = Pruned::default();
        for (used, len, path) in blobs {
            let stale =
                idle.is_some_and(|idle| now.duration_since(used).unwrap_or_default() >= idle);
            let over = max_bytes.is_some_and(|max| total > max);
            if (stale || over) && std::fs::remove_file(&path).is_ok() {
                out.removed += 1;
                out.freed_bytes += len;
                total -= len;
            } else {
                out.kept += 1;
                out.kept_bytes += len;
            }
        }
        Ok(out)
    }

    /// A writer that streams a new blob into the directory through a
    /// temporary file; [`BlobWriter::finish`] checks the hash and puts it
    /// in place. Nothing is visible until then.
    pub fn writer(&self) -> Result<BlobWriter> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("stream-{}-{n}.tmp", std::process::id()));
        let file = std::fs::File::create(&tmp).map_err(io_error(&tmp))?;
        Ok(BlobWriter {
            root: self.root.clone(),
            tmp,
            file: Some(file),
            hasher: alloy_primitives::Keccak256::new(),
            len: 0,
        })
    }

    /// Whether a file for the blob is stored (its content is checked by
    /// [`get`](Self::get)).
    pub fn contains(&self, hash: Hash) -> bool {
        self.path(hash).exists()
    }
}

/// A blob being streamed in: bytes go to a temporary file and into the
/// hash as they arrive. Dropped unfinished, it removes its temporary file.
#[derive(Debug)]
pub struct BlobWriter {
    root: PathBuf,
    tmp: PathBuf,
    file: Option<std::fs::File>,
    hasher: alloy_primitives::Keccak256,
    len: u64,
}

impl BlobWriter {
    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self
            .file
            .as_mut()
            .expect("a blob writer is written until finished");
        file.write_all(bytes).map_err(io_error(&self.tmp))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that the bytes hash to `hash` and puts the blob in place
    /// (durably). Returns whether it was new; a wrong hash is refused and
    /// nothing is stored.
    pub fn finish(mut self, hash: Hash) -> Result<bool> {
        let file = self.file.take().expect("finished once");
        let actual = std::mem::take(&mut self.hasher).finalize();
        if actual != hash {
            drop(file);
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Error::BlobHash {
                named: hash,
                actual,
            });
        }
        file.sync_all().map_err(io_error(&self.tmp))?;
        drop(file);
        let hex = hex::encode(hash);
        let path = self.root.join(&hex[..2]).join(format!("{hex}.bin"));
        if path.exists() {
            let _ = std::fs::remove_file(&self.tmp);
            return Ok(false);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        }
        std::fs::rename(&self.tmp, &path).map_err(io_error(&path))?;
        if let Some(dir) = path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(true)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Removes a damaged blob; a failure only means the next `put` finds it
/// present and the next `get` removes it again.
/// What [`BlobDir::prune`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Blobs removed.
    pub removed: u64,
    /// Their bytes.
    pub freed_bytes: u64,
    /// Blobs kept.
    pub kept: u64,
    /// Their bytes.
    pub kept_bytes: u64,
}

fn remove_damaged(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Writes `bytes` to `path` without ever exposing a partial file: through
/// the temporary file `tmp` (same file system), fsynced, then renamed into
/// place; the directory is fsynced too so the rename survives a crash. The
/// temporary file is removed if anything fails.
pub fn write_atomic(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    if let Some(dir) = tmp.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let written = (|| {
        let mut file = std::fs::File::create(tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(tmp, path)
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(tmp);
        return Err(Error::Io {
            path: path.display().to_string(),
            source,
        });
    }
    // Directory fsync makes the rename durable; not every platform allows
    // opening a directory, and the blob is complete either way.
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn blobs_round_trip_and_a_second_write_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobDir::open(dir.path()).unwrap();
        let bytes = b"hello blobs".to_vec();
        let hash = keccak256(&bytes);
        assert!(!store.contains(hash));
        assert_eq!(store.get(hash).unwrap(), None);
        assert!(store.put(hash, &bytes).unwrap());
        let written = std::fs::metadata(store.path(hash))
            .unwrap()
            .modified()
            .unwrap();
        assert!(!store.put(hash, &bytes).unwrap());
        let again = std::fs::metadata(store.path(hash))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(written, again, "a second write must not touch the file");
        assert_eq!(store.get(hash).unwrap().unwrap(), bytes);
        assert_eq!(files_under(dir.path()), vec![store.path(hash)]);
    }

    #[test]
    fn a_wrong_hash_is_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobDir::open(dir.path()).unwrap();
        let e = store.put(Hash::ZERO, b"not zero").unwrap_err();
        assert!(matches!(e, Error::BlobHash { named, .. } if named == Hash::ZERO));
        assert!(!store.contains(Hash::ZERO));
        assert!(files_under(dir.path()).is_empty());
    }

    #[test]
    fn no_half_written_blob_is_ever_visible() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(BlobDir::open(dir.path()).unwrap());
        let bytes: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let hash = keccak256(&bytes);
        let path = store.path(hash);
        let writer = {
            let store = store.clone();
            let bytes = bytes.clone();
            std::thread::spawn(move || store.put(hash, &bytes).unwrap())
        };
        // Whenever the file is visible under its name, it is whole.
        while !writer.is_finished() {
            if let Ok(read) = std::fs::read(&path) {
                assert_eq!(read.len(), bytes.len(), "a partial blob was visible");
            }
        }
        assert!(writer.join().unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_damaged_blob_reads_as_absent_and_is_stored_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobDir::open(dir.path()).unwrap();
        let bytes = b"checkpoint".to_vec();
        let hash = keccak256(&bytes);
        store.put(hash, &bytes).unwrap();
        std::fs::write(store.path(hash), b"checkpoinT").unwrap();
        assert_eq!(store.get(hash).unwrap(), None);
        assert!(store.put(hash, &bytes).unwrap());
        assert_eq!(store.get(hash).unwrap().unwrap(), bytes);
    }

    #[test]
    fn a_streamed_blob_is_checked_and_a_wrong_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobDir::open(dir.path()).unwrap();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let hash = keccak256(&bytes);
        let mut w = store.writer().unwrap();
        for chunk in bytes.chunks(4096) {
            w.write(chunk).unwrap();
        }
        assert_eq!(w.len(), bytes.len() as u64);
        assert!(!store.contains(hash), "nothing is visible before finish");
        assert!(w.finish(hash).unwrap());
        assert_eq!(store.get(hash).unwrap().unwrap(), bytes);

        let mut w = store.writer().unwrap();
        w.write(b"not those bytes").unwrap();
        let e = w.finish(Hash::ZERO).unwrap_err();
        assert!(matches!(e, Error::BlobHash { named, .. } if named == Hash::ZERO));
        let mut w = store.writer().unwrap();
        w.write(b"abandoned").unwrap();
        drop(w);
        assert_eq!(files_under(dir.path()), vec![store.path(hash)]);
    }

    #[test]
    fn leftover_temporaries_are_cleared_on_request_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobDir::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("tmp").join("crashed.tmp"), b"half").unwrap();
        let reopened = BlobDir::open(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            1
        );
        assert_eq!(reopened.clear_temporaries().unwrap(), 1);
        assert_eq!(store.clear_temporaries().unwrap(), 0);
    }

    #[test]
    fn prune_removes_idle_blobs_then_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobDir::open(dir.path()).unwrap();
        let hour = std::time::Duration::from_secs(3_600);
        let now = std::time::SystemTime::now();
        let mut hashes = Vec::new();
        for (i, age) in [5 * hour, 2 * hour, hour / 2, hour / 4]
            .into_iter()
            .enumerate()
        {
            let bytes = vec![i as u8; 100];
            let hash = keccak256(&bytes);
            blobs.put(hash, &bytes).unwrap();
            std::fs::File::options()
                .write(true)
                .open(blobs.path(hash))
                .unwrap()
                .set_modified(now - age)
                .unwrap();
            hashes.push(hash);
        }
        std::fs::write(dir.path().join("tmp").join("x.tmp"), b"half").unwrap();
        // Unused for an hour: the two oldest go.
        let p = blobs.prune(Some(hour), None).unwrap();
        assert_eq!(
            (p.removed, p.freed_bytes, p.kept, p.kept_bytes),
            (2, 200, 2, 200)
        );
        assert!(blobs.get(hashes[0]).unwrap().is_none());
        assert!(blobs.get(hashes[2]).unwrap().is_some());
        // Used again, the older of the two is now the newest; a size cap then
        // removes the other one.
        blobs.touch(hashes[2]);
        let p = blobs.prune(None, Some(150)).unwrap();
        assert_eq!((p.removed, p.kept), (1, 1));
        assert!(blobs.get(hashes[2]).unwrap().is_some());
        assert!(blobs.get(hashes[3]).unwrap().is_none());
        assert!(dir.path().join("tmp").join("x.tmp").exists());
        assert!(blobs.remove(hashes[2]).unwrap());
        assert!(!blobs.remove(hashes[2]).unwrap());
    }
}
