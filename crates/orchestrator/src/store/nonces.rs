//! The `nonces` table: nonces of signed requests still inside the timestamp
//! window. SQLite (one process, nonces in memory): saved on a clean
//! shutdown and loaded (then cleared) on start. PostgreSQL (replicas):
//! recorded by every request, with the `rate_buckets`, by one statement
//! for all the requests that arrive together ([`Store::admit`], through
//! the batching `Admitter`); for a lease request the same statement reads
//! the signer's live lease ([`Store::admit_lease`]).
//!
//! That statement commits with `synchronous_commit` off: it does not wait
//! for the WAL flush, which would cost a disk sync per request. PostgreSQL
//! applies such commits in order and loses at most the last fraction of a
//! second of them if the server itself crashes; a request whose nonce was
//! lost that way could be replayed once, within its timestamp window, and
//! every mutating endpoint is idempotent, so the replay changes nothing
//! (the same reasoning as a SQLite orchestrator's nonces after a crash).

use std::collections::{HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use alloy_primitives::Address;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection, Executor};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::tasks::{RawTask, TaskRow, live_lease_query};
use super::{ACQUIRE_TIMEOUT, Store, to_db, to_u64};
use crate::error::{Error, Result};
use crate::util::{addr_text, parse_addr};

#[derive(sqlx::FromRow)]
struct NonceRow {
    address: String,
    nonce: String,
    expires_at: i64,
}

impl Store {
    /// Takes the saved nonces that expire after `now` and clears the table.
    pub async fn take_nonces(&self, now: u64) -> Result<Vec<(Address, String, u64)>> {
        let rows: Vec<NonceRow> =
            sqlx::query_as("SELECT address, nonce, expires_at FROM nonces WHERE expires_at > $1")
                .bind(to_db(now))
                .fetch_all(&self.read)
                .await?;
        let live = rows
            .into_iter()
            .map(|r| Ok((parse_addr(&r.address)?, r.nonce, to_u64(r.expires_at))))
            .collect::<Result<Vec<_>>>()?;
        sqlx::query("DELETE FROM nonces")
            .execute(&self.write)
            .await?;
        Ok(live)
    }

    /// Replaces the saved nonces with `live`, in one transaction.
    pub async fn save_nonces(&self, live: &[(Address, String, u64)]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM nonces").execute(tx.conn()).await?;
        for (address, nonce, expires) in live {
            sqlx::query(
                "INSERT INTO nonces (address, nonce, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT(address, nonce) DO NOTHING",
            )
            .bind(addr_text(*address))
            .bind(nonce)
            .bind(to_db(*expires))
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await
    }
}

/// What the shared check of a signed request found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Within the rate and the nonce is fresh: go on.
    Admitted,
    /// The address's bucket is empty.
    RateLimited,
    /// The nonce was used before, on this replica or another.
    Replayed,
}

/// A token bucket's limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Tokens added per second.
    pub rate: f64,
    /// Most tokens saved up.
    pub burst: f64,
}

impl Store {
    /// The rate limit and the nonce check of one signed request
    /// ([`Check`]), against state every replica shares (PostgreSQL only):
    /// take a token from the signer's bucket (refilled at `bucket.rate`
    /// since its last use, on the replica's millisecond clock `now_ms`),
    /// then, if one was left, record the nonce until `expires_at` unless it
    /// is recorded and still live at `now`. Requests that arrive together
    /// share one statement (the batching `Admitter`).
    pub async fn admit(&self, check: Check<'_>) -> Result<Admission> {
        Ok(self.admit_with(check, None).await?.0)
    }

    /// [`Store::admit`] for a lease request, which also reads, in the same
    /// statement, the live lease [`Store::live_lease`] would hand back to
    /// the signer: the hot path of `POST /v1/tasks` (a trainer asking
    /// again for the task it holds) then costs one round trip to the
    /// database instead of two. The lease is read whatever the admission
    /// says; the caller uses it only if the request was admitted.
    pub async fn admit_lease(
        &self,
        check: Check<'_>,
        probe: LeaseProbe,
    ) -> Result<(Admission, Option<TaskRow>)> {
        self.admit_with(check, Some(probe)).await
    }

