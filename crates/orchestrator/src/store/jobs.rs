//! The `jobs` table: jobs this orchestrator leads, from `JobCreated` to
//! `finished`, `closed` or `invalid`.

use alloy_primitives::{Address, B256, U256};

use super::{Store, StoreTx, to_db, to_u64};
use crate::error::{Error, Result};
use crate::util::{add_wei, addr_text, hash_text, parse_addr, parse_hash, parse_wei};

pub use funetun_core::protocol::JobStatus;

/// Parses a stored job status. The orchestrator writes only the protocol's
/// words; anything else is stored state contradicting itself.
fn job_status(word: &str) -> Result<JobStatus> {
    crate::util::parse_word(word)
}

/// A job's stored spec, quorum and replay salt.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredSpec {
    /// On-chain id.
    pub job_id: i64,
    /// The spec's TOML.
    pub spec: String,
    /// Votes that decide an update.
    pub quorum: i64,
    /// Salt of the replay draws.
    pub secret: Vec<u8>,
}

/// What starting a job needs.
#[derive(Debug)]
pub struct JobStart {
    /// Hash of the spec blob.
    pub spec_hash: B256,
    /// Rounds on-chain.
    pub rounds: u64,
    /// Quorum on-chain.
    pub quorum: u32,
    /// Salt of the replay draws.
    pub secret: Vec<u8>,
    /// Times the spec blob was looked for.
    pub spec_attempts: u32,
}

#[derive(sqlx::FromRow)]
struct JobStartRow {
    spec_hash: String,
    rounds: i64,
    quorum: i64,
    secret: Vec<u8>,
    spec_attempts: i64,
}

/// A job's status, round and whether the chain closed it.
#[derive(Debug, sqlx::FromRow)]
pub struct JobProgress {
    /// Stored status word.
    status: String,
    /// The round being trained.
    pub round: i64,
    /// `JobClosed` seen (owner or exhausted).
    chain_closed: i64,
}

impl JobProgress {
    /// The status.
    pub fn status(&self) -> Result<JobStatus> {
        job_status(&self.status)
    }

    /// The chain closed the job.
    pub fn chain_closed(&self) -> bool {
        self.chain_closed != 0
    }
}

/// A job as listed: the summary columns, the latest checkpoint and accuracy.
#[derive(Debug, sqlx::FromRow)]
pub struct JobRow {
    job_id: i64,
    name: String,
    owner: String,
    leader: String,
    spec_hash: String,
    status: String,
    round: i64,
    rounds: i64,
    deposit_wei: String,
    paid_wei: String,
    slashed_wei: String,
    remaining_wei: String,
    created_at: i64,
    latest_checkpoint: Option<String>,
    test_accuracy: Option<f64>,
    base_reward_wei: String,
    validation_reward_wei: String,
    validators_paid_wei: String,
    /// The spec's TOML once fetched.
    pub spec: Option<String>,
}

impl JobRow {
    /// The API's summary of the row.
    pub fn summary(&self) -> Result<funetun_core::api::JobSummary> {
        Ok(funetun_core::api::JobSummary {
            job_id: to_u64(self.job_id),
            name: self.name.clone(),
            owner: parse_addr(&self.owner)?,
            leader: parse_addr(&self.leader)?,
            spec_hash: parse_hash(&self.spec_hash)?,
            status: job_status(&self.status)?,
            round: to_u64(self.round),
            rounds: to_u64(self.rounds),
            deposit_wei: parse_wei(&self.deposit_wei),
            paid_wei: parse_wei(&self.paid_wei),
            slashed_wei: parse_wei(&self.slashed_wei),
            remaining_wei: parse_wei(&self.remaining_wei),
            created_at: to_u64(self.created_at),
            latest_checkpoint: self
                .latest_checkpoint
                .as_deref()
                .map(parse_hash)
                .transpose()?,
            test_accuracy: self.test_accuracy,
        })
    }

    /// The job's status.
    pub fn status(&self) -> Result<JobStatus> {
        job_status(&self.status)
    }

