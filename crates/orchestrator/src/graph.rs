//! `/graph`: who talks to whom. Nodes are the orchestrator, the contract and
//! every address seen; edges count API messages (lease, blob, update,
//! validation) and chain calls seen as events (createJob, submitUpdate,
//! validateUpdate, challenge, commitCheckpoint, withdrawUnusedFunds).
//!
//! Counting happens in memory ([`GraphBuffer`], no database write on the
//! request path) and is added to SQLite on every driver tick and on
//! shutdown; a crash loses at most the counts of the last tick.

use std::collections::HashMap;
use std::sync::Mutex;

use alloy_primitives::Address;
use funetun_core::api::{Graph, GraphEdge, GraphNode};
use funetun_core::protocol::NodeKind;
use sqlx::Row;

use crate::error::Result;
use crate::state::AppState;
use crate::util::{addr_text, now_secs, parse_word, short};

/// Node id of the orchestrator.
pub const ORCHESTRATOR: &str = "orchestrator";
/// Node id of the contract.
pub const CONTRACT: &str = "contract";

/// A node: a fixed id or an address with its kind.
#[derive(Clone, Copy, Debug)]
pub enum Node {
    /// This orchestrator.
    Orchestrator,
    /// The contract.
    Contract,
    /// A participant, with the kind it acted as.
    Peer(Address, NodeKind),
}

impl Node {
    fn parts(self) -> (String, String, &'static str) {
        match self {
            Node::Orchestrator => (
                ORCHESTRATOR.into(),
                ORCHESTRATOR.into(),
                NodeKind::Orchestrator.as_str(),
            ),
            Node::Contract => (
                CONTRACT.into(),
                "JobManager".into(),
                NodeKind::Contract.as_str(),
            ),
            Node::Peer(a, kind) => (addr_text(a), short(a), kind.as_str()),
        }
    }
}

#[derive(Debug, Default)]
struct Pending {
    nodes: HashMap<String, (String, &'static str, u64)>,
    edges: HashMap<(String, String, &'static str), (u64, u64)>,
    seen: HashMap<Address, u64>,
}

/// Message counts not yet in SQLite.
#[derive(Debug, Default)]
pub struct GraphBuffer {
    pending: Mutex<Pending>,
}

impl GraphBuffer {
    /// Counts one `label` message from `source` to `target` at `now`.
    pub fn record(&self, source: Node, target: Node, label: &'static str, now: u64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (sid, slabel, skind) = source.parts();
        let (tid, tlabel, tkind) = target.parts();
        for node in [source, target] {
            if let Node::Peer(addr, _) = node {
                let e = p.seen.entry(addr).or_default();
                *e = (*e).max(now);
            }
        }
        p.nodes.entry(sid.clone()).or_insert((slabel, skind, 0)).2 = now;
        p.nodes.entry(tid.clone()).or_insert((tlabel, tkind, 0)).2 = now;
        let e = p.edges.entry((sid, tid, label)).or_default();
        e.0 += 1;
        e.1 = now;
    }

    fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Adds the buffered counts to SQLite.
pub async fn flush(state: &AppState) -> Result<()> {
    let p = state.graph.take();
    if p.edges.is_empty() && p.seen.is_empty() {
        return Ok(());
    }
    let mut tx = state.db.begin().await?;
    for (id, (label, kind, last)) in &p.nodes {
        sqlx::query(
            "INSERT INTO graph_nodes (id, label, kind, last_seen) VALUES (?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
        )
        .bind(id)
        .bind(label)
        .bind(*kind)
        .bind(*last as i64)
        .execute(&mut *tx)
        .await?;
    }
    for ((source, target, label), (count, last)) in &p.edges {
        sqlx::query(
            "INSERT INTO graph_edges (source, target, label, count, last_seen) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT(source, target, label) DO UPDATE SET count = count + excluded.count,
             last_seen = max(last_seen, excluded.last_seen)",
        )
        .bind(source)
        .bind(target)
        .bind(*label)
        .bind(*count as i64)
        .bind(*last as i64)
        .execute(&mut *tx)
        .await?;
    }
    for (address, last) in &p.seen {
        sqlx::query(
            "INSERT INTO participants (address, last_seen) VALUES (?, ?)
             ON CONFLICT(address) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
        )
        .bind(addr_text(*address))
        .bind(*last as i64)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The graph as stored (plus what is still buffered is left for the next flush).
pub async fn read(state: &AppState) -> Result<Graph> {
    let nodes: Vec<GraphNode> =
        sqlx::query("SELECT id, label, kind, last_seen FROM graph_nodes ORDER BY id")
            .fetch_all(&state.db.read)
            .await?
            .into_iter()
            .map(|r| {
                Ok(GraphNode {
                    id: r.get(0),
                    label: r.get(1),
                    kind: parse_word(r.get::<&str, _>(2))?,
                    last_seen: r.get::<i64, _>(3) as u64,
                })
            })
            .collect::<Result<_>>()?;
    let edges: Vec<GraphEdge> = sqlx::query(
        "SELECT source, target, label, count, last_seen FROM graph_edges ORDER BY source, target, label",
    )
    .fetch_all(&state.db.read)
    .await?
    .into_iter()
    .map(|r| {
        let (source, target, label): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        GraphEdge {
            id: format!("{source}->{target}:{label}"),
            source,
            target,
            label,
            count: r.get::<i64, _>(3) as u64,
            last_seen: r.get::<i64, _>(4) as u64,
        }
    })
    .collect();
    let updated_at = nodes
        .iter()
        .map(|n| n.last_seen)
        .chain(edges.iter().map(|e| e.last_seen))
        .max()
        .unwrap_or_else(now_secs);
    Ok(Graph {
        nodes,
        edges,
        updated_at,
    })
}
