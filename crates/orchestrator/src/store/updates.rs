//! The update tables: `updates` (reported by trainers), `chain_updates`
//! (as the chain tells them), `chain_votes` (votes seen on-chain),
//! `assignments` (validation leases) and `validations` (votes reported by
//! validators, with what they measured).

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::{Address, B256, U256};
use funetun_core::api::{CheckReason, UpdateInfo, VoteInfo};

use super::jobs::JobStatus;
use super::{Store, StoreTx, to_db, to_u64};
use crate::error::Result;
use crate::guard::ReferenceNorms;
use crate::reputation::Decay;
use crate::scheduler::Update;
pub use crate::scheduler::UpdateStatus;
use crate::util::{
    addr_text, hash_text, index_text, parse_addr, parse_hash, parse_index, parse_wei,
};

/// A reported update to store.
#[derive(Debug)]
pub struct NewUpdate<'a> {
    /// The job.
    pub job_id: u64,
    /// On-chain index.
    pub index: U256,
    /// The round.
    pub round: u64,
    /// The trainer.
    pub trainer: Address,
    /// The task it answers.
    pub task_id: u64,
    /// Its shard.
    pub shard: u32,
    /// Steps trained.
    pub steps: u32,
    /// The delta's hash.
    pub update_hash: B256,
    /// The `submitUpdate` transaction.
    pub submit_tx: B256,
    /// Its block.
    pub submit_block: u64,
    /// End of the challenge window (chain time).
    pub deadline: u64,
    /// Why it goes to validators (`None`: it does not).
    pub reason: CheckReason,
    /// Reported loss before training.
    pub loss_before: f64,
    /// Reported loss after training.
    pub loss_after: f64,
    /// The trainer's platform class.
    pub platform: Option<&'a str>,
    /// Unix second of the report.
    pub submitted_at: u64,
    /// An earlier update with the same delta hash.
    pub duplicate_of: Option<U256>,
    /// L2 norm of the delta.
    pub norm: Option<f64>,
    /// Probe loss gain of the delta.
    pub probe_gain: Option<f64>,
}

/// An update committed on-chain but never reported, with the trainer's
/// latest task of that round.
#[derive(Debug)]
pub struct Unreported {
    /// The job.
    pub job_id: u64,
    /// On-chain index.
    pub index: U256,
    /// The round.
    pub round: u64,
    /// The trainer.
    pub trainer: Address,
    /// The committed hash.
    pub update_hash: B256,
    /// The `submitUpdate` transaction.
    pub submit_tx: B256,
    /// Its block.
    pub submit_block: u64,
}

#[derive(sqlx::FromRow)]
struct RawUnreported {
    job_id: i64,
    update_index: String,
    round: i64,
    trainer: String,
    update_hash: String,
    submit_tx: String,
    submit_block: i64,
}

#[derive(sqlx::FromRow)]
struct RawRoundUpdate {
    update_index: String,
    trainer: String,
    shard: i64,
    update_hash: String,
    replay: i64,
    deadline: i64,
    status: String,
    voted: i64,
    base_round: i64,
}

/// An update waiting for validators, with its votes and assignments.
#[derive(Debug, Clone)]
pub struct Checkable {
    /// The job.
    pub job_id: u64,
    /// On-chain index.
    pub index: U256,
    /// The trainer.
    pub trainer: Address,
    /// The trainer's platform class.
    pub platform: Option<String>,
    /// The task it answers.
    pub task_id: u64,
    /// The delta's hash.
    pub update_hash: B256,
    /// Reported loss before training.
    pub loss_before: f64,
    /// Reported loss after training.
    pub loss_after: f64,
    /// Why it is checked.
    pub reason: CheckReason,
    /// An earlier update with the same delta hash.
    pub duplicate_of: Option<U256>,
    /// Votes (on-chain or reported), one per validator and side.
    pub votes: Vec<(Address, bool)>,
    /// Assignments handed out: (validator, expires_at, done).
    pub assigned: Vec<Assigned>,
}

#[derive(sqlx::FromRow)]
struct RawCheckable {
    job_id: i64,
    update_index: String,
    trainer: String,
    platform: Option<String>,
    task_id: i64,
    update_hash: String,
    loss_before: f64,
    loss_after: f64,
    reason: String,
    duplicate_of: Option<String>,
}

#[derive(sqlx::FromRow)]
struct RawVoteKey {
    job_id: i64,
    update_index: String,
    validator: String,
    valid: i64,
}

