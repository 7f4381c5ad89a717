//! The `meta` table: key/value settings.

use super::{Store, StoreTx};
use crate::error::Result;

/// Meta key of the last processed block.
pub const LAST_BLOCK: &str = "last_block";
/// Meta key of the leader address the database belongs to.
pub const LEADER: &str = "leader";
/// Meta key of the contract the database follows.
pub const CONTRACT: &str = "contract";

const GET: &str = "SELECT value FROM meta WHERE key = $1";
const SET: &str = "INSERT INTO meta (key, value) VALUES ($1, $2)
    ON CONFLICT(key) DO UPDATE SET value = excluded.value";

impl Store {
    /// Reads a meta value.
    pub async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(GET)
            .bind(key)
            .fetch_optional(&self.read)
            .await?)
    }

    /// The last processed block, if any.
    pub async fn last_block(&self) -> Result<Option<u64>> {
        Ok(self.meta(LAST_BLOCK).await?.and_then(|v| v.parse().ok()))
    }
}

impl StoreTx {
    /// Writes a meta value.
    pub async fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        sqlx::query(SET)
            .bind(key)
            .bind(value)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
