//! The `tasks` table: task leases.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use alloy_primitives::{Address, B256};
use funetun_core::api::FailureInfo;

use super::jobs::JobStatus;
use super::rounds::RoundStatus;
use super::{Store, StoreTx, to_db, to_u64};
use crate::error::Result;
use crate::scheduler::Lease;
use crate::util::{addr_text, hash_text, parse_addr, parse_hash, u64_from_db, u64_to_db};

/// A leased task.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRow {
    /// Its id.
    pub task_id: u64,
    /// The job.
    pub job_id: u64,
    /// The round.
    pub round: u64,
    /// The shard trained.
    pub shard: u32,
    /// Who holds it.
    pub trainer: Address,
    /// Steps to train.
    pub steps: u32,
    /// The task's seed.
    pub seed: u64,
    /// The checkpoint trained from.
    pub base_hash: B256,
    /// Unix second the lease lapses.
    pub expires_at: u64,
}

/// A `tasks` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct RawTask {
    pub(super) task_id: i64,
    pub(super) job_id: i64,
    pub(super) round: i64,
    pub(super) shard: i64,
    pub(super) trainer: String,
    pub(super) steps: i64,
    pub(super) seed: i64,
    pub(super) base_hash: String,
    pub(super) expires_at: i64,
}

impl RawTask {
    pub(super) fn typed(self) -> Result<TaskRow> {
        Ok(TaskRow {
            task_id: to_u64(self.task_id),
            job_id: to_u64(self.job_id),
            round: to_u64(self.round),
            shard: u32::try_from(self.shard).unwrap_or(0),
            trainer: parse_addr(&self.trainer)?,
            steps: u32::try_from(self.steps).unwrap_or(0),
            seed: u64_from_db(self.seed),
            base_hash: parse_hash(&self.base_hash)?,
            expires_at: to_u64(self.expires_at),
        })
    }
}

const TASK_COLUMNS: &str =
    "t.task_id, t.job_id, t.round, t.shard, t.trainer, t.steps, t.seed, t.base_hash, t.expires_at";

/// The live-lease query without the job, the trainer, the clock and the
/// task excepted: `SELECT` the columns of a task of its job's current
/// round, the round open, the job active, neither submitted nor with an
/// update stored. Shared by [`Store::live_lease`] and the admission
/// statement, which reads a lease in the same round trip.
pub(super) fn live_lease_query() -> String {
    format!(
        "SELECT {TASK_COLUMNS} FROM tasks t WHERE t.submitted = 0
           AND t.round = (SELECT j.round FROM jobs j WHERE j.job_id = t.job_id AND j.status = '{active}')
           AND EXISTS (SELECT 1 FROM rounds r WHERE r.job_id = t.job_id AND r.round = t.round AND r.status = '{open}')
           AND NOT EXISTS (SELECT 1 FROM updates u WHERE u.job_id = t.job_id AND u.round = t.round AND u.trainer = t.trainer)",
        active = JobStatus::Active.as_str(),
        open = RoundStatus::Open.as_str(),
    )
}

/// A lease to store.
#[derive(Debug)]
pub struct NewLease<'a> {
    /// The job.
    pub job_id: u64,
    /// The round.
    pub round: u64,
    /// The shard.
    pub shard: u32,
    /// The trainer.
    pub trainer: Address,
    /// The trainer's capacity word.
    pub capacity: &'a str,
    /// The trainer's platform class, if it said.
    pub platform: Option<&'a str>,
    /// Steps.
    pub steps: u32,
    /// Seed.
    pub seed: u64,
    /// The checkpoint trained from.
    pub base_hash: B256,
    /// Unix second it was issued.
    pub issued_at: u64,
    /// Unix second it lapses.
    pub expires_at: u64,
}

#[derive(sqlx::FromRow)]
struct RawLease {
    task_id: i64,
    trainer: String,
    shard: i64,
    expires_at: i64,
    submitted: i64,
}