    async fn admit_with(
        &self,
        check: Check<'_>,
        probe: Option<LeaseProbe>,
    ) -> Result<(Admission, Option<TaskRow>)> {
        let Some(admitter) = &self.admit else {
            return Err(Error::Config(
                "shared admission needs PostgreSQL; a SQLite orchestrator checks requests in memory"
                    .into(),
            ));
        };
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            address: addr_text(check.address),
            nonce: check.nonce.to_string(),
            expires_at: to_db(check.expires_at),
            now: to_db(check.now),
            now_ms: to_db(check.now_ms),
            bucket: check.bucket,
            probe: probe.map(|p| (to_db(p.job_id), p.except.map_or(-1, to_db))),
            reply,
        };
        admitter.send(pending).await?;
        let (admission, task) = answer.await.map_err(|_| sqlx::Error::PoolClosed)??;
        Ok((admission, task.map(RawTask::typed).transpose()?))
    }

    /// Deletes nonces that expired by `now` and buckets idle for an hour
    /// (full again at any sensible rate) from the shared tables.
    pub async fn forget_spent_nonces(&self, now: u64) -> Result<()> {
        sqlx::query("DELETE FROM nonces WHERE expires_at <= $1")
            .bind(to_db(now))
            .execute(&self.write)
            .await?;
        sqlx::query("DELETE FROM rate_buckets WHERE at_ms < $1")
            .bind(to_db(now.saturating_sub(3600) * 1000))
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

/// One signed request's shared check: who signed, its nonce and when the
/// nonce may be forgotten, the replica's clock, the signer's bucket.
#[derive(Clone, Copy, Debug)]
pub struct Check<'a> {
    /// The signer.
    pub address: Address,
    /// The request's nonce.
    pub nonce: &'a str,
    /// Unix second after which the nonce cannot be replayed anyway.
    pub expires_at: u64,
    /// The replica's clock, in seconds.
    pub now: u64,
    /// The replica's clock, in milliseconds (the bucket's refill).
    pub now_ms: u64,
    /// The bucket's limits.
    pub bucket: Bucket,
}

/// The live lease a lease request asks about ([`Store::admit_lease`]): the
/// signer's in `job_id`, other than the task `except`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseProbe {
    /// The job.
    pub job_id: u64,
    /// A task not to hand back (a `stale:S` trainer's `holding`).
    pub except: Option<u64>,
}

/// What a request's check answers: the admission and, for a lease request,
/// the live lease found.
type Answer = std::result::Result<(Admission, Option<RawTask>), sqlx::Error>;

/// A signed request waiting for the shared check.
struct Pending {
    address: String,
    nonce: String,
    expires_at: i64,
    now: i64,
    now_ms: i64,
    bucket: Bucket,
    /// A lease request's job and the task not to hand back (-1: none).
    probe: Option<(i64, i64)>,
    reply: oneshot::Sender<Answer>,
}

/// Most requests one statement checks.
const MAX_BATCH: usize = 64;

/// Statements in flight at once, each on a connection of its own.
const WORKERS: usize = 2;

/// The shared check of signed requests on PostgreSQL, many per statement
/// (group commit): while its workers' statements run, the requests that
/// arrive queue, and the next free worker checks all of them at once. A
/// request that finds a worker idle goes at once; under load, one round
/// trip and one commit serve many requests.
///
/// Each worker holds a connection of its own, outside the pools (no
/// per-statement pool checks), with `synchronous_commit` off ([`nonces`](self)
/// says why that is safe). A connection that fails is dropped and opened
/// again for the next batch.
#[derive(Debug)]
pub(super) struct Admitter {
    queue: std::sync::Mutex<Option<mpsc::Sender<Pending>>>,
    workers: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// What the workers take requests from.
struct Intake {
    queue: mpsc::Receiver<Pending>,
    /// Requests held over: a statement takes one request per address (its
    /// bucket row changes once per statement) and one bucket setting.
    held: VecDeque<Pending>,
}

impl Admitter {
    /// Starts the workers for the database at `url`.
    pub(super) fn start(url: &str) -> Result<Admitter> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("database URL: {e}")))?;
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        let intake = Arc::new(Mutex::new(Intake {
            queue: rx,
            held: VecDeque::new(),
        }));
        let workers = (0..WORKERS)
            .map(|_| tokio::spawn(work(options.clone(), intake.clone())))
            .collect();
        Ok(Admitter {
            queue: std::sync::Mutex::new(Some(queue)),
            workers: std::sync::Mutex::new(workers),
        })
    }

    async fn send(&self, pending: Pending) -> Result<()> {
        let queue = self
            .queue
            .lock()
            .map_err(|_| Error::Inconsistent("the admission queue's lock was poisoned".into()))?
            .clone()
            .ok_or(sqlx::Error::PoolClosed)?;
        queue
            .send(pending)
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        Ok(())
    }

    /// Stops taking requests, lets the workers answer what is queued and
    /// close their connections.
    pub(super) async fn close(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        let workers = self
            .workers
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        for worker in workers {
            let _ = worker.await;
        }
    }
}