#[derive(sqlx::FromRow)]
struct RawAssignment {
    job_id: i64,
    update_index: String,
    validator: String,
    expires_at: i64,
    done: i64,
}

#[derive(sqlx::FromRow)]
struct RawUpdateInfo {
    round: i64,
    update_index: String,
    trainer: String,
    task_id: i64,
    shard: i64,
    update_hash: String,
    submit_tx: String,
    status: String,
    replay: i64,
    loss_before: f64,
    loss_after: f64,
    paid_wei: String,
    slashed_wei: String,
    submitted_at: i64,
    reason: String,
    steps: i64,
    base_round: i64,
    merged_round: Option<i64>,
    task_seconds: i64,
}

#[derive(sqlx::FromRow)]
struct RawVote {
    update_index: String,
    validator: String,
    valid: i64,
    tx_hash: String,
    detail: String,
}

/// A validator's reported vote to store.
#[derive(Debug)]
pub struct NewValidation<'a> {
    /// The job.
    pub job_id: u64,
    /// On-chain index.
    pub index: U256,
    /// The validator.
    pub validator: Address,
    /// Its verdict.
    pub valid: bool,
    /// The vote's transaction.
    pub tx_hash: B256,
    /// What it measured.
    pub detail: &'a str,
    /// Unix second of the report.
    pub reported_at: u64,
}

/// An assignment: (validator, expires_at, done).
pub type Assigned = (Address, u64, bool);

/// The statuses an update still waiting for validators may have.
const UNDECIDED: [UpdateStatus; 2] = [UpdateStatus::Pending, UpdateStatus::Challenged];

impl Store {
    /// The chain's status of an update (`Pending` when the chain has not told yet).
    pub async fn update_status(&self, job_id: u64, index: U256) -> Result<UpdateStatus> {
        let s: Option<String> = sqlx::query_scalar(
            "SELECT status FROM chain_updates WHERE job_id = $1 AND update_index = $2",
        )
        .bind(to_db(job_id))
        .bind(index_text(index))
        .fetch_optional(&self.read)
        .await?;
        Ok(s.as_deref()
            .map(UpdateStatus::parse)
            .unwrap_or(UpdateStatus::Pending))
    }

    /// The delta hash reported for an update, if one was.
    pub async fn reported_hash(&self, job_id: u64, index: U256) -> Result<Option<B256>> {
        let h: Option<String> = sqlx::query_scalar(
            "SELECT update_hash FROM updates WHERE job_id = $1 AND update_index = $2",
        )
        .bind(to_db(job_id))
        .bind(index_text(index))
        .fetch_optional(&self.read)
        .await?;
        h.as_deref().map(parse_hash).transpose()
    }

    /// What the trainer's report of an update said, if one was stored
    /// (adopted unreported updates have no report: `None` then too).
    pub async fn reported(&self, job_id: u64, index: U256) -> Result<Option<StoredReport>> {
        let row: Option<(String, String, f64, f64)> = sqlx::query_as(
            "SELECT update_hash, submit_tx, loss_before, loss_after FROM updates
             WHERE job_id = $1 AND update_index = $2 AND reason <> 'unreported'",
        )
        .bind(to_db(job_id))
        .bind(index_text(index))
        .fetch_optional(&self.read)
        .await?;
        row.map(|(hash, tx, loss_before, loss_after)| {
            Ok(StoredReport {
                update_hash: parse_hash(&hash)?,
                tx_hash: parse_hash(&tx)?,
                loss_before: loss_before as f32,
                loss_after: loss_after as f32,
            })
        })
        .transpose()
    }

    /// Steps of a reported update, if one was.
    pub async fn reported_steps(&self, job_id: u64, index: U256) -> Result<Option<u64>> {
        let steps: Option<i64> =
            sqlx::query_scalar("SELECT steps FROM updates WHERE job_id = $1 AND update_index = $2")
                .bind(to_db(job_id))
                .bind(index_text(index))
                .fetch_optional(&self.read)
                .await?;
        Ok(steps.map(to_u64))
    }

    /// The earliest update of the job with delta `hash` outside (round, shard).
    pub async fn same_hash_elsewhere(
        &self,
        job_id: u64,
        hash: B256,
        round: u64,
        shard: u32,
    ) -> Result<Option<U256>> {
        let idx: Option<String> = sqlx::query_scalar(
            "SELECT update_index FROM updates WHERE job_id = $1 AND update_hash = $2
               AND NOT (round = $3 AND shard = $4) ORDER BY submitted_at LIMIT 1",
        )
        .bind(to_db(job_id))
        .bind(hash_text(hash))
        .bind(to_db(round))
        .bind(i64::from(shard))
        .fetch_optional(&self.read)
        .await?;
        idx.as_deref().map(parse_index).transpose()
    }