    /// The base reward per accepted update.
    pub fn base_reward_wei(&self) -> U256 {
        parse_wei(&self.base_reward_wei)
    }

    /// What each validator of a deciding quorum is paid.
    pub fn validation_reward_wei(&self) -> U256 {
        parse_wei(&self.validation_reward_wei)
    }

    /// What the job has paid its validators in all.
    pub fn validators_paid_wei(&self) -> U256 {
        parse_wei(&self.validators_paid_wei)
    }
}

const JOB_SQL: &str = "SELECT j.job_id, j.name, j.owner, j.leader, j.spec_hash, j.status, j.round, j.rounds,
    j.deposit_wei, j.paid_wei, j.slashed_wei, j.remaining_wei, j.created_at,
    COALESCE((SELECT r.checkpoint_hash FROM rounds r WHERE r.job_id = j.job_id AND r.checkpoint_hash IS NOT NULL
              ORDER BY r.round DESC LIMIT 1),
             (SELECT r.base_hash FROM rounds r WHERE r.job_id = j.job_id AND r.round = 0)) AS latest_checkpoint,
    (SELECT r.test_accuracy FROM rounds r WHERE r.job_id = j.job_id AND r.test_accuracy IS NOT NULL
     ORDER BY r.round DESC LIMIT 1) AS test_accuracy,
    j.base_reward_wei, j.validation_reward_wei, j.validators_paid_wei, j.spec
    FROM jobs j";

/// A `JobCreated` naming this leader.
#[derive(Debug)]
pub struct NewJob {
    /// On-chain id.
    pub job_id: u64,
    /// The owner.
    pub owner: Address,
    /// The leader.
    pub leader: Address,
    /// Hash of the spec blob.
    pub spec_hash: B256,
    /// Rounds.
    pub rounds: u64,
    /// Quorum.
    pub quorum: u64,
    /// Challenge window, seconds.
    pub challenge_window: u64,
    /// Deposit.
    pub deposit: U256,
    /// Base reward.
    pub base_reward: U256,
    /// Bonus reward.
    pub bonus_reward: U256,
    /// Paid to each validator of a deciding quorum.
    pub validation_reward: U256,
    /// Salt of the replay draws.
    pub secret: Vec<u8>,
    /// Unix second it was seen.
    pub created_at: u64,
    /// Block of the event.
    pub created_block: u64,
}

impl Store {
    /// Every job, by id.
    pub async fn jobs(&self) -> Result<Vec<JobRow>> {
        Ok(sqlx::query_as(&format!("{JOB_SQL} ORDER BY j.job_id"))
            .fetch_all(&self.read)
            .await?)
    }

    /// One job.
    pub async fn job(&self, job_id: u64) -> Result<Option<JobRow>> {
        Ok(sqlx::query_as(&format!("{JOB_SQL} WHERE j.job_id = $1"))
            .bind(to_db(job_id))
            .fetch_optional(&self.read)
            .await?)
    }

