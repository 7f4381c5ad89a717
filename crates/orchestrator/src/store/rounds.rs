//! The `rounds` and `round_inputs` tables: round t trains checkpoint t into
//! checkpoint t+1; a closing round's inputs are fixed before aggregation.

use alloy_primitives::B256;
use funetun_core::api::RoundInfo;

use super::updates::UpdateStatus;
use super::{Store, StoreTx, to_db, to_u64};
use crate::error::Result;
use crate::scheduler::InputRef;
use crate::util::{hash_text, index_text, parse_hash, parse_index, u64_from_db};

pub use funetun_core::protocol::RoundStatus;

/// Parses a stored round status (anything unknown counts as closing: not
/// open, not done).
fn round_status(word: &str) -> RoundStatus {
    word.parse().unwrap_or(RoundStatus::Closing)
}

/// The API's status of a round: a closing round is still open to readers.
fn public(status: RoundStatus) -> RoundStatus {
    match status {
        RoundStatus::Closed => RoundStatus::Closed,
        RoundStatus::Open | RoundStatus::Closing => RoundStatus::Open,
    }
}

/// A fixed input of a closing round.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedInput {
    /// The update.
    pub input: InputRef,
    /// Its reported training loss (none for an update adopted from the
    /// chain without a report).
    pub loss: Option<f64>,
}

/// A round's status and deadline.
#[derive(Debug, Clone, Copy)]
pub struct RoundState {
    /// Its status.
    pub status: RoundStatus,
    /// When it closes with what it has (unix seconds).
    pub deadline: u64,
}

#[derive(sqlx::FromRow)]
struct RawRoundState {
    status: String,
    deadline: i64,
}

#[derive(sqlx::FromRow)]
struct RawRoundInfo {
    round: i64,
    status: String,
    base_hash: String,
    checkpoint_hash: Option<String>,
    test_loss: Option<f64>,
    test_accuracy: Option<f64>,
    sample: Option<String>,
    train_loss: Option<f64>,
    opened_at: i64,
    closed_at: Option<i64>,
    commit_tx: Option<String>,
    manifest_hash: Option<String>,
    led_by: Option<String>,
    leased: i64,
    submitted: i64,
    replayed: i64,
    accepted: i64,
    rejected: i64,
    mean_loss_after: Option<f64>,
}

/// A closed round whose test metrics are missing.
#[derive(Debug)]
pub struct Unevaluated {
    /// The job.
    pub job_id: u64,
    /// The round.
    pub round: u64,
    /// Its checkpoint.
    pub checkpoint_hash: B256,
}

/// What closing a round stores.
#[derive(Debug)]
pub struct RoundClose {
    /// The new checkpoint.
    pub checkpoint_hash: B256,
    /// The outer optimizer's state after the round, if any.
    pub outer_state: Option<B256>,
    /// Unix second it closed.
    pub closed_at: u64,
    /// The commit transaction, when one was sent.
    pub commit_tx: Option<B256>,
    /// The manifest committed with the checkpoint.
    pub manifest_hash: B256,
    /// Mean reported training loss of the inputs.
    pub train_loss: Option<f64>,
    /// The replica whose term closed it.
    pub led_by: String,
}

impl Store {
    /// The checkpoint a round trains from.
    pub async fn round_base(&self, job_id: u64, round: u64) -> Result<B256> {
        let base: String =
            sqlx::query_scalar("SELECT base_hash FROM rounds WHERE job_id = $1 AND round = $2")
                .bind(to_db(job_id))
                .bind(to_db(round))
                .fetch_one(&self.read)
                .await?;
        parse_hash(&base)
    }

    /// A round's status and deadline.
    pub async fn round_state(&self, job_id: u64, round: u64) -> Result<Option<RoundState>> {
        let raw: Option<RawRoundState> =
            sqlx::query_as("SELECT status, deadline FROM rounds WHERE job_id = $1 AND round = $2")
                .bind(to_db(job_id))
                .bind(to_db(round))
                .fetch_optional(&self.read)
                .await?;
        Ok(raw.map(|r| RoundState {
            status: round_status(&r.status),
            deadline: u64_from_db(r.deadline),
        }))
    }

