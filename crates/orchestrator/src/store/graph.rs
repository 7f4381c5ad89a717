//! The `graph_nodes` and `graph_edges` tables (and `participants.last_seen`,
//! which the graph's message counts also move).

use alloy_primitives::Address;

use super::{Store, to_db, to_u64};
use crate::error::Result;
use crate::util::addr_text;

/// A stored node.
#[derive(Debug, sqlx::FromRow)]
pub struct NodeRow {
    /// Node id (an address or a fixed name).
    pub id: String,
    /// Label for people.
    pub label: String,
    /// Kind (`trainer`, `contract`, …).
    pub kind: String,
    /// Unix second it was last seen.
    pub last_seen: i64,
}

/// A stored edge.
#[derive(Debug, sqlx::FromRow)]
pub struct EdgeRow {
    /// Source node id.
    pub source: String,
    /// Target node id.
    pub target: String,
    /// Message label.
    pub label: String,
    /// Messages counted.
    pub count: i64,
    /// Unix second of the last one.
    pub last_seen: i64,
}

/// Counts to add in one flush.
#[derive(Debug, Default)]
pub struct GraphDelta<'a> {
    /// `(id, label, kind, last_seen)` of nodes.
    pub nodes: Vec<(&'a str, &'a str, &'a str, u64)>,
    /// `(source, target, label, count, last_seen)` of edges.
    pub edges: Vec<(&'a str, &'a str, &'a str, u64, u64)>,
    /// `(address, last_seen)` of participants seen.
    pub seen: Vec<(Address, u64)>,
}

impl Store {
    /// Adds buffered counts, in one transaction.
    pub async fn add_graph(&self, delta: &GraphDelta<'_>) -> Result<()> {
        let mut tx = self.begin().await?;
        for (id, label, kind, last) in &delta.nodes {
            sqlx::query(
                "INSERT INTO graph_nodes (id, label, kind, last_seen) VALUES ($1, $2, $3, $4)
                 ON CONFLICT(id) DO UPDATE SET
                 last_seen = CASE WHEN excluded.last_seen > graph_nodes.last_seen THEN excluded.last_seen ELSE graph_nodes.last_seen END",
            )
            .bind(id)
            .bind(label)
            .bind(kind)
            .bind(to_db(*last))
            .execute(tx.conn())
            .await?;
        }
        for (source, target, label, count, last) in &delta.edges {
            sqlx::query(
                "INSERT INTO graph_edges (source, target, label, count, last_seen) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT(source, target, label) DO UPDATE SET count = graph_edges.count + excluded.count,
                 last_seen = CASE WHEN excluded.last_seen > graph_edges.last_seen THEN excluded.last_seen ELSE graph_edges.last_seen END",
            )
            .bind(source)
            .bind(target)
            .bind(label)
            .bind(to_db(*count))
            .bind(to_db(*last))
            .execute(tx.conn())
            .await?;
        }
        for (address, last) in &delta.seen {
            sqlx::query(
                "INSERT INTO participants (address, last_seen) VALUES ($1, $2)
                 ON CONFLICT(address) DO UPDATE SET
                 last_seen = CASE WHEN excluded.last_seen > participants.last_seen THEN excluded.last_seen ELSE participants.last_seen END",
            )
            .bind(addr_text(*address))
            .bind(to_db(*last))
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await
    }

    /// Every node, by id.
    pub async fn graph_nodes(&self) -> Result<Vec<NodeRow>> {
        Ok(
            sqlx::query_as("SELECT id, label, kind, last_seen FROM graph_nodes ORDER BY id")
                .fetch_all(&self.read)
                .await?,
        )
    }

    /// Every edge, by source, target and label.
    pub async fn graph_edges(&self) -> Result<Vec<EdgeRow>> {
        Ok(sqlx::query_as(
            "SELECT source, target, label, count, last_seen FROM graph_edges
             ORDER BY source, target, label",
        )
        .fetch_all(&self.read)
        .await?)
    }
}

impl NodeRow {
    /// Last seen as unix seconds.
    pub fn last_seen(&self) -> u64 {
        to_u64(self.last_seen)
    }
}