impl Store {
    /// The task `task_id`.
    pub async fn task(&self, task_id: u64) -> Result<Option<TaskRow>> {
        let raw: Option<RawTask> = sqlx::query_as(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks t WHERE t.task_id = $1"
        ))
        .bind(to_db(task_id))
        .fetch_optional(&self.read)
        .await?;
        raw.map(RawTask::typed).transpose()
    }

    /// The newest task of `trainer` on `shard` of job `job_id` issued for a
    /// round in `rounds`: the lease a submission on that shard answers.
    pub async fn task_on_shard(
        &self,
        job_id: u64,
        trainer: Address,
        shard: u32,
        rounds: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT task_id FROM tasks WHERE job_id = $1 AND trainer = $2 AND shard = $3
               AND round >= $4 AND round <= $5 ORDER BY task_id DESC LIMIT 1",
        )
        .bind(to_db(job_id))
        .bind(addr_text(trainer))
        .bind(i64::from(shard))
        .bind(to_db(*rounds.start()))
        .bind(to_db(*rounds.end()))
        .fetch_optional(&self.read)
        .await?;
        Ok(id.map(to_u64))
    }

    /// The trainer's live, unreported lease of the job's open round, if any,
    /// other than `except` (a finished task the trainer is still submitting).
    pub async fn live_lease(
        &self,
        job_id: u64,
        trainer: Address,
        except: Option<u64>,
        now: u64,
    ) -> Result<Option<TaskRow>> {
        static LIVE_LEASE: LazyLock<String> = LazyLock::new(|| {
            format!(
                "{} AND t.job_id = $1 AND t.trainer = $2 AND t.expires_at > $3 AND t.task_id != $4
                 ORDER BY t.task_id DESC LIMIT 1",
                live_lease_query()
            )
        });
        let raw: Option<RawTask> = sqlx::query_as(LIVE_LEASE.as_str())
            .bind(to_db(job_id))
            .bind(addr_text(trainer))
            .bind(to_db(now))
            .bind(except.map_or(-1, to_db))
            .fetch_optional(&self.read)
            .await?;
        raw.map(RawTask::typed).transpose()
    }

    /// The leases of a round, as the scheduler sees them.
    pub async fn leases(&self, job_id: u64, round: u64) -> Result<Vec<Lease>> {
        let rows: Vec<RawLease> = sqlx::query_as(
            "SELECT task_id, trainer, shard, expires_at, submitted FROM tasks WHERE job_id = $1 AND round = $2",
        )
        .bind(to_db(job_id))
        .bind(to_db(round))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Lease {
                    task_id: to_u64(r.task_id),
                    trainer: parse_addr(&r.trainer)?,
                    shard: u32::try_from(r.shard).unwrap_or(0),
                    expires_at: to_u64(r.expires_at),
                    submitted: r.submitted != 0,
                })
            })
            .collect()
    }

    /// The job's failure reports, one entry per (trainer, reason), most
    /// recent first, at most `limit`.
    pub async fn failures(&self, job_id: u64, limit: u32) -> Result<Vec<FailureInfo>> {
        let rows: Vec<(String, String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT trainer, reason, COUNT(*), MAX(task_id), MIN(at), MAX(at) FROM task_failures
             WHERE job_id = $1 GROUP BY trainer, reason ORDER BY MAX(at) DESC, MAX(task_id) DESC
             LIMIT $2",
        )
        .bind(to_db(job_id))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(trainer, reason, count, task, first, last)| {
                Ok(FailureInfo {
                    trainer: parse_addr(&trainer)?,
                    reason,
                    count: to_u64(count),
                    last_task_id: to_u64(task),
                    first_at: to_u64(first),
                    last_at: to_u64(last),
                })
            })
            .collect()
    }

    /// Trainers that leased in the job from round `from` on and are still
    /// there: they hold a lease live at `now`, or made a request at or after
    /// `seen_since` (`participants.last_seen`). A trainer that stopped
    /// asking drops out once its lease lapses.
    pub async fn live_trainers_since(
        &self,
        job_id: u64,
        from: u64,
        now: u64,
        seen_since: u64,
    ) -> Result<BTreeSet<Address>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT t.trainer FROM tasks t
             LEFT JOIN participants p ON p.address = t.trainer
             WHERE t.job_id = $1 AND t.round >= $2
               AND (t.expires_at > $3 OR COALESCE(p.last_seen, 0) >= $4)",
        )
        .bind(to_db(job_id))
        .bind(to_db(from))
        .bind(to_db(now))
        .bind(to_db(seen_since))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|t| parse_addr(t)).collect()
    }
}

impl StoreTx {
    /// Stores a lease; returns its task id.
    pub async fn insert_lease(&mut self, lease: &NewLease<'_>) -> Result<u64> {
        let task_id: i64 = sqlx::query_scalar(
            "INSERT INTO tasks (job_id, round, shard, trainer, capacity, platform, steps, seed, base_hash,
             issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING task_id",
        )
        .bind(to_db(lease.job_id))
        .bind(to_db(lease.round))
        .bind(i64::from(lease.shard))
        .bind(addr_text(lease.trainer))
        .bind(lease.capacity)
        .bind(lease.platform)
        .bind(i64::from(lease.steps))
        .bind(u64_to_db(lease.seed))
        .bind(hash_text(lease.base_hash))
        .bind(to_db(lease.issued_at))
        .bind(to_db(lease.expires_at))
        .fetch_one(self.conn())
        .await?;
        Ok(to_u64(task_id))
    }

    /// Records that `task` failed, and why; releases its lease when it is
    /// still live and unreported. `None` when the task's failure was
    /// recorded before; otherwise whether the lease was released.
    pub async fn record_failure(
        &mut self,
        task: &TaskRow,
        reason: &str,
        now: u64,
    ) -> Result<Option<bool>> {
        let inserted = sqlx::query(
            "INSERT INTO task_failures (job_id, task_id, trainer, reason, at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT(task_id) DO NOTHING",
        )
        .bind(to_db(task.job_id))
        .bind(to_db(task.task_id))
        .bind(addr_text(task.trainer))
        .bind(reason)
        .bind(to_db(now))
        .execute(self.conn())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(None);
        }
        let released = sqlx::query(
            "UPDATE tasks SET expires_at = $1 WHERE task_id = $2 AND submitted = 0 AND expires_at > $3",
        )
        .bind(to_db(now))
        .bind(to_db(task.task_id))
        .bind(to_db(now))
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(Some(released == 1))
    }

    /// Marks a task as reported.
    pub async fn mark_submitted(&mut self, task_id: u64) -> Result<()> {
        sqlx::query("UPDATE tasks SET submitted = 1 WHERE task_id = $1")
            .bind(to_db(task_id))
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
