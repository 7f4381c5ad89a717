//! What `/healthz` reports: each dependency's state, so an outage reads as
//! one, not as a stale block height.
//!
//! The chain's state is what the orchestrator last saw of it: the watcher
//! records every read of the head, and `/healthz` reads the head itself
//! when the last good read is older than [`FRESH`]. The database is asked
//! one small query per call. Each probe gives up after [`PROBE_TIMEOUT`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use funetun_core::api::{DependencyHealth, Health};

use crate::state::AppState;

/// A good chain read younger than this is not repeated for `/healthz`.
pub const FRESH: Duration = Duration::from_secs(2);

/// Longest a `/healthz` probe of one dependency may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The orchestrator's last view of its chain.
#[derive(Debug, Default)]
pub struct ChainSeen {
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    ok_at: Option<Instant>,
    head: Option<u64>,
    error: Option<String>,
}

impl ChainSeen {
    /// A read of the chain's head succeeded.
    pub fn ok(&self, head: u64) {
        let mut s = self.lock();
        s.ok_at = Some(Instant::now());
        s.head = Some(head);
        s.error = None;
    }

    /// A read of the chain failed with `error`.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        self.lock().error = Some(error.to_string());
    }

    fn fresh(&self) -> bool {
        let s = self.lock();
        s.error.is_none() && s.ok_at.is_some_and(|t| t.elapsed() < FRESH)
    }

    fn report(&self) -> DependencyHealth {
        let s = self.lock();
        DependencyHealth {
            ok: s.error.is_none() && s.ok_at.is_some(),
            head: s.head,
            seen_secs_ago: s.ok_at.map(|t| t.elapsed().as_secs_f64()),
            error: s.error.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Probes the chain (unless seen fresh) and the database, and reports both.
pub async fn check(state: &AppState) -> Health {
    if !state.chain_seen.fresh() {
        match tokio::time::timeout(PROBE_TIMEOUT, state.ledger.block_number()).await {
            Ok(Ok(head)) => state.chain_seen.ok(head),
            Ok(Err(e)) => state.chain_seen.failed(&e),
            Err(_) => state
                .chain_seen
                .failed(&format!("no answer in {} s", PROBE_TIMEOUT.as_secs())),
        }
    }
    let chain = state.chain_seen.report();
    let (database, last_block) =
        match tokio::time::timeout(PROBE_TIMEOUT, state.store.last_block()).await {
            Ok(Ok(last)) => (DependencyHealth::up(), last),
            Ok(Err(e)) => (DependencyHealth::down(e.to_string()), None),
            Err(_) => (
                DependencyHealth::down(format!("no answer in {} s", PROBE_TIMEOUT.as_secs())),
                None,
            ),
        };
    Health {
        ok: chain.ok && database.ok,
        leader: state.address,
        contract: state.config.contract,
        last_block,
        chain,
        database,
        replica: state.config.replica.clone(),
        leading: state.leadership.leading(),
    }
}
