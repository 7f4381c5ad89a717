//! The storage layer: every SQL statement of the orchestrator, behind
//! [`Store`] (reads and single-statement writes) and [`StoreTx`] (a write
//! transaction). Rows come back as typed structs mapped by column name.
//!
//! One module per table family, following `crates/orchestrator/migrations`:
//!
//! - [`meta`]: key/value settings (the last processed block, leader, contract).
//! - [`jobs`]: jobs led here, their summaries and life cycle.
//! - [`tasks`]: task leases.
//! - [`compute`]: generic WebAssembly tasks and their replicas.
//! - [`updates`]: reported updates, the chain's view of them, votes,
//!   validation assignments and reports.
//! - [`rounds`]: rounds, their fixed inputs and metrics.
//! - [`participants`]: everyone heard of, their money, counts and points.
//! - [`nonces`]: nonces of signed requests kept across a clean restart.
//! - [`graph`]: the `/graph` counters.
//! - [`leadership`]: which replica leads, and the fencing token of its term.
//!
//! Two backends behind one implementation of these methods, through sqlx's
//! `Any` driver: the SQL is the dialect SQLite and PostgreSQL share
//! (numbered `$1` placeholders, `ON CONFLICT`, `COALESCE`, `CASE`, row
//! values), and each backend has its own migrations, kept in step
//! (`migrations/sqlite` and `migrations/postgres`: the same versions, tables
//! and columns; a test compares them).
//!
//! - **SQLite** (`sqlite://path`, `sqlite::memory:`): one connection writes,
//!   so write transactions never fight for SQLite's lock; a few others read,
//!   and WAL lets them see the last committed state while a write is under
//!   way. An in-memory database uses a single connection for both, since
//!   each connection would otherwise see its own empty database.
//! - **PostgreSQL** (`postgres://…`): one pool. Every write transaction
//!   first takes a transaction-scoped advisory lock ([`WRITE_LOCK`]), so
//!   write transactions run one at a time as on SQLite, whichever process
//!   (replica) runs them; reads never wait for it.
//!
//! Every state change is one transaction.
//!
//! **Fencing.** The chain watcher and the round driver run only on the
//! leading replica, inside [`fenced`] with the token of its term. Every
//! write transaction begun there re-reads the lease's token right after
//! taking the write lock and is refused ([`Error::Deposed`]) when another
//! term has begun, so a leader that was paused past its lease (a long GC,
//! a stopped VM) cannot write once a successor has taken over.

pub mod compute;
pub mod graph;
pub mod jobs;
pub mod leadership;
pub mod meta;
pub mod nonces;
pub mod participants;
pub mod rounds;
pub mod tasks;
pub mod updates;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Executor, Transaction};

use crate::error::{Error, Result};

/// The key of the PostgreSQL advisory lock that every write transaction
/// holds (`pg_advisory_xact_lock`): ASCII "funetun" as a number.
pub const WRITE_LOCK: i64 = 0x0066_756e_6574_756e;

/// The PostgreSQL advisory lock of validation assignments ([`Store::hold`]).
pub const ASSIGN_LOCK: i64 = 0x4100_0000_0000_0000;

/// The PostgreSQL advisory lock of job `job`'s lease decisions and round
/// changes ([`Store::hold`]).
pub fn job_lock_key(job: u64) -> i64 {
    0x4a00_0000_0000_0000 | to_db(job & 0x00ff_ffff_ffff_ffff)
}

/// A lock held across replicas until dropped (an open PostgreSQL
/// transaction holding a transaction-scoped advisory lock; dropping it
/// rolls the transaction back, which releases the lock).
#[derive(Debug)]
pub struct HeldLock {
    _tx: Transaction<'static, Any>,
}

/// How long a request waits for a database connection before it is
/// answered `503 database_unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

tokio::task_local! {
    /// The fencing token of the leader's term the current task runs in.
    static FENCE: i64;
}

/// Runs `work` as part of the leader's term `token`: every write
/// transaction it begins checks that the term has not ended.
pub async fn fenced<F: std::future::Future>(token: i64, work: F) -> F::Output {
    FENCE.scope(token, work).await
}

/// The token of the term the current task runs in, if any.
pub fn current_term() -> Option<i64> {
    FENCE.try_with(|t| *t).ok()
}

/// Which database engine a [`Store`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file, or memory.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, or an error saying which URLs work.
    pub fn of(url: &str) -> Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(Error::Config(format!(
                "database URL `{}`: use sqlite://PATH, sqlite::memory: or postgres://USER@HOST:PORT/DB",
                redact(url)
            )))
        }
    }
}