impl Intake {
    /// The next batch: waits for a first request, then takes what else has
    /// queued, up to [`MAX_BATCH`], one per address. `None` once closed.
    async fn next_batch(&mut self) -> Option<Vec<Pending>> {
        if self.held.is_empty() {
            let first = self.queue.recv().await?;
            self.held.push_back(first);
        }
        while self.held.len() < MAX_BATCH {
            match self.queue.try_recv() {
                Ok(p) => self.held.push_back(p),
                Err(_) => break,
            }
        }
        let bucket = self.held.front()?.bucket;
        let mut batch = Vec::with_capacity(self.held.len());
        let mut later = VecDeque::new();
        let mut addresses = HashSet::new();
        while let Some(p) = self.held.pop_front() {
            if batch.len() < MAX_BATCH && p.bucket == bucket && addresses.insert(p.address.clone())
            {
                batch.push(p);
            } else {
                later.push_back(p);
            }
        }
        self.held = later;
        Some(batch)
    }
}

async fn work(options: PgConnectOptions, intake: Arc<Mutex<Intake>>) {
    let mut conn: Option<PgConnection> = None;
    loop {
        let Some(batch) = intake.lock().await.next_batch().await else {
            break;
        };
        if conn.is_none() {
            match connect(&options).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    answer_all(batch, &e);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if let Err(e) = check(c, batch).await {
            tracing::warn!(error = %e, "the shared admission statement failed; reconnecting");
            conn = None;
        }
    }
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}

async fn connect(options: &PgConnectOptions) -> std::result::Result<PgConnection, sqlx::Error> {
    let mut conn = tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    conn.execute("SET synchronous_commit = off").await?;
    // The admission statement's plan does not depend on its parameters
    // (arrays of requests); PostgreSQL would otherwise plan it again for
    // every batch, which costs more than running it.
    conn.execute("SET plan_cache_mode = force_generic_plan")
        .await?;
    Ok(conn)
}

/// Answers every request of a batch that could not be checked, with a copy
/// of `e` that keeps its kind: out of reach (answered 503) or not.
fn answer_all(batch: Vec<Pending>, e: &sqlx::Error) {
    let unreachable = crate::error::db_unreachable(e);
    let detail = e.to_string();
    for p in batch {
        let copy = if unreachable {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                detail.clone(),
            ))
        } else {
            sqlx::Error::Protocol(detail.clone())
        };
        let _ = p.reply.send(Err(copy));
    }
}

/// A row of the admission statement: the request's address, whether its
/// bucket had a token, whether its nonce was fresh, and a lease request's
/// live lease (every column null when there is none or it asked for none).
#[derive(sqlx::FromRow)]
struct Checked {
    address: String,
    token: bool,
    fresh: bool,
    task_id: Option<i64>,
    job_id: Option<i64>,
    round: Option<i64>,
    shard: Option<i64>,
    trainer: Option<String>,
    steps: Option<i64>,
    seed: Option<i64>,
    base_hash: Option<String>,
    expires_at: Option<i64>,
}

impl Checked {
    fn answer(self) -> (Admission, Option<RawTask>) {
        let admission = match (self.token, self.fresh) {
            (false, _) => Admission::RateLimited,
            (true, false) => Admission::Replayed,
            (true, true) => Admission::Admitted,
        };
        let task = (|| {
            Some(RawTask {
                task_id: self.task_id?,
                job_id: self.job_id?,
                round: self.round?,
                shard: self.shard?,
                trainer: self.trainer?,
                steps: self.steps?,
                seed: self.seed?,
                base_hash: self.base_hash?,
                expires_at: self.expires_at?,
            })
        })();
        (admission, task)
    }
}

