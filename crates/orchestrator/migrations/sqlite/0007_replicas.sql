-- Replicas: several orchestrator processes on one database.
-- `leadership` holds the one lease on the chain watcher and the round
-- driver: who holds it, until when (milliseconds of the database's clock)
-- and its fencing token, raised at every change of holder. Every write
-- transaction of a leader's term re-reads the token under the write lock.
CREATE TABLE leadership (
    id         INTEGER PRIMARY KEY NOT NULL,
    holder     TEXT NOT NULL,
    token      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
-- Per-address token buckets of the rate limit, shared by the replicas of a
-- PostgreSQL deployment (a SQLite orchestrator keeps them in memory).
CREATE TABLE rate_buckets (
    address TEXT PRIMARY KEY NOT NULL,
    tokens  REAL NOT NULL,
    at_ms   INTEGER NOT NULL
);
-- The replica whose term closed the round.
ALTER TABLE rounds ADD COLUMN led_by TEXT;
