//! The dev chain's data directory: `genesis.json` (chain id, gas settings, prefunded
//! accounts) and `blocks.jsonl`, one line per block with its raw transaction and outcome.
//! On restart the journal is replayed through revm, which rebuilds state, blocks,
//! receipts and logs; every replayed block must reproduce its recorded hash, gas and status.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Serialize};

use crate::error::{ChainError, Result};

/// Fixed parameters of a dev chain, written once at its creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Genesis {
    pub chain_id: u64,
    pub timestamp: u64,
    pub gas_limit: u64,
    pub base_fee: u64,
    pub alloc: Vec<(Address, U256)>,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockRecord {
    pub number: u64,
    pub timestamp: u64,
    pub hash: B256,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Bytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gas_used: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
}

/// The files of one data directory.
pub(crate) struct Store {
    dir: PathBuf,
    writer: Option<BufWriter<File>>,
}

fn storage_error(path: &Path, error: impl std::fmt::Display) -> ChainError {
    ChainError::Storage {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

impl Store {
    /// Opens `dir` (creating it), and returns the stored genesis or writes `fresh`.
    pub(crate) fn open(dir: &Path, fresh: Genesis) -> Result<(Store, Genesis)> {
        std::fs::create_dir_all(dir).map_err(|e| storage_error(dir, e))?;
        let genesis_path = dir.join("genesis.json");
        let genesis = if genesis_path.exists() {
            let text = std::fs::read_to_string(&genesis_path)
                .map_err(|e| storage_error(&genesis_path, e))?;
            let stored: Genesis =
                serde_json::from_str(&text).map_err(|e| storage_error(&genesis_path, e))?;
            if stored.chain_id != fresh.chain_id {
                return Err(storage_error(
                    &genesis_path,
                    format!(
                        "holds chain id {}, asked for {}",
                        stored.chain_id, fresh.chain_id
                    ),
                ));
            }
            stored
        } else {
            let tmp = dir.join("genesis.json.tmp");
            let text = serde_json::to_string_pretty(&fresh).map_err(|e| storage_error(&tmp, e))?;
            funetun_core::blobs::write_atomic(&tmp, &genesis_path, text.as_bytes())
                .map_err(|e| storage_error(&genesis_path, e))?;
            fresh
        };
        Ok((
            Store {
                dir: dir.to_path_buf(),
                writer: None,
            },
            genesis,
        ))
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join("blocks.jsonl")
    }

    /// Every complete record of the journal. A torn last line (a crash mid-write) is dropped
    /// and cut from the file; a bad line elsewhere is an error.
    pub(crate) fn read_records(&mut self) -> Result<Vec<BlockRecord>> {
        let path = self.journal_path();
        if !path.exists() {
            return Ok(Vec::new());
        }
        let file = File::open(&path).map_err(|e| storage_error(&path, e))?;
        let mut records = Vec::new();
        let mut good_len: u64 = 0;
        let mut lines = BufReader::new(file).split(b'\n').peekable();
        while let Some(line) = lines.next() {
            let line = line.map_err(|e| storage_error(&path, e))?;
            let is_last = lines.peek().is_none();
            match serde_json::from_slice::<BlockRecord>(&line) {
                Ok(record) => {
                    records.push(record);
                    good_len += line.len() as u64 + 1;
                }
                Err(_) if is_last => {
                    tracing::warn!(path = %path.display(), "dropping a torn last journal line");
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(|e| storage_error(&path, e))?;
                    file.set_len(good_len)
                        .map_err(|e| storage_error(&path, e))?;
                }
                Err(e) => {
                    return Err(storage_error(
                        &path,
                        format!("line {}: {e}", records.len() + 1),
                    ));
                }
            }
        }
        Ok(records)
    }

    /// Opens the journal for appending.
    pub(crate) fn open_for_append(&mut self) -> Result<()> {
        let path = self.journal_path();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| storage_error(&path, e))?;
        self.writer = Some(BufWriter::new(file));
        Ok(())
    }

    /// Appends one block and hands it to the operating system.
    pub(crate) fn append(&mut self, record: &BlockRecord) -> Result<()> {
        let path = self.journal_path();
        let Some(writer) = self.writer.as_mut() else {
            return Err(storage_error(&path, "journal not open"));
        };
        let mut line = serde_json::to_vec(record).map_err(|e| storage_error(&path, e))?;
        line.push(b'\n');
        writer
            .write_all(&line)
            .map_err(|e| storage_error(&path, e))?;
        writer.flush().map_err(|e| storage_error(&path, e))
    }

    /// Forces the journal to disk.
    pub(crate) fn sync(&mut self) -> Result<()> {
        let path = self.journal_path();
        if let Some(writer) = self.writer.as_mut() {
            writer.flush().map_err(|e| storage_error(&path, e))?;
            writer
                .get_ref()
                .sync_data()
                .map_err(|e| storage_error(&path, e))?;
        }
        Ok(())
    }
}