    /// Moves an open round's deadline.
    pub async fn extend_round(&self, job_id: u64, round: u64, deadline: u64) -> Result<()> {
        self.write_one(
            sqlx::query(
                "UPDATE rounds SET deadline = $1 WHERE job_id = $2 AND round = $3 AND status = $4",
            )
            .bind(to_db(deadline))
            .bind(to_db(job_id))
            .bind(to_db(round))
            .bind(RoundStatus::Open.as_str()),
        )
        .await?;
        Ok(())
    }

    /// The fixed inputs of a closing round, in order, with the reported
    /// training loss of each.
    pub async fn round_inputs(&self, job_id: u64, round: u64) -> Result<Vec<FixedInput>> {
        let rows: Vec<(String, String, Option<i64>, Option<f64>)> = sqlx::query_as(
            "SELECT i.update_index, i.update_hash, i.base_round, u.loss_after FROM round_inputs i
             LEFT JOIN updates u ON u.job_id = i.job_id AND u.update_index = i.update_index
             WHERE i.job_id = $1 AND i.round = $2 ORDER BY i.position",
        )
        .bind(to_db(job_id))
        .bind(to_db(round))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(index, hash, base_round, loss)| {
                Ok(FixedInput {
                    input: InputRef {
                        index: parse_index(&index)?,
                        hash: parse_hash(&hash)?,
                        base_round: base_round.map_or(round, to_u64),
                    },
                    loss,
                })
            })
            .collect()
    }

    /// The outer optimizer state blob left by a round.
    pub async fn outer_state(&self, job_id: u64, round: u64) -> Result<Option<B256>> {
        let h: Option<Option<String>> =
            sqlx::query_scalar("SELECT outer_state FROM rounds WHERE job_id = $1 AND round = $2")
                .bind(to_db(job_id))
                .bind(to_db(round))
                .fetch_optional(&self.read)
                .await?;
        h.flatten().as_deref().map(parse_hash).transpose()
    }

    /// Stores a checkpoint's test metrics (and, for text, a sample of what
    /// it writes) on the round that built it.
    pub async fn set_test_metrics(
        &self,
        job_id: u64,
        round: u64,
        loss: f64,
        accuracy: f64,
        sample: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE rounds SET test_loss = $1, test_accuracy = $2, sample = $3 WHERE job_id = $4 AND round = $5",
        )
        .bind(loss)
        .bind(accuracy)
        .bind(sample)
        .bind(to_db(job_id))
        .bind(to_db(round))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Closed rounds whose test metrics are missing.
    pub async fn unevaluated_rounds(&self) -> Result<Vec<Unevaluated>> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT job_id, round, checkpoint_hash FROM rounds
             WHERE status = $1 AND test_accuracy IS NULL AND checkpoint_hash IS NOT NULL",
        )
        .bind(RoundStatus::Closed.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|(job, round, hash)| {
                Ok(Unevaluated {
                    job_id: to_u64(job),
                    round: to_u64(round),
                    checkpoint_hash: parse_hash(&hash)?,
                })
            })
            .collect()
    }

    /// The rounds of a job as the API shows them, oldest first, in one query.
    pub async fn round_infos(&self, job_id: u64) -> Result<Vec<RoundInfo>> {
        let rows: Vec<RawRoundInfo> = sqlx::query_as(
            "SELECT r.round, r.status, r.base_hash, r.checkpoint_hash, r.test_loss, r.test_accuracy,
                    r.sample, r.train_loss, r.opened_at, r.closed_at, r.commit_tx, r.manifest_hash,
                    r.led_by,
                    (SELECT COUNT(*) FROM tasks t WHERE t.job_id = r.job_id AND t.round = r.round) AS leased,
                    (SELECT COUNT(*) FROM updates u WHERE u.job_id = r.job_id AND u.round = r.round) AS submitted,
                    (SELECT COUNT(*) FROM updates u WHERE u.job_id = r.job_id AND u.round = r.round AND u.replay = 1) AS replayed,
                    (SELECT COUNT(*) FROM chain_updates c WHERE c.job_id = r.job_id AND c.round = r.round AND c.status = $1) AS accepted,
                    (SELECT COUNT(*) FROM chain_updates c WHERE c.job_id = r.job_id AND c.round = r.round AND c.status = $2) AS rejected,
                    (SELECT AVG(u.loss_after) FROM updates u WHERE u.job_id = r.job_id AND u.round = r.round) AS mean_loss_after
             FROM rounds r WHERE r.job_id = $3 ORDER BY r.round",
        )
        .bind(UpdateStatus::Accepted.as_str())
        .bind(UpdateStatus::Rejected.as_str())
        .bind(to_db(job_id))
        .fetch_all(&self.read)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(RoundInfo {
                    round: to_u64(r.round),
                    status: public(round_status(&r.status)),
                    base_hash: parse_hash(&r.base_hash)?,
                    checkpoint_hash: r.checkpoint_hash.as_deref().map(parse_hash).transpose()?,
                    leased: to_u64(r.leased),
                    submitted: to_u64(r.submitted),
                    replayed: to_u64(r.replayed),
                    accepted: to_u64(r.accepted),
                    rejected: to_u64(r.rejected),
                    test_loss: r.test_loss,
                    test_accuracy: r.test_accuracy,
                    test_perplexity: r.test_loss.filter(|_| r.sample.is_some()).map(f64::exp),
                    sample: r.sample,
                    train_loss: r.train_loss.or(r.mean_loss_after),
                    opened_at: to_u64(r.opened_at),
                    closed_at: r.closed_at.map(to_u64),
                    commit_tx: r.commit_tx.as_deref().map(parse_hash).transpose()?,
                    manifest_hash: r.manifest_hash.as_deref().map(parse_hash).transpose()?,
                    led_by: r.led_by,
                })
            })
            .collect()
    }
}

