//! The `participants` table: everyone the orchestrator has heard of, with
//! stake and money, verdict counts, decaying points and what it reported
//! about itself.

use alloy_primitives::{Address, U256};

use super::{Store, StoreTx, to_db, to_u64};
use crate::error::Result;
use crate::replay::TrainerRecord;
use crate::reputation::Decay;
use crate::util::{add_wei, addr_text, parse_addr, parse_wei, sub_wei};

/// Owner bit in `participants.roles` (trainer 1 and validator 2 are the chain's).
pub const ROLE_OWNER: i64 = 4;

/// Which decaying points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Points {
    /// Training (steps of accepted updates).
    Train,
    /// Drilling (validation work).
    Drill,
}

/// A participant as stored.
#[derive(Debug, sqlx::FromRow)]
pub struct ParticipantRow {
    address: String,
    roles: i64,
    stake_wei: String,
    credit_wei: String,
    earned_wei: String,
    slashed_wei: String,
    accepted: i64,
    rejected: i64,
    validations: i64,
    train_points: f64,
    train_at: i64,
    drill_points: f64,
    drill_at: i64,
    /// The capacity it last leased with.
    pub capacity: Option<String>,
    last_seen: i64,
}

impl ParticipantRow {
    /// Its address.
    pub fn address(&self) -> Result<Address> {
        parse_addr(&self.address)
    }
    /// Role bits: 1 trainer, 2 validator, 4 owner.
    pub fn roles(&self) -> i64 {
        self.roles
    }
    /// Stake, credit, earned, slashed.
    pub fn money(&self) -> [U256; 4] {
        [
            parse_wei(&self.stake_wei),
            parse_wei(&self.credit_wei),
            parse_wei(&self.earned_wei),
            parse_wei(&self.slashed_wei),
        ]
    }
    /// Accepted, rejected, validations.
    pub fn counts(&self) -> [u64; 3] {
        [
            to_u64(self.accepted),
            to_u64(self.rejected),
            to_u64(self.validations),
        ]
    }
    /// Training and drilling points with the second each was decayed to.
    pub fn points(&self) -> ((f64, u64), (f64, u64)) {
        (
            (self.train_points, to_u64(self.train_at)),
            (self.drill_points, to_u64(self.drill_at)),
        )
    }
    /// Unix second it was last seen.
    pub fn last_seen(&self) -> u64 {
        to_u64(self.last_seen)
    }
}

#[derive(sqlx::FromRow)]
struct RecordRow {
    accepted: i64,
    rejected: i64,
    clean: i64,
    train_points: f64,
    train_at: i64,
    drill_points: f64,
    drill_at: i64,
}

impl Store {
    /// Every participant, by address.
    pub async fn participants(&self) -> Result<Vec<ParticipantRow>> {
        Ok(sqlx::query_as(
            "SELECT address, roles, stake_wei, credit_wei, earned_wei, slashed_wei, accepted, rejected,
                    validations, train_points, train_at, drill_points, drill_at, capacity, last_seen
             FROM participants ORDER BY address",
        )
        .fetch_all(&self.read)
        .await?)
    }

    /// A trainer's record as adaptive replication and task sizing see it
    /// (empty for a stranger).
    pub async fn trainer_record(
        &self,
        decay: &Decay,
        address: Address,
        now: u64,
    ) -> Result<TrainerRecord> {
        let row: Option<RecordRow> = sqlx::query_as(
            "SELECT accepted, rejected, clean, train_points, train_at, drill_points, drill_at
             FROM participants WHERE address = $1",
        )
        .bind(addr_text(address))
        .fetch_optional(&self.read)
        .await?;
        Ok(row
            .map(|r| TrainerRecord {
                accepted: to_u64(r.accepted),
                rejected: to_u64(r.rejected),
                clean: to_u64(r.clean),
                reputation: decay.total(
                    (r.train_points, to_u64(r.train_at)),
                    (r.drill_points, to_u64(r.drill_at)),
                    now,
                ),
            })
            .unwrap_or_default())
    }
}

