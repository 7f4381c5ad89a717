-- PostgreSQL form of ../sqlite/0002_guards.sql: the same tables, columns and order;
-- BIGINT for SQLite's INTEGER, DOUBLE PRECISION for REAL, BYTEA for BLOB,
-- and byte-order ("C") collation so text sorts as it does in SQLite.
-- Issue 7: why an update went to validators, the guards' measurements, and
-- the clean record that drives adaptive replication.
ALTER TABLE updates ADD COLUMN reason TEXT COLLATE "C" NOT NULL DEFAULT 'none';
ALTER TABLE updates ADD COLUMN duplicate_of TEXT COLLATE "C";      -- update index with the same hash (known-hash)
ALTER TABLE updates ADD COLUMN norm DOUBLE PRECISION;              -- L2 norm of the delta
ALTER TABLE updates ADD COLUMN probe_gain DOUBLE PRECISION;        -- probe loss of base minus probe loss of base + delta
ALTER TABLE participants ADD COLUMN clean BIGINT NOT NULL DEFAULT 0; -- accepted since the last rejection
ALTER TABLE chain_updates ADD COLUMN seen_at BIGINT NOT NULL DEFAULT 0; -- unix seconds the event was applied
