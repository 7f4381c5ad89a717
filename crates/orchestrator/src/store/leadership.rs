//! The `leadership` row: which replica runs the chain watcher and the round
//! driver, until when, and the fencing token of its term (docs/deploy.md,
//! "Replicas").
//!
//! Times are the database's clock in milliseconds, so replicas whose clocks
//! disagree still agree on when a lease lapsed.

use super::{Backend, Store, StoreTx, to_db};
use crate::error::{Error, Result};

/// The database's clock in Unix milliseconds, as SQL.
fn now_ms(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
    }
}

/// Who holds the lease, as `/healthz` shows it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Lease {
    /// The holder: a replica's name and instance (`replica-1/3f9a…`).
    pub holder: String,
    /// The fencing token of its term.
    pub token: i64,
    /// Milliseconds until the lease lapses (negative once it has).
    pub remaining_ms: i64,
}

impl Store {
    /// Takes the lease for `holder` for `ttl_ms` when it is free or lapsed,
    /// or renews it when `holder` has it. Returns the fencing token of the
    /// term when `holder` leads after the call, `None` when another replica
    /// does. A lease taken over from another holder, or retaken after it
    /// lapsed, starts a new term: the token goes up by one. With `seize`,
    /// the lease is taken whoever holds it (a SQLite orchestrator starting:
    /// its file has one process, so a holder is a dead predecessor, and the
    /// new term fences it out should it be alive after all).
    pub async fn campaign(&self, holder: &str, ttl_ms: u64, seize: bool) -> Result<Option<i64>> {
        let now = now_ms(self.backend);
        let sql = format!(
            "INSERT INTO leadership (id, holder, token, expires_at) VALUES (1, $1, 1, {now} + $2)
             ON CONFLICT (id) DO UPDATE SET
               token = CASE WHEN leadership.holder = $1 AND leadership.expires_at > {now}
                            THEN leadership.token ELSE leadership.token + 1 END,
               holder = $1,
               expires_at = {now} + $2
             WHERE leadership.holder = $1 OR leadership.expires_at <= {now} OR $3 = 1
             RETURNING token"
        );
        let mut tx = self.begin_unfenced().await?;
        let token: Option<i64> = sqlx::query_scalar(&sql)
            .bind(holder)
            .bind(to_db(ttl_ms))
            .bind(i64::from(seize))
            .fetch_optional(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// Gives the lease up at once when `holder` has it (a clean shutdown),
    /// so another replica need not wait for it to lapse.
    pub async fn resign(&self, holder: &str) -> Result<()> {
        let mut tx = self.begin_unfenced().await?;
        sqlx::query("UPDATE leadership SET expires_at = 0 WHERE id = 1 AND holder = $1")
            .bind(holder)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// The lease as stored, if any replica ever held it.
    pub async fn lease(&self) -> Result<Option<Lease>> {
        let sql = format!(
            "SELECT holder, token, expires_at - {} AS remaining_ms FROM leadership WHERE id = 1",
            now_ms(self.backend)
        );
        Ok(sqlx::query_as(&sql).fetch_optional(&self.read).await?)
    }
}

impl StoreTx {
    /// Refuses the transaction unless the lease's token is still `token`
    /// (read under the write lock, so no other term's write can come
    /// between this check and the commit).
    pub(super) async fn check_fence(&mut self, token: i64) -> Result<()> {
        let current: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, token FROM leadership WHERE id = 1")
                .fetch_optional(self.conn())
                .await?;
        match current {
            Some((_, t)) if t == token => Ok(()),
            Some((holder, t)) => Err(Error::Deposed(format!(
                "term {token} ended: {holder} leads in term {t}"
            ))),
            None => Err(Error::Deposed(format!(
                "term {token} ended: no replica holds the lease"
            ))),
        }
    }
}
