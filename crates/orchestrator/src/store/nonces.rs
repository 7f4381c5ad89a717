//! The `nonces` table: nonces of signed requests still inside the timestamp
//! window, saved on a clean shutdown and loaded (then cleared) on start.

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