impl StoreTx {
    /// Makes `address` a known participant.
    pub async fn participant(&mut self, address: Address) -> Result<()> {
        sqlx::query(
            "INSERT INTO participants (address) VALUES ($1) ON CONFLICT(address) DO NOTHING",
        )
        .bind(addr_text(address))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// A trainer leased: its capacity, platform (when said) and last seen.
    pub async fn saw_trainer(
        &mut self,
        address: Address,
        capacity: &str,
        platform: Option<&str>,
        now: u64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO participants (address, capacity, platform, last_seen) VALUES ($1, $2, $3, $4)
             ON CONFLICT(address) DO UPDATE SET capacity = excluded.capacity,
             platform = COALESCE(excluded.platform, participants.platform), last_seen = excluded.last_seen",
        )
        .bind(addr_text(address))
        .bind(capacity)
        .bind(platform)
        .bind(to_db(now))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Sets a known participant's platform class.
    pub async fn set_platform(&mut self, address: Address, platform: &str) -> Result<()> {
        sqlx::query("UPDATE participants SET platform = $1 WHERE address = $2")
            .bind(platform)
            .bind(addr_text(address))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Counts one more reported validation.
    pub async fn count_validation(&mut self, address: Address) -> Result<()> {
        sqlx::query(
            "INSERT INTO participants (address, validations) VALUES ($1, 1)
             ON CONFLICT(address) DO UPDATE SET validations = participants.validations + 1",
        )
        .bind(addr_text(address))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Adds decaying points of `kind`.
    pub async fn add_points(
        &mut self,
        decay: &Decay,
        address: Address,
        kind: Points,
        points: f64,
        now: u64,
    ) -> Result<()> {
        self.participant(address).await?;
        let a = addr_text(address);
        let (value, at): (f64, i64) = match kind {
            Points::Train => {
                sqlx::query_as("SELECT train_points, train_at FROM participants WHERE address = $1")
            }
            Points::Drill => {
                sqlx::query_as("SELECT drill_points, drill_at FROM participants WHERE address = $1")
            }
        }
        .bind(&a)
        .fetch_one(self.conn())
        .await?;
        let (value, at) = decay.add(value, to_u64(at), points, now);
        match kind {
            Points::Train => sqlx::query(
                "UPDATE participants SET train_points = $1, train_at = $2 WHERE address = $3",
            ),
            Points::Drill => sqlx::query(
                "UPDATE participants SET drill_points = $1, drill_at = $2 WHERE address = $3",
            ),
        }
        .bind(value)
        .bind(to_db(at))
        .bind(&a)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Adds roles (bits) and, when given, sets the stake.
    pub async fn add_roles(
        &mut self,
        address: Address,
        roles: i64,
        stake: Option<U256>,
    ) -> Result<()> {
        self.participant(address).await?;
        sqlx::query(
            "UPDATE participants SET roles = roles | $1, stake_wei = COALESCE($2, stake_wei) WHERE address = $3",
        )
        .bind(roles)
        .bind(stake.map(|s| s.to_string()))
        .bind(addr_text(address))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Drops the chain roles (a leave request), keeping the owner bit.
    pub async fn drop_chain_roles(&mut self, address: Address) -> Result<()> {
        sqlx::query("UPDATE participants SET roles = roles & $1 WHERE address = $2")
            .bind(ROLE_OWNER)
            .bind(addr_text(address))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The stake was withdrawn.
    pub async fn clear_stake(&mut self, address: Address) -> Result<()> {
        sqlx::query("UPDATE participants SET stake_wei = '0' WHERE address = $1")
            .bind(addr_text(address))
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Credits `amount` (earned and withdrawable); with `accepted`, counts
    /// one more accepted update.
    pub async fn credit(&mut self, address: Address, amount: U256, accepted: bool) -> Result<()> {
        self.participant(address).await?;
        let a = addr_text(address);
        let (earned, credit): (String, String) =
            sqlx::query_as("SELECT earned_wei, credit_wei FROM participants WHERE address = $1")
                .bind(&a)
                .fetch_one(self.conn())
                .await?;
        sqlx::query(
            "UPDATE participants SET earned_wei = $1, credit_wei = $2, accepted = accepted + $3,
             clean = clean + $4 WHERE address = $5",
        )
        .bind(add_wei(&earned, amount))
        .bind(add_wei(&credit, amount))
        .bind(i64::from(accepted))
        .bind(i64::from(accepted))
        .bind(&a)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Counts a rejected update; the clean record restarts.
    pub async fn count_rejection(&mut self, address: Address) -> Result<()> {
        sqlx::query(
            "UPDATE participants SET rejected = rejected + 1, clean = 0 WHERE address = $1",
        )
        .bind(addr_text(address))
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// `amount` was slashed from the stake.
    pub async fn slash(&mut self, address: Address, amount: U256) -> Result<()> {
        self.participant(address).await?;
        let a = addr_text(address);
        let (slashed, stake): (String, String) =
            sqlx::query_as("SELECT slashed_wei, stake_wei FROM participants WHERE address = $1")
                .bind(&a)
                .fetch_one(self.conn())
                .await?;
        sqlx::query("UPDATE participants SET slashed_wei = $1, stake_wei = $2 WHERE address = $3")
            .bind(add_wei(&slashed, amount))
            .bind(sub_wei(&stake, amount))
            .bind(&a)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// `amount` of credit was withdrawn (nothing for a stranger).
    pub async fn withdraw_credit(&mut self, address: Address, amount: U256) -> Result<()> {
        let a = addr_text(address);
        let credit: Option<String> =
            sqlx::query_scalar("SELECT credit_wei FROM participants WHERE address = $1")
                .bind(&a)
                .fetch_optional(self.conn())
                .await?;
        if let Some(credit) = credit {
            sqlx::query("UPDATE participants SET credit_wei = $1 WHERE address = $2")
                .bind(sub_wei(&credit, amount))
                .bind(&a)
                .execute(self.conn())
                .await?;
        }
        Ok(())
    }
}
