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

use crate::error::Result;
use crate::state::AppState;
use crate::store::graph::GraphDelta;
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

/// Adds the buffered counts to the store.
pub async fn flush(state: &AppState) -> Result<()> {
    let p = state.graph.take();
    if p.edges.is_empty() && p.seen.is_empty() {
        return Ok(());
    }
    let delta = GraphDelta {
        nodes: p
            .nodes
            .iter()
            .map(|(id, (label, kind, last))| (id.as_str(), label.as_str(), *kind, *last))
            .collect(),
        edges: p
            .edges
            .iter()
            .map(|((source, target, label), (count, last))| {
                (source.as_str(), target.as_str(), *label, *count, *last)
            })
            .collect(),
        seen: p.seen.iter().map(|(a, last)| (*a, *last)).collect(),
    };
    state.store.add_graph(&delta).await
}

/// The graph as stored (what is still buffered is left for the next flush).
pub async fn read(state: &AppState) -> Result<Graph> {
    let nodes: Vec<GraphNode> = state
        .store
        .graph_nodes()
        .await?
        .into_iter()
        .map(|r| {
            Ok(GraphNode {
                last_seen: r.last_seen(),
                kind: parse_word(&r.kind)?,
                id: r.id,
                label: r.label,
            })
        })
        .collect::<Result<_>>()?;
    let edges: Vec<GraphEdge> = state
        .store
        .graph_edges()
        .await?
        .into_iter()
        .map(|r| GraphEdge {
            id: format!("{}->{}:{}", r.source, r.target, r.label),
            source: r.source,
            target: r.target,
            label: r.label,
            count: crate::store::to_u64(r.count),
            last_seen: crate::store::to_u64(r.last_seen),
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