    /// Norms of the job's updates of `round` and the one before that the
    /// guards compare against: measured, not flagged by a guard, not rejected.
    pub async fn reference_norms(&self, job_id: u64, round: u64) -> Result<ReferenceNorms> {
        let reasons = [
            CheckReason::None,
            CheckReason::Drawn,
            CheckReason::Probation,
            CheckReason::Challenged,
        ];
        let rows: Vec<(i64, f64)> = sqlx::query_as(
            "SELECT u.round, u.norm FROM updates u
             LEFT JOIN chain_updates c ON c.job_id = u.job_id AND c.update_index = u.update_index
             WHERE u.job_id = $1 AND u.round + 1 >= $2 AND u.round <= $3 AND u.norm IS NOT NULL
               AND u.reason IN ($4, $5, $6, $7)
               AND COALESCE(c.status, $8) != $9",
        )
        .bind(to_db(job_id))
        .bind(to_db(round))
        .bind(to_db(round))
        .bind(reasons[0].as_str())
        .bind(reasons[1].as_str())
        .bind(reasons[2].as_str())
        .bind(reasons[3].as_str())
        .bind(UpdateStatus::Pending.as_str())
        .bind(UpdateStatus::Rejected.as_str())
        .fetch_all(&self.read)
        .await?;
        let mut norms = ReferenceNorms::default();
        for (r, norm) in rows {
            if r == to_db(round) {
                norms.same_round.push(norm);
            } else {
                norms.previous_round.push(norm);
            }
        }
        Ok(norms)
    }

    /// The reported updates of a round, as the scheduler sees them.
    pub async fn round_updates(&self, job_id: u64, round: u64) -> Result<Vec<Update>> {
        self.updates_where(job_id, round, "u.round = $3").await
    }

    /// Accepted updates submitted before `round` that no round aggregated
    /// (decided after their round closed): a `stale:S` job's next round
    /// takes them.
    pub async fn carried_updates(&self, job_id: u64, round: u64) -> Result<Vec<Update>> {
        self.updates_where(
            job_id,
            round,
            "u.round < $3 AND c.status = 'accepted' AND NOT EXISTS
             (SELECT 1 FROM round_inputs i WHERE i.job_id = u.job_id AND i.update_index = u.update_index)",
        )
        .await
    }

    async fn updates_where(&self, job_id: u64, round: u64, filter: &str) -> Result<Vec<Update>> {
        let sql = format!(
            "SELECT u.update_index, u.trainer, u.shard, u.update_hash, u.replay, u.deadline,
                    COALESCE(c.status, $1) AS status,
                    CASE WHEN EXISTS (SELECT 1 FROM chain_votes v WHERE v.job_id = u.job_id AND v.update_index = u.update_index) THEN 1 ELSE 0 END AS voted,
                    COALESCE((SELECT t.round FROM tasks t WHERE t.task_id = u.task_id), u.round) AS base_round
             FROM updates u LEFT JOIN chain_updates c ON c.job_id = u.job_id AND c.update_index = u.update_index
             WHERE u.job_id = $2 AND {filter}"
        );
        let rows: Vec<RawRoundUpdate> = sqlx::query_as(&sql)
            .bind(UpdateStatus::Pending.as_str())
            .bind(to_db(job_id))
            .bind(to_db(round))
            .fetch_all(&self.read)
            .await?;
        rows.into_iter()
            .map(|r| {
                let status = UpdateStatus::parse(&r.status);
                Ok(Update {
                    index: parse_index(&r.update_index)?,
                    trainer: parse_addr(&r.trainer)?,
                    shard: u32::try_from(r.shard).unwrap_or(0),
                    hash: parse_hash(&r.update_hash)?,
                    status,
                    replay: r.replay != 0 || status == UpdateStatus::Challenged,
                    deadline: to_u64(r.deadline),
                    voted: r.voted != 0,
                    base_round: to_u64(r.base_round),
                })
            })
            .collect()
    }