impl StoreTx {
    /// Opens a round training `base_hash` (ignored when it exists).
    pub async fn open_round(
        &mut self,
        job_id: u64,
        round: u64,
        base_hash: B256,
        now: u64,
        deadline: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO rounds (job_id, round, status, base_hash, opened_at, deadline)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT(job_id, round) DO NOTHING",
        )
        .bind(to_db(job_id))
        .bind(to_db(round))
        .bind(RoundStatus::Open.as_str())
        .bind(hash_text(base_hash))
        .bind(to_db(now))
        .bind(to_db(deadline))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Fixes an open round's inputs and marks it closing; returns false (and
    /// writes nothing) when the round is not open.
    pub async fn fix_round_inputs(
        &mut self,
        job_id: u64,
        round: u64,
        inputs: &[InputRef],
    ) -> Result<bool> {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM rounds WHERE job_id = $1 AND round = $2")
                .bind(to_db(job_id))
                .bind(to_db(round))
                .fetch_optional(self.conn())
                .await?;
        if status.as_deref().map(round_status) != Some(RoundStatus::Open) {
            return Ok(false);
        }
        for (position, input) in inputs.iter().enumerate() {
            sqlx::query(
                "INSERT INTO round_inputs (job_id, round, position, update_index, update_hash, base_round)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(to_db(job_id))
            .bind(to_db(round))
            .bind(to_db(position as u64))
            .bind(index_text(input.index))
            .bind(hash_text(input.hash))
            .bind(to_db(input.base_round))
            .execute(self.conn())
            .await?;
        }
        sqlx::query("UPDATE rounds SET status = $1 WHERE job_id = $2 AND round = $3")
            .bind(RoundStatus::Closing.as_str())
            .bind(to_db(job_id))
            .bind(to_db(round))
            .execute(self.conn())
            .await?;
        Ok(true)
    }

    /// Closes a round with its checkpoint.
    pub async fn close_round(&mut self, job_id: u64, round: u64, close: &RoundClose) -> Result<()> {
        sqlx::query(
            "UPDATE rounds SET status = $1, checkpoint_hash = $2, outer_state = $3, manifest_hash = $4,
             closed_at = $5, commit_tx = COALESCE($6, commit_tx), train_loss = $7, led_by = $8
             WHERE job_id = $9 AND round = $10",
        )
        .bind(RoundStatus::Closed.as_str())
        .bind(hash_text(close.checkpoint_hash))
        .bind(close.outer_state.map(hash_text))
        .bind(hash_text(close.manifest_hash))
        .bind(to_db(close.closed_at))
        .bind(close.commit_tx.map(hash_text))
        .bind(close.train_loss)
        .bind(&close.led_by)
        .bind(to_db(job_id))
        .bind(to_db(round))
        .execute(self.conn())
        .await?;
        Ok(())
    }
}
