//! The `nonces` table: nonces of signed requests still inside the timestamp
//! window. SQLite (one process, nonces in memory): saved on a clean
//! shutdown and loaded (then cleared) on start. PostgreSQL (replicas):
//! recorded by every request, with the `rate_buckets`, in one statement
//! ([`Store::admit`]).
//!
//! That statement commits with `synchronous_commit` off: it does not wait
//! for the WAL flush, which would cost a disk sync per request. PostgreSQL
//! applies such commits in order and loses at most the last fraction of a
//! second of them if the server itself crashes; a request whose nonce was
//! lost that way could be replayed once, within its timestamp window, and
//! every mutating endpoint is idempotent, so the replay changes nothing
//! (the same reasoning as a SQLite orchestrator's nonces after a crash).

use alloy_primitives::Address;

use super::{Store, to_db, to_u64};
use crate::error::Result;
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
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    /// Tokens added per second.
    pub rate: f64,
    /// Most tokens saved up.
    pub burst: f64,
}

impl Store {
    /// The rate limit and the nonce check of one signed request, against
    /// state every replica shares (PostgreSQL only), in one statement: take
    /// a token from `address`'s bucket (refilled at `bucket.rate` since its
    /// last use, on the replica's millisecond clock `now_ms`), then, if one
    /// was left, record `nonce` until `expires_at` unless it is recorded
    /// and still live at `now`.
    pub async fn admit(
        &self,
        address: Address,
        nonce: &str,
        expires_at: u64,
        now: u64,
        now_ms: u64,
        bucket: Bucket,
    ) -> Result<Admission> {
        let (allowed, fresh): (i64, i64) = sqlx::query_as(
            "WITH r AS (
               INSERT INTO rate_buckets AS b (address, tokens, at_ms)
               VALUES ($1, CAST($4 AS DOUBLE PRECISION) - 1, $6)
               ON CONFLICT (address) DO UPDATE SET
                 tokens = LEAST(CAST($4 AS DOUBLE PRECISION),
                                b.tokens + GREATEST($6 - b.at_ms, 0) * CAST($5 AS DOUBLE PRECISION) / 1000.0) - 1,
                 at_ms = GREATEST(b.at_ms, $6)
               WHERE LEAST(CAST($4 AS DOUBLE PRECISION),
                           b.tokens + GREATEST($6 - b.at_ms, 0) * CAST($5 AS DOUBLE PRECISION) / 1000.0) >= 1
               RETURNING 1
             ), n AS (
               INSERT INTO nonces (address, nonce, expires_at)
               SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM r)
               ON CONFLICT (address, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at
               WHERE nonces.expires_at <= $7
               RETURNING 1
             )
             SELECT (SELECT COUNT(*) FROM r), (SELECT COUNT(*) FROM n)",
        )
        .bind(addr_text(address))
        .bind(nonce)
        .bind(to_db(expires_at))
        .bind(bucket.burst)
        .bind(bucket.rate)
        .bind(to_db(now_ms))
        .bind(to_db(now))
        .fetch_one(self.admit.as_ref().unwrap_or(&self.write))
        .await?;
        Ok(match (allowed, fresh) {
            (0, _) => Admission::RateLimited,
            (_, 0) => Admission::Replayed,
            _ => Admission::Admitted,
        })
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