    /// Whether the job is led here.
    pub async fn job_exists(&self, job_id: u64) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar("SELECT job_id FROM jobs WHERE job_id = $1")
            .bind(to_db(job_id))
            .fetch_optional(&self.read)
            .await?;
        Ok(found.is_some())
    }

    /// A job's status and, when invalid, why.
    pub async fn job_status(&self, job_id: u64) -> Result<Option<(JobStatus, Option<String>)>> {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT status, reason FROM jobs WHERE job_id = $1")
                .bind(to_db(job_id))
                .fetch_optional(&self.read)
                .await?;
        row.map(|(status, reason)| Ok((job_status(&status)?, reason)))
            .transpose()
    }

    /// The stored specs of jobs that have one and are not invalid.
    pub async fn stored_specs(&self) -> Result<Vec<StoredSpec>> {
        Ok(sqlx::query_as(
            "SELECT job_id, spec, quorum, secret FROM jobs WHERE spec IS NOT NULL AND status != $1",
        )
        .bind(JobStatus::Invalid.as_str())
        .fetch_all(&self.read)
        .await?)
    }

    /// The stored spec of one job, as [`Store::stored_specs`] lists them.
    pub async fn stored_spec(&self, job_id: u64) -> Result<Option<StoredSpec>> {
        Ok(sqlx::query_as(
            "SELECT job_id, spec, quorum, secret FROM jobs
             WHERE job_id = $1 AND spec IS NOT NULL AND status != $2",
        )
        .bind(to_db(job_id))
        .bind(JobStatus::Invalid.as_str())
        .fetch_optional(&self.read)
        .await?)
    }

    /// Jobs in `status`, by id; pending jobs only once their next spec try is due at `now`.
    pub async fn jobs_in(&self, status: JobStatus, now: u64) -> Result<Vec<u64>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT job_id FROM jobs WHERE status = $1 AND (status != $2 OR next_spec_try <= $3)
             ORDER BY job_id",
        )
        .bind(status.as_str())
        .bind(JobStatus::Pending.as_str())
        .bind(to_db(now))
        .fetch_all(&self.read)
        .await?;
        Ok(ids.into_iter().map(to_u64).collect())
    }

    /// What starting the job needs.
    pub async fn job_start(&self, job_id: u64) -> Result<JobStart> {
        let r: JobStartRow = sqlx::query_as(
            "SELECT spec_hash, rounds, quorum, secret, spec_attempts FROM jobs WHERE job_id = $1",
        )
        .bind(to_db(job_id))
        .fetch_one(&self.read)
        .await?;
        Ok(JobStart {
            spec_hash: parse_hash(&r.spec_hash)?,
            rounds: to_u64(r.rounds),
            quorum: u32::try_from(r.quorum).unwrap_or(0),
            secret: r.secret,
            spec_attempts: u32::try_from(r.spec_attempts).unwrap_or(0),
        })
    }

    /// Counts a failed look for the spec blob; the next is due at `next_try`.
    pub async fn spec_missing(&self, job_id: u64, attempts: u32, next_try: u64) -> Result<()> {
        self.write_one(
            sqlx::query("UPDATE jobs SET spec_attempts = $1, next_spec_try = $2 WHERE job_id = $3")
                .bind(i64::from(attempts))
                .bind(to_db(next_try))
                .bind(to_db(job_id)),
        )
        .await?;
        Ok(())
    }

    /// Marks the job invalid with `reason`.
    pub async fn mark_invalid(&self, job_id: u64, reason: &str) -> Result<()> {
        self.write_one(
            sqlx::query("UPDATE jobs SET status = $1, reason = $2 WHERE job_id = $3")
                .bind(JobStatus::Invalid.as_str())
                .bind(reason)
                .bind(to_db(job_id)),
        )
        .await?;
        Ok(())
    }

    /// Sets the job's status.
    pub async fn set_job_status(&self, job_id: u64, status: JobStatus) -> Result<()> {
        self.write_one(
            sqlx::query("UPDATE jobs SET status = $1 WHERE job_id = $2")
                .bind(status.as_str())
                .bind(to_db(job_id)),
        )
        .await?;
        Ok(())
    }

    /// The job's status, round and chain-closed flag.
    pub async fn job_progress(&self, job_id: u64) -> Result<Option<JobProgress>> {
        Ok(
            sqlx::query_as("SELECT status, round, chain_closed FROM jobs WHERE job_id = $1")
                .bind(to_db(job_id))
                .fetch_optional(&self.read)
                .await?,
        )
    }

    /// Stores the chain's remaining deposit and slashes credited to the job.
    pub async fn set_job_totals(&self, job_id: u64, remaining: U256, slashed: U256) -> Result<()> {
        self.write_one(
            sqlx::query("UPDATE jobs SET remaining_wei = $1, slashed_wei = $2 WHERE job_id = $3")
                .bind(remaining.to_string())
                .bind(slashed.to_string())
                .bind(to_db(job_id)),
        )
        .await?;
        Ok(())
    }
}

