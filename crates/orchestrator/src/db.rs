//! SQLite storage: the connection pools, migrations and the meta table.
//!
//! One connection writes (so write transactions never fight for SQLite's
//! lock), a few others read; WAL lets readers see the last committed state
//! while a write is under way. Every state change is one transaction on the
//! writer. An in-memory database (`sqlite::memory:`) uses a single
//! connection for both, since each connection would otherwise see its own
//! empty database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::error::{Error, Result};

/// The database: a writer and readers.
#[derive(Clone, Debug)]
pub struct Db {
    /// Reads (a snapshot of the last commit).
    pub read: SqlitePool,
    /// The single writer.
    pub write: SqlitePool,
}

/// A write transaction.
pub type Tx = Transaction<'static, Sqlite>;

impl Db {
    /// Opens (creating) the database at `url` and runs the migrations.
    pub async fn open(url: &str) -> Result<Db> {
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
        Ok(Db { read, write })
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.write.begin().await?)
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// Reads a meta value.
pub async fn meta_get<'e, E: sqlx::SqliteExecutor<'e>>(db: E, key: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
        .bind(key)
        .fetch_optional(db)
        .await?)
}

/// Writes a meta value.
pub async fn meta_set<'e, E: sqlx::SqliteExecutor<'e>>(
    db: E,
    key: &str,
    value: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
        .bind(key)
        .bind(value)
        .execute(db)
        .await?;
    Ok(())
}
