//! Leader election among replicas on one database: exactly one replica at a
//! time runs the chain watcher and the round driver; every replica serves
//! the API.
//!
//! The lease is a row of the database ([`crate::store::leadership`]): its
//! holder, its expiry on the database's clock, and a fencing token that
//! goes up whenever a new term begins. [`campaign`] runs on every replica:
//! every fifth of [`Config::leader_ttl`] it renews the lease it holds or
//! takes one that lapsed. The driver runs only while [`Leadership::term`]
//! names a token, inside [`crate::store::fenced`], so each of its write
//! transactions is refused once a successor's term has begun.
//!
//! A leader that cannot renew (its database is unreachable) stops leading
//! once the lease may have lapsed, before anyone else can take it over. A
//! replica that stops cleanly gives the lease up, so the next one leads
//! within a renewal interval; one that dies is replaced once its lease
//! lapses, within `leader_ttl` plus one interval (6 s by default). A SQLite
//! orchestrator is one process: on start it seizes the lease at once.
//!
//! [`Config::leader_ttl`]: crate::Config::leader_ttl

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::state::AppState;
use crate::store::Backend;
use crate::util::now_secs;

/// How often expired nonces and idle rate buckets are deleted from a
/// database shared by replicas.
const CLEANUP_EVERY: Duration = Duration::from_secs(30);

/// This replica's part in the election.
#[derive(Debug)]
pub struct Leadership {
    name: String,
    holder: String,
    term: watch::Sender<Option<i64>>,
}

impl Leadership {
    /// A replica named `name`, not leading. Its holder id adds a random
    /// instance tag, so a restarted replica starts a new term.
    pub fn new(name: &str) -> Self {
        use rand_core::{OsRng, TryRngCore};
        let instance = OsRng.try_next_u32().unwrap_or(std::process::id());
        Leadership {
            name: name.to_string(),
            holder: format!("{name}/{instance:08x}"),
            term: watch::Sender::new(None),
        }
    }

    /// The replica's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The id this replica holds the lease under (`name/instance`).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fencing token of the current term when this replica leads.
    pub fn term(&self) -> Option<i64> {
        *self.term.borrow()
    }

    /// Whether this replica leads now.
    pub fn leading(&self) -> bool {
        self.term().is_some()
    }

    /// Follows the term (the driver waits on it).
    pub fn subscribe(&self) -> watch::Receiver<Option<i64>> {
        self.term.subscribe()
    }

    fn set(&self, term: Option<i64>) {
        self.term.send_if_modified(|t| {
            let changed = *t != term;
            *t = term;
            changed
        });
    }
}

/// Takes or renews the lease until `shutdown`, then gives it up. Between
/// renewals a follower flushes its `/graph` counters (the leader's driver
/// does at every step); the leader of a PostgreSQL deployment deletes the
/// shared nonces and rate buckets nobody needs any more.
pub async fn campaign(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let me = &state.leadership;
    let ttl = state.config.leader_ttl.max(Duration::from_millis(500));
    let renew = ttl / 5;
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let mut renewed = Instant::now();
    let mut cleaned = Instant::now();
    let mut seize = state.store.backend() == Backend::Sqlite;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match state.store.campaign(me.holder(), ttl_ms, seize).await {
            Ok(Some(token)) => {
                seize = false;
                renewed = Instant::now();
                if me.term() != Some(token) {
                    tracing::info!(
                        replica = me.name(),
                        term = token,
                        "leading: this replica runs the chain watcher and the round driver"
                    );
                    me.set(Some(token));
                }
            }
            Ok(None) => {
                if me.leading() {
                    tracing::warn!(
                        replica = me.name(),
                        "deposed: another replica holds the lease"
                    );
                }
                me.set(None);
            }
            Err(e) => {
                if me.leading() && renewed.elapsed() + renew >= ttl {
                    tracing::warn!(replica = me.name(), error = %e, "cannot renew the lease before it may lapse; stepping down");
                    me.set(None);
                } else {
                    tracing::warn!(replica = me.name(), error = %e, "cannot reach the database for the lease; retrying");
                }
            }
        }
        if !me.leading()
            && let Err(e) = crate::graph::flush(&state).await
        {
            tracing::debug!(error = %e, "cannot flush the graph counters; retrying");
        }
        if me.leading()
            && state.store.backend() == Backend::Postgres
            && cleaned.elapsed() >= CLEANUP_EVERY
        {
            cleaned = Instant::now();
            if let Err(e) = state.store.forget_spent_nonces(now_secs()).await {
                tracing::debug!(error = %e, "cannot delete spent nonces; retrying later");
            }
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            _ = tokio::time::sleep(renew) => {}
        }
    }
    if me.leading() {
        me.set(None);
        if let Err(e) = state.store.resign(me.holder()).await {
            tracing::warn!(error = %e, "cannot give the lease up; it lapses by itself");
        }
    }
}