/// The admission statement ([`check`]), made once.
static ADMISSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"WITH req AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $8::bigint[], $9::bigint[])
               AS t(address, nonce, expires_at, probe_job, probe_except)
           ), r AS (
             INSERT INTO rate_buckets AS b (address, tokens, at_ms)
             SELECT address, $4::float8 - 1, $6::bigint FROM req ORDER BY address COLLATE "C"
             ON CONFLICT (address) DO UPDATE SET
               tokens = LEAST($4::float8, b.tokens + GREATEST($6::bigint - b.at_ms, 0) * $5::float8 / 1000.0) - 1,
               at_ms = GREATEST(b.at_ms, $6::bigint)
             WHERE LEAST($4::float8, b.tokens + GREATEST($6::bigint - b.at_ms, 0) * $5::float8 / 1000.0) >= 1
             RETURNING b.address
           ), n AS (
             INSERT INTO nonces (address, nonce, expires_at)
             SELECT req.address, req.nonce, req.expires_at FROM req JOIN r ON r.address = req.address
             ORDER BY req.address COLLATE "C"
             ON CONFLICT (address, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at
             WHERE nonces.expires_at <= $7::bigint
             RETURNING nonces.address
           )
           SELECT req.address,
                  EXISTS (SELECT 1 FROM r WHERE r.address = req.address) AS token,
                  EXISTS (SELECT 1 FROM n WHERE n.address = req.address) AS fresh,
                  l.*
           FROM req LEFT JOIN LATERAL (
             {live} AND t.job_id = req.probe_job AND t.trainer = req.address
               AND t.expires_at > $7::bigint AND t.task_id != req.probe_except
             ORDER BY t.task_id DESC LIMIT 1
           ) l ON req.probe_job IS NOT NULL"#,
        live = live_lease_query()
    )
});

/// One statement for `batch` (distinct addresses, one bucket setting): per
/// request, take a token from its address's bucket, then record its nonce
/// if a token was left, and read a lease request's live lease (the query of
/// [`Store::live_lease`], for the signer); answers every request. The
/// error, if the statement failed (every request was answered with it).
async fn check(
    conn: &mut PgConnection,
    mut batch: Vec<Pending>,
) -> std::result::Result<(), sqlx::Error> {
    // Rows are locked in address order in every statement, so two
    // statements never wait for each other in a cycle.
    batch.sort_by(|a, b| a.address.cmp(&b.address));
    let Some(bucket) = batch.first().map(|p| p.bucket) else {
        return Ok(());
    };
    let now = batch.iter().map(|p| p.now).max().unwrap_or(0);
    let now_ms = batch.iter().map(|p| p.now_ms).max().unwrap_or(0);
    let rows: std::result::Result<Vec<Checked>, sqlx::Error> = sqlx::query_as(ADMISSION.as_str())
        .bind(batch.iter().map(|p| p.address.as_str()).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.nonce.as_str()).collect::<Vec<_>>())
        .bind(batch.iter().map(|p| p.expires_at).collect::<Vec<_>>())
        .bind(bucket.burst)
        .bind(bucket.rate)
        .bind(now_ms)
        .bind(now)
        .bind(
            batch
                .iter()
                .map(|p| p.probe.map(|(job, _)| job))
                .collect::<Vec<_>>(),
        )
        .bind(
            batch
                .iter()
                .map(|p| p.probe.map_or(-1, |(_, except)| except))
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *conn)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            answer_all(batch, &e);
            return Err(e);
        }
    };
    let mut found: HashMap<String, Checked> =
        rows.into_iter().map(|c| (c.address.clone(), c)).collect();
    for p in batch {
        let answer = match found.remove(&p.address) {
            Some(checked) => Ok(checked.answer()),
            None => Err(sqlx::Error::Protocol(format!(
                "the admission statement returned no row for {}",
                p.address
            ))),
        };
        let _ = p.reply.send(answer);
    }
    Ok(())
}
