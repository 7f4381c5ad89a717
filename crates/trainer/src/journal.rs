//! The trainer's journal: one fsynced JSON line per on-chain submission,
//! written after `submitUpdate` returns and before the update is reported,
//! so a restarted trainer reports what it submitted instead of submitting
//! twice.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct JournalEntry {
    pub(crate) job_id: u64,
    pub(crate) round: u64,
    /// The task's slot (journals written before a trainer could submit on
    /// two slots of a round read as slot 0).
    #[serde(default)]
    pub(crate) slot: u32,
    pub(crate) task_id: u64,
    pub(crate) update_hash: B256,
    pub(crate) tx_hash: B256,
    pub(crate) loss_before: f32,
    pub(crate) loss_after: f32,
    /// Submitted under an attack (not what the task asked for).
    #[serde(default)]
    pub(crate) forged: bool,
}

/// One line of a trainer's journal, as tools read it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalLine {
    /// The job.
    pub job_id: u64,
    /// The round.
    pub round: u64,
    /// The task's slot in its round (its shard in a `sync` job).
    pub slot: u32,
    /// The committed hash.
    pub update_hash: B256,
    /// Whether the update was forged by an attack.
    pub forged: bool,
}

/// Reads the journal `path` (missing: empty; torn lines skipped).
pub fn read_journal(path: &Path) -> Result<Vec<JournalLine>> {
    Ok(Journal::open(path.to_path_buf())?
        .entries
        .into_values()
        .map(|e| JournalLine {
            job_id: e.job_id,
            round: e.round,
            slot: e.slot,
            update_hash: e.update_hash,
            forged: e.forged,
        })
        .collect())
}

/// The journal file of `address` in a cache directory.
pub fn journal_path(cache_dir: &Path, address: Address) -> PathBuf {
    cache_dir.join(format!("journal-{address}.jsonl"))
}

pub(crate) struct Journal {
    path: PathBuf,
    /// Keys appended by this process, in order.
    pub(crate) appended: Vec<(u64, u64, u32)>,
    /// By (job, round, slot).
    pub(crate) entries: HashMap<(u64, u64, u32), JournalEntry>,
}

impl Journal {
    pub(crate) fn open(path: PathBuf) -> Result<Self> {
        let mut entries = HashMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                // A torn last line (crash mid-write) is skipped.
                for entry in text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<JournalEntry>(l).ok())
                {
                    entries.insert((entry.job_id, entry.round, entry.slot), entry);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
        Ok(Self {
            path,
            appended: Vec::new(),
            entries,
        })
    }

    pub(crate) fn append(&mut self, entry: JournalEntry) -> Result<()> {
        let io = |source| Error::Io {
            path: self.path.display().to_string(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        let line = serde_json::to_string(&entry).expect("journal entries serialize");
        writeln!(f, "{line}").map_err(io)?;
        f.sync_data().map_err(io)?;
        let key = (entry.job_id, entry.round, entry.slot);
        self.appended.push(key);
        self.entries.insert(key, entry);
        Ok(())
    }
}
