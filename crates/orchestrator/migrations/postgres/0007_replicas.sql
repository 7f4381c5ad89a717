-- PostgreSQL form of ../sqlite/0007_replicas.sql: the same tables, columns and order;
-- BIGINT for SQLite's INTEGER, DOUBLE PRECISION for REAL, BYTEA for BLOB,
-- and byte-order ("C") collation so text sorts as it does in SQLite.
-- Replicas: several orchestrator processes on one database.
-- `leadership` holds the one lease on the chain watcher and the round
-- driver: who holds it, until when (milliseconds of the database's clock)
-- and its fencing token, raised at every change of holder. Every write
-- transaction of a leader's term re-reads the token under the write lock.
CREATE TABLE leadership (
    id         BIGINT PRIMARY KEY NOT NULL,
    holder     TEXT COLLATE "C" NOT NULL,
    token      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
-- Per-address token buckets of the rate limit, shared by the replicas of a
-- PostgreSQL deployment (a SQLite orchestrator keeps them in memory).
CREATE TABLE rate_buckets (
    address TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    tokens  DOUBLE PRECISION NOT NULL,
    at_ms   BIGINT NOT NULL
);
-- The replica whose term closed the round.
ALTER TABLE rounds ADD COLUMN led_by TEXT COLLATE "C";