/// The database: a writer and readers. Cloning shares the pools.
#[derive(Clone, Debug)]
pub struct Store {
    /// Reads (a snapshot of the last commit).
    read: AnyPool,
    /// Writes: SQLite's single writer, or PostgreSQL's one pool.
    write: AnyPool,
    /// PostgreSQL: the shared check of signed requests ([`nonces`]).
    admit: Option<Arc<nonces::Admitter>>,
    backend: Backend,
}

/// A write transaction: commit it, or dropping it rolls it back.
#[derive(Debug)]
pub struct StoreTx {
    tx: Transaction<'static, Any>,
}

impl Store {
    /// Opens (creating, for SQLite) the database at `url` and runs the
    /// migrations.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        match Backend::of(url)? {
            Backend::Sqlite => Store::open_sqlite(url).await,
            Backend::Postgres => Store::open_postgres(url).await,
        }
    }

    async fn open_sqlite(url: &str) -> Result<Store> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        if !memory {
            // Creates the file and switches it to WAL, which the file keeps;
            // the pools below then open it as it is.
            let first = SqliteConnectOptions::from_str(url)
                .map_err(|e| Error::Config(format!("database URL `{url}`: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .connect()
                .await?;
            first.close().await?;
        }
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("database URL `{url}`: {e}")))?;
        let pool = |max: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .test_before_acquire(false)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        for pragma in [
                            "PRAGMA busy_timeout = 10000",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA foreign_keys = OFF",
                        ] {
                            conn.execute(pragma).await?;
                        }
                        Ok(())
                    })
                })
        };
        let write = pool(1)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        let read = if memory {
            write.clone()
        } else {
            pool(4).connect_with(options).await?
        };
        Ok(Store {
            read,
            write,
            admit: None,
            backend: Backend::Sqlite,
        })
    }

    async fn open_postgres(url: &str) -> Result<Store> {
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("database URL `{}`: {e}", redact(url))))?;
        // Enough for the readers and writers of the API and the driver, and
        // one connection per job whose lease decision holds its lock.
        let pool = AnyPoolOptions::new()
            .max_connections(16)
            .test_before_acquire(false)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        // Replicas starting together migrate one at a time.
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        // Nonces and rate buckets: the batching admitter's own connections.
        let admit = nonces::Admitter::start(url)?;
        Ok(Store {
            read: pool.clone(),
            write: pool,
            admit: Some(Arc::new(admit)),
            backend: Backend::Postgres,
        })
    }

    /// The engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction; inside a leader's term ([`fenced`]),
    /// one that is refused when the term has ended.
    pub async fn begin(&self) -> Result<StoreTx> {
        let mut tx = self.begin_unfenced().await?;
        if let Some(token) = current_term() {
            tx.check_fence(token).await?;
        }
        Ok(tx)
    }

    /// Starts a write transaction whatever the term (the election itself).
    async fn begin_unfenced(&self) -> Result<StoreTx> {
        let mut tx = self.write.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(WRITE_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        Ok(StoreTx { tx })
    }

    /// On PostgreSQL, waits for and holds the advisory lock `key`, which
    /// every replica's holders of the same key exclude each other by; on
    /// SQLite (one process, whose callers also hold an in-process lock)
    /// nothing.
    pub async fn hold(&self, key: i64) -> Result<Option<HeldLock>> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut tx = self.write.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        Ok(Some(HeldLock { _tx: tx }))
    }

    /// Runs one statement as a write transaction of its own (fenced like
    /// any other); returns the rows it changed.
    async fn write_one<'q>(
        &self,
        query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let done = query.execute(tx.conn()).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
        if let Some(admit) = &self.admit {
            admit.close().await;
        }
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

    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

/// Creates an empty database named `PREFIX_<unique>` on the PostgreSQL
/// server at `server` (a URL whose user may create databases) and returns
/// its URL: what tests and benchmarks run on, each on a database of its own.
pub async fn fresh_postgres_database(server: &str, prefix: &str) -> Result<String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if Backend::of(server)? != Backend::Postgres {
        return Err(Error::Config(format!(
            "`{}` is not a postgres:// URL",
            redact(server)
        )));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}_{}_{n}_{nanos}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(server).await?;
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    admin.close().await?;
    // The query (a socket directory, `sslmode`, …) stays with the new name.
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
    Ok(format!("{base}/{name}{query}"))
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    match authority.rfind('@').and_then(|at| {
        let user_info = &authority[..at];
        user_info.find(':').map(|colon| (colon, at))
    }) {
        Some((colon, at)) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// A stored non-negative integer as a `u64` (negative values, which the
/// orchestrator never writes, read as zero).
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A `u64` count, id or time as the database's signed 64-bit integer.
pub(crate) fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