    /// Up to 64 updates of job `job_id` whose delta may be deleted: rejected
    /// or void, their round closed, the bytes not pruned yet, and no other
    /// update of the same hash still needing them (one that is accepted or
    /// undecided).
    pub async fn prunable_deltas(&self, job_id: u64) -> Result<Vec<(U256, B256)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT u.update_index, u.update_hash FROM updates u
             JOIN chain_updates c ON c.job_id = u.job_id AND c.update_index = u.update_index
             JOIN rounds r ON r.job_id = u.job_id AND r.round = u.round
             WHERE u.job_id = $1 AND u.blob_pruned = 0 AND c.status IN ($2, $3) AND r.status = $4
               AND NOT EXISTS (
                 SELECT 1 FROM updates o
                 LEFT JOIN chain_updates oc ON oc.job_id = o.job_id AND oc.update_index = o.update_index
                 WHERE o.update_hash = u.update_hash AND COALESCE(oc.status, $5) NOT IN ($6, $7))
             LIMIT 64",
        )
        .bind(to_db(job_id))
        .bind(UpdateStatus::Rejected.as_str())
        .bind(UpdateStatus::Void.as_str())
        .bind(funetun_core::protocol::RoundStatus::Closed.as_str())
        .bind(UpdateStatus::Pending.as_str())
        .bind(UpdateStatus::Rejected.as_str())
        .bind(UpdateStatus::Void.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(i, h)| Ok((parse_index(&i)?, parse_hash(&h)?)))
            .collect()
    }

    /// Up to 32 undecided submissions of active jobs seen on-chain at least
    /// `grace` seconds before `now` and never reported.
    pub async fn unreported(&self, grace: u64, now: u64) -> Result<Vec<Unreported>> {
        let rows: Vec<RawUnreported> = sqlx::query_as(
            "SELECT c.job_id, c.update_index, c.round, c.trainer, c.update_hash, c.submit_tx, c.submit_block
             FROM chain_updates c JOIN jobs j ON j.job_id = c.job_id
             WHERE j.status = $1 AND c.status IN ($2, $3)
               AND c.seen_at > 0 AND c.seen_at + $4 <= $5
               AND NOT EXISTS (SELECT 1 FROM updates u WHERE u.job_id = c.job_id AND u.update_index = c.update_index)
             LIMIT 32",
        )
        .bind(JobStatus::Active.as_str())
        .bind(UNDECIDED[0].as_str())
        .bind(UNDECIDED[1].as_str())
        .bind(to_db(grace))
        .bind(to_db(now))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Unreported {
                    job_id: to_u64(r.job_id),
                    index: parse_index(&r.update_index)?,
                    round: to_u64(r.round),
                    trainer: parse_addr(&r.trainer)?,
                    update_hash: parse_hash(&r.update_hash)?,
                    submit_tx: parse_hash(&r.submit_tx)?,
                    submit_block: to_u64(r.submit_block),
                })
            })
            .collect()
    }

    /// Up to 32 unchecked, unvoted, pending updates outside the open round
    /// (or of ended jobs) whose window passed at `now`.
    pub async fn stragglers(&self, now: u64) -> Result<Vec<(u64, U256)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT u.job_id, u.update_index FROM updates u
             JOIN jobs j ON j.job_id = u.job_id
             LEFT JOIN chain_updates c ON c.job_id = u.job_id AND c.update_index = u.update_index
             WHERE u.replay = 0 AND COALESCE(c.status, $1) = $2 AND u.deadline <= $3
               AND (j.status != $4 OR u.round < j.round)
               AND NOT EXISTS (SELECT 1 FROM chain_votes v WHERE v.job_id = u.job_id AND v.update_index = u.update_index)
             ORDER BY u.submitted_at LIMIT 32",
        )
        .bind(UpdateStatus::Pending.as_str())
        .bind(UpdateStatus::Pending.as_str())
        .bind(to_db(now))
        .bind(JobStatus::Active.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(job, idx)| Ok((to_u64(job), parse_index(&idx)?)))
            .collect()
    }

    /// Up to 256 undecided updates drawn for checking that `validator` did
    /// not train (of `job` when given), oldest report first, each with its
    /// votes and assignments: three queries, whatever the count.
    pub async fn checkable(&self, validator: Address, job: Option<u64>) -> Result<Vec<Checkable>> {
        let rows: Vec<RawCheckable> = sqlx::query_as(
            "SELECT u.job_id, u.update_index, u.trainer, u.platform, u.task_id, u.update_hash,
                    u.loss_before, u.loss_after, u.reason, u.duplicate_of
             FROM updates u LEFT JOIN chain_updates c ON c.job_id = u.job_id AND c.update_index = u.update_index
             WHERE u.replay = 1 AND COALESCE(c.status, $1) IN ($2, $3)
               AND u.trainer != $4 AND ($5 IS NULL OR u.job_id = $6)
             ORDER BY u.submitted_at, u.job_id, u.update_index LIMIT 256",
        )
        .bind(UpdateStatus::Pending.as_str())
        .bind(UNDECIDED[0].as_str())
        .bind(UNDECIDED[1].as_str())
        .bind(addr_text(validator))
        .bind(job.map(to_db))
        .bind(job.map(to_db))
        .fetch_all(&self.read)
        .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(i64, &str)> = rows
            .iter()
            .map(|r| (r.job_id, r.update_index.as_str()))
            .collect();
        let votes: Vec<RawVoteKey> = select_for_keys(
            &self.read,
            "SELECT job_id, update_index, validator, valid FROM chain_votes WHERE (job_id, update_index) IN (VALUES ",
            " UNION SELECT job_id, update_index, validator, valid FROM validations WHERE (job_id, update_index) IN (VALUES ",
            &keys,
        )
        .await?;
        let assigned: Vec<RawAssignment> = select_for_keys(
            &self.read,
            "SELECT job_id, update_index, validator, expires_at, done FROM assignments WHERE (job_id, update_index) IN (VALUES ",
            "",
            &keys,
        )
        .await?;
        let mut votes_of: BTreeMap<(i64, String), Vec<(Address, bool)>> = BTreeMap::new();
        for v in votes {
            votes_of
                .entry((v.job_id, v.update_index))
                .or_default()
                .push((parse_addr(&v.validator)?, v.valid != 0));
        }
        let mut assigned_of: BTreeMap<(i64, String), Vec<Assigned>> = BTreeMap::new();
        for a in assigned {
            assigned_of
                .entry((a.job_id, a.update_index))
                .or_default()
                .push((parse_addr(&a.validator)?, to_u64(a.expires_at), a.done != 0));
        }
        rows.into_iter()
            .map(|r| {
                let key = (r.job_id, r.update_index.clone());
                Ok(Checkable {
                    job_id: to_u64(r.job_id),
                    index: parse_index(&r.update_index)?,
                    trainer: parse_addr(&r.trainer)?,
                    platform: r.platform,
                    task_id: to_u64(r.task_id),
                    update_hash: parse_hash(&r.update_hash)?,
                    loss_before: r.loss_before,
                    loss_after: r.loss_after,
                    reason: CheckReason::parse(&r.reason),
                    duplicate_of: r.duplicate_of.as_deref().map(parse_index).transpose()?,
                    votes: votes_of.remove(&key).unwrap_or_default(),
                    assigned: assigned_of.remove(&key).unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Hands `validator` the update until `expires_at` (renewing its assignment).
    pub async fn assign(
        &self,
        job_id: u64,
        index: U256,
        validator: Address,
        now: u64,
        expires_at: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO assignments (job_id, update_index, validator, issued_at, expires_at, done)
             VALUES ($1, $2, $3, $4, $5, 0)
             ON CONFLICT(job_id, update_index, validator) DO UPDATE SET issued_at = excluded.issued_at,
             expires_at = excluded.expires_at",
        )
        .bind(to_db(job_id))
        .bind(index_text(index))
        .bind(addr_text(validator))
        .bind(to_db(now))
        .bind(to_db(expires_at))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The reported updates of a job with their votes, as the API shows
    /// them (by round, shard, index): two queries, whatever the count.
    pub async fn update_infos(&self, job_id: u64) -> Result<Vec<UpdateInfo>> {
        let rows: Vec<RawUpdateInfo> = sqlx::query_as(
            "SELECT u.round, u.update_index, u.trainer, u.task_id, u.shard, u.update_hash, u.submit_tx,
                    COALESCE(c.status, $1) AS status, u.replay, u.loss_before, u.loss_after,
                    COALESCE(c.paid_wei, '0') AS paid_wei, COALESCE(c.slashed_wei, '0') AS slashed_wei,
                    u.submitted_at, u.reason, u.steps,
                    COALESCE(t.round, u.round) AS base_round,
                    (SELECT MIN(i.round) FROM round_inputs i
                      WHERE i.job_id = u.job_id AND i.update_index = u.update_index) AS merged_round,
                    CASE WHEN t.issued_at IS NULL OR u.submitted_at < t.issued_at THEN 0
                         ELSE u.submitted_at - t.issued_at END AS task_seconds
             FROM updates u LEFT JOIN chain_updates c ON c.job_id = u.job_id AND c.update_index = u.update_index
             LEFT JOIN tasks t ON t.task_id = u.task_id
             WHERE u.job_id = $2 ORDER BY u.round, u.shard, u.update_index",
        )
        .bind(UpdateStatus::Pending.as_str())
        .bind(to_db(job_id))
        .fetch_all(&self.read)
        .await?;
        let votes: Vec<RawVote> = sqlx::query_as(
            "SELECT update_index, validator, valid, tx_hash, detail FROM validations WHERE job_id = $1
             UNION ALL
             SELECT v.update_index, v.validator, v.valid, v.tx_hash, '' FROM chain_votes v WHERE v.job_id = $2
               AND NOT EXISTS (SELECT 1 FROM validations w WHERE w.job_id = v.job_id
                               AND w.update_index = v.update_index AND w.validator = v.validator)
             ORDER BY 1, 2",
        )
        .bind(to_db(job_id))
        .bind(to_db(job_id))
        .fetch_all(&self.read)
        .await?;
        let mut votes_of: BTreeMap<String, Vec<VoteInfo>> = BTreeMap::new();
        for v in votes {
            votes_of.entry(v.update_index).or_default().push(VoteInfo {
                validator: parse_addr(&v.validator)?,
                valid: v.valid != 0,
                tx_hash: parse_hash(&v.tx_hash)?,
                detail: v.detail,
            });
        }
        rows.into_iter()
            .map(|r| {
                Ok(UpdateInfo {
                    job_id,
                    round: to_u64(r.round),
                    update_index: parse_index(&r.update_index)?,
                    trainer: parse_addr(&r.trainer)?,
                    task_id: to_u64(r.task_id),
                    shard: u32::try_from(r.shard).unwrap_or(0),
                    steps: u32::try_from(r.steps).unwrap_or(0),
                    update_hash: parse_hash(&r.update_hash)?,
                    submit_tx: parse_hash(&r.submit_tx)?,
                    status: UpdateStatus::parse(&r.status).api(),
                    replay: r.replay != 0,
                    reason: CheckReason::parse(&r.reason),
                    votes: votes_of.remove(&r.update_index).unwrap_or_default(),
                    loss_before: r.loss_before as f32,
                    loss_after: r.loss_after as f32,
                    paid_wei: parse_wei(&r.paid_wei),
                    slashed_wei: parse_wei(&r.slashed_wei),
                    submitted_at: to_u64(r.submitted_at),
                    base_round: to_u64(r.base_round),
                    merged_round: r.merged_round.map(to_u64),
                    task_seconds: to_u64(r.task_seconds),
                })
            })
            .collect()
    }
}

/// A query for the rows of `keys`: `head ($1, $2), ($3, $4)) middle ($5, $6),
/// …)`, the keys listed after `head`, and again after `middle` unless it is
/// empty, with the values bound in that order. Row values against a `VALUES`
/// list read the same in SQLite and PostgreSQL; numbered placeholders too.
async fn select_for_keys<T>(
    pool: &sqlx::AnyPool,
    head: &str,
    middle: &str,
    keys: &[(i64, &str)],
) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    let lists = if middle.is_empty() { 1 } else { 2 };
    let mut sql = String::from(head);
    let mut n = 0;
    for list in 0..lists {
        if list == 1 {
            sql.push_str(middle);
        }
        for i in 0..keys.len() {
            let sep = if i == 0 { "" } else { ", " };
            sql.push_str(&format!("{sep}(${}, ${})", n + 1, n + 2));
            n += 2;
        }
        sql.push(')');
    }
    let mut q = sqlx::query_as(&sql);
    for _ in 0..lists {
        for (job, idx) in keys {
            q = q.bind(*job).bind(*idx);
        }
    }
    Ok(q.fetch_all(pool).await?)
}

impl StoreTx {
    /// Stores a reported update (ignored when one is stored); returns
    /// whether it was new.
    pub async fn insert_update(&mut self, u: &NewUpdate<'_>) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO updates (job_id, update_index, round, trainer, task_id, shard, steps,
             update_hash, submit_tx, submit_block, deadline, replay, loss_before, loss_after, platform,
             submitted_at, reason, duplicate_of, norm, probe_gain)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
             ON CONFLICT(job_id, update_index) DO NOTHING",
        )
        .bind(to_db(u.job_id))
        .bind(index_text(u.index))
        .bind(to_db(u.round))
        .bind(addr_text(u.trainer))
        .bind(to_db(u.task_id))
        .bind(i64::from(u.shard))
        .bind(i64::from(u.steps))
        .bind(hash_text(u.update_hash))
        .bind(hash_text(u.submit_tx))
        .bind(to_db(u.submit_block))
        .bind(to_db(u.deadline))
        .bind(i64::from(u.reason != CheckReason::None))
        .bind(u.loss_before)
        .bind(u.loss_after)
        .bind(u.platform)
        .bind(to_db(u.submitted_at))
        .bind(u.reason.as_str())
        .bind(u.duplicate_of.map(index_text))
        .bind(u.norm)
        .bind(u.probe_gain)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Records a submission seen on-chain (ignored when known).
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_chain_update(
        &mut self,
        job_id: u64,
        index: U256,
        round: u64,
        trainer: Address,
        update_hash: B256,
        submit_tx: B256,
        submit_block: u64,
        now: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO chain_updates (job_id, update_index, round, trainer, update_hash,
             submit_tx, submit_block, status, seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT(job_id, update_index) DO NOTHING",
        )
        .bind(to_db(job_id))
        .bind(index_text(index))
        .bind(to_db(round))
        .bind(addr_text(trainer))
        .bind(hash_text(update_hash))
        .bind(hash_text(submit_tx))
        .bind(to_db(submit_block))
        .bind(UpdateStatus::Pending.as_str())
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// A challenge: the update goes to validators, whatever its draw.
    pub async fn mark_challenged(&mut self, job_id: u64, index: U256) -> Result<()> {
        sqlx::query(
            "UPDATE chain_updates SET status = $1 WHERE job_id = $2 AND update_index = $3 AND status = $4",
        )
        .bind(UpdateStatus::Challenged.as_str())
        .bind(to_db(job_id))
        .bind(index_text(index))
        .bind(UpdateStatus::Pending.as_str())
        .execute(self.conn())
        .await?;
        sqlx::query(
            "UPDATE updates SET replay = 1, reason = $1 WHERE job_id = $2 AND update_index = $3",
        )
        .bind(CheckReason::Challenged.as_str())
        .bind(to_db(job_id))
        .bind(index_text(index))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The verdict on an update: accepted (paid `paid`) or rejected.
    pub async fn decide_update(
        &mut self,
        job_id: u64,
        index: U256,
        accepted: bool,
        decided_by: Option<Address>,
        paid: U256,
    ) -> Result<()> {
        let status = if accepted {
            UpdateStatus::Accepted
        } else {
            UpdateStatus::Rejected
        };
        sqlx::query(
            "UPDATE chain_updates SET status = $1, decided_by = $2, paid_wei = $3 WHERE job_id = $4 AND update_index = $5",
        )
        .bind(status.as_str())
        .bind(decided_by.map(addr_text))
        .bind(paid.to_string())
        .bind(to_db(job_id))
        .bind(index_text(index))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Records that the delta of update `index` was deleted.
    pub async fn mark_pruned(&mut self, job_id: u64, index: U256) -> Result<()> {
        sqlx::query("UPDATE updates SET blob_pruned = 1 WHERE job_id = $1 AND update_index = $2")
            .bind(to_db(job_id))
            .bind(index_text(index))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Marks an update void: it reached no quorum by its decision timeout
    /// (`UpdateVoided`); nobody was paid or slashed.
    pub async fn void_update(&mut self, job_id: u64, index: U256) -> Result<()> {
        sqlx::query("UPDATE chain_updates SET status = $1 WHERE job_id = $2 AND update_index = $3")
            .bind(UpdateStatus::Void.as_str())
            .bind(to_db(job_id))
            .bind(index_text(index))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The slash taken from the trainer of an update.
    pub async fn set_update_slashed(
        &mut self,
        job_id: u64,
        index: U256,
        amount: U256,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE chain_updates SET slashed_wei = $1 WHERE job_id = $2 AND update_index = $3",
        )
        .bind(amount.to_string())
        .bind(to_db(job_id))
        .bind(index_text(index))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Adds a bonus to what an update was paid (nothing when unknown).
    pub async fn add_update_paid(&mut self, job_id: u64, index: U256, amount: U256) -> Result<()> {
        let paid: Option<String> = sqlx::query_scalar(
            "SELECT paid_wei FROM chain_updates WHERE job_id = $1 AND update_index = $2",
        )
        .bind(to_db(job_id))
        .bind(index_text(index))
        .fetch_optional(self.conn())
        .await?;
        if let Some(paid) = paid {
            sqlx::query(
                "UPDATE chain_updates SET paid_wei = $1 WHERE job_id = $2 AND update_index = $3",
            )
            .bind(crate::util::add_wei(&paid, amount))
            .bind(to_db(job_id))
            .bind(index_text(index))
            .execute(self.conn())
            .await?;
        }
        Ok(())
    }

    /// Records a vote seen on-chain (ignored when known); the validator
    /// becomes a known participant.
    pub async fn insert_chain_vote(
        &mut self,
        job_id: u64,
        index: U256,
        validator: Address,
        valid: bool,
        tx_hash: B256,
    ) -> Result<()> {
        self.participant(validator).await?;
        sqlx::query(
            "INSERT INTO chain_votes (job_id, update_index, validator, valid, tx_hash) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT(job_id, update_index, validator) DO NOTHING",
        )
        .bind(to_db(job_id))
        .bind(index_text(index))
        .bind(addr_text(validator))
        .bind(i64::from(valid))
        .bind(hash_text(tx_hash))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Stores a validator's reported vote (ignored when it reported before)
    /// and closes its assignment; returns whether the report was new.
    pub async fn insert_validation(&mut self, v: &NewValidation<'_>) -> Result<bool> {
        let new = sqlx::query(
            "INSERT INTO validations (job_id, update_index, validator, valid, tx_hash, detail, reported_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT(job_id, update_index, validator) DO NOTHING",
        )
        .bind(to_db(v.job_id))
        .bind(index_text(v.index))
        .bind(addr_text(v.validator))
        .bind(i64::from(v.valid))
        .bind(hash_text(v.tx_hash))
        .bind(v.detail)
        .bind(to_db(v.reported_at))
        .execute(self.conn())
        .await?
        .rows_affected()
            == 1;
        sqlx::query(
            "INSERT INTO assignments (job_id, update_index, validator, issued_at, expires_at, done)
             VALUES ($1, $2, $3, $4, $5, 1)
             ON CONFLICT(job_id, update_index, validator) DO UPDATE SET done = 1",
        )
        .bind(to_db(v.job_id))
        .bind(index_text(v.index))
        .bind(addr_text(v.validator))
        .bind(to_db(v.reported_at))
        .bind(to_db(v.reported_at))
        .execute(self.conn())
        .await?;
        Ok(new)
    }

    /// Gives the trainer of an accepted, reported update its training
    /// points, once (the report and the verdict may arrive in either order).
    pub async fn credit_training(
        &mut self,
        decay: &Decay,
        job_id: u64,
        index: U256,
        now: u64,
    ) -> Result<()> {
        let row: Option<(String, i64, Option<String>)> = sqlx::query_as(
            "SELECT u.trainer, u.steps, j.spec FROM updates u JOIN chain_updates c
             ON c.job_id = u.job_id AND c.update_index = u.update_index
             JOIN jobs j ON j.job_id = u.job_id
             WHERE u.job_id = $1 AND u.update_index = $2 AND u.credited = 0 AND c.status = $3",
        )
        .bind(to_db(job_id))
        .bind(index_text(index))
        .bind(UpdateStatus::Accepted.as_str())
        .fetch_optional(self.conn())
        .await?;
        let Some((trainer, steps, spec)) = row else {
            return Ok(());
        };
        // Training points are the steps' operations in ut.
        let step_ut = spec
            .and_then(|s| funetun_core::JobSpec::from_toml(&s).ok())
            .map_or(0.0, |spec| crate::reputation::step_ut(&spec));
        self.add_points(
            decay,
            parse_addr(&trainer)?,
            super::participants::Points::Train,
            steps as f64 * step_ut,
            now,
        )
        .await?;
        sqlx::query("UPDATE updates SET credited = 1 WHERE job_id = $1 AND update_index = $2")
            .bind(to_db(job_id))
            .bind(index_text(index))
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

/// The voters of an update and the size of the larger side.
pub fn tally(votes: &[(Address, bool)]) -> (BTreeSet<Address>, usize) {
    let mut sides: BTreeMap<bool, BTreeSet<Address>> = BTreeMap::new();
    for (v, valid) in votes {
        sides.entry(*valid).or_default().insert(*v);
    }
    let leading = sides.values().map(BTreeSet::len).max().unwrap_or(0);
    (sides.into_values().flatten().collect(), leading)
}

/// What a trainer's stored report of its update said.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredReport {
    /// The delta's hash.
    pub update_hash: B256,
    /// The `submitUpdate` transaction.
    pub tx_hash: B256,
    /// Loss of the base checkpoint on the task's batches.
    pub loss_before: f32,
    /// Loss after training.
    pub loss_after: f32,
}