impl StoreTx {
    /// Stores a new job as pending (ignored when known).
    pub async fn insert_job(&mut self, job: &NewJob) -> Result<()> {
        sqlx::query(
            "INSERT INTO jobs (job_id, owner, leader, spec_hash, status, rounds, quorum,
             challenge_window, deposit_wei, base_reward_wei, bonus_reward_wei,
             validation_reward_wei, remaining_wei, secret, created_at, created_block)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT(job_id) DO NOTHING",
        )
        .bind(to_db(job.job_id))
        .bind(addr_text(job.owner))
        .bind(addr_text(job.leader))
        .bind(hash_text(job.spec_hash))
        .bind(JobStatus::Pending.as_str())
        .bind(to_db(job.rounds))
        .bind(to_db(job.quorum))
        .bind(to_db(job.challenge_window))
        .bind(job.deposit.to_string())
        .bind(job.base_reward.to_string())
        .bind(job.bonus_reward.to_string())
        .bind(job.validation_reward.to_string())
        .bind(job.deposit.to_string())
        .bind(&job.secret)
        .bind(to_db(job.created_at))
        .bind(to_db(job.created_block))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The base reward of a job led here, or `None` for someone else's job.
    pub async fn job_reward(&mut self, job_id: u64) -> Result<Option<U256>> {
        let reward: Option<String> =
            sqlx::query_scalar("SELECT base_reward_wei FROM jobs WHERE job_id = $1")
                .bind(to_db(job_id))
                .fetch_optional(self.conn())
                .await?;
        Ok(reward.as_deref().map(parse_wei))
    }

    /// Adds `amount` to what the job paid its validators (and to what it paid).
    pub async fn add_validators_paid(&mut self, job_id: u64, amount: U256) -> Result<()> {
        let paid: String =
            sqlx::query_scalar("SELECT validators_paid_wei FROM jobs WHERE job_id = $1")
                .bind(to_db(job_id))
                .fetch_one(self.conn())
                .await?;
        sqlx::query("UPDATE jobs SET validators_paid_wei = $1 WHERE job_id = $2")
            .bind(add_wei(&paid, amount))
            .bind(to_db(job_id))
            .execute(self.conn())
            .await?;
        self.add_job_paid(job_id, amount).await
    }

    /// Adds `amount` to what the job paid.
    pub async fn add_job_paid(&mut self, job_id: u64, amount: U256) -> Result<()> {
        let paid: String = sqlx::query_scalar("SELECT paid_wei FROM jobs WHERE job_id = $1")
            .bind(to_db(job_id))
            .fetch_one(self.conn())
            .await?;
        sqlx::query("UPDATE jobs SET paid_wei = $1 WHERE job_id = $2")
            .bind(add_wei(&paid, amount))
            .bind(to_db(job_id))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Records that the chain closed the job early.
    pub async fn mark_chain_closed(&mut self, job_id: u64) -> Result<()> {
        sqlx::query("UPDATE jobs SET chain_closed = 1 WHERE job_id = $1")
            .bind(to_db(job_id))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The job's spec arrived and checkpoint 0 is committed: it becomes
    /// active at round 0.
    pub async fn activate_job(&mut self, job_id: u64, spec_toml: &str, name: &str) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET spec = $1, name = $2, status = $3, round = 0 WHERE job_id = $4",
        )
        .bind(spec_toml)
        .bind(name)
        .bind(JobStatus::Active.as_str())
        .bind(to_db(job_id))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Moves the job to `round`, and to `status` when given.
    pub async fn advance_job(
        &mut self,
        job_id: u64,
        round: u64,
        status: Option<JobStatus>,
    ) -> Result<()> {
        sqlx::query("UPDATE jobs SET status = COALESCE($1, status), round = $2 WHERE job_id = $3")
            .bind(status.map(JobStatus::as_str))
            .bind(to_db(round))
            .bind(to_db(job_id))
            .execute(self.conn())
            .await?;
        Ok(())
    }
}

/// `unknown_job`: the job is not led by `leader`.
pub fn unknown_job(job_id: u64, leader: Address) -> Error {
    Error::not_found(
        "unknown_job",
        format!("job {job_id} is not led by this orchestrator ({leader})"),
    )
}
