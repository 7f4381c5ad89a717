//! The storage layer: every SQL statement of the orchestrator, behind
//! [`Store`] (reads and single-statement writes) and [`StoreTx`] (a write
//! transaction). Rows come back as typed structs mapped by column name.
//!
//! One module per table family, following `crates/orchestrator/migrations`:
//!
//! - [`meta`]: key/value settings (the last processed block, leader, contract).
//! - [`jobs`]: jobs led here, their summaries and life cycle.
//! - [`tasks`]: task leases.
//! - [`updates`]: reported updates, the chain's view of them, votes,
//!   validation assignments and reports.
//! - [`rounds`]: rounds, their fixed inputs and metrics.
//! - [`participants`]: everyone heard of, their money, counts and points.
//! - [`nonces`]: nonces of signed requests kept across a clean restart.
//! - [`graph`]: the `/graph` counters.
//!
//! The backend is SQLite: one connection writes (so write transactions never
//! fight for SQLite's lock), a few others read; WAL lets readers see the
//! last committed state while a write is under way. Every state change is
//! one transaction on the writer. An in-memory database (`sqlite::memory:`)
//! uses a single connection for both, since each connection would otherwise
//! see its own empty database. The SQL sticks to what PostgreSQL also reads
//! where that costs nothing (`ON CONFLICT`, `COALESCE`, row values), so a
//! second backend is another implementation of these methods.

pub mod graph;
pub mod jobs;
pub mod meta;
pub mod nonces;
pub mod participants;
pub mod rounds;
pub mod tasks;
pub mod updates;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::error::{Error, Result};

/// The database: a writer and readers. Cloning shares the pools.
#[derive(Clone, Debug)]
pub struct Store {
    /// Reads (a snapshot of the last commit).
    read: SqlitePool,
    /// The single writer.
    write: SqlitePool,
}

/// A write transaction: commit it, or dropping it rolls it back.
#[derive(Debug)]
pub struct StoreTx {
    tx: Transaction<'static, Sqlite>,
}

impl Store {
    /// Opens (creating) the database at `url` and runs the migrations.
    pub async fn open(url: &str) -> Result<Store> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("database URL `{url}`: {e}")))?
            .create_if_missing(true)
            .journal_mode(if memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&write).await?;
        let read = if memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        };
        Ok(Store { read, write })
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<StoreTx> {
        Ok(StoreTx {
            tx: self.write.begin().await?,
        })
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

impl StoreTx {
    /// Makes the transaction's writes durable.
    pub async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }

    /// Drops the transaction's writes.
    pub async fn rollback(self) -> Result<()> {
        Ok(self.tx.rollback().await?)
    }

    fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }
}

/// A stored non-negative integer as a `u64` (negative values, which the
/// orchestrator never writes, read as zero).
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A `u64` count, id or time as SQLite's signed integer.
pub(crate) fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
