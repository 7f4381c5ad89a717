-- PostgreSQL form of ../sqlite/0006_retention.sql: the same tables, columns and order;
-- BIGINT for SQLite's INTEGER, DOUBLE PRECISION for REAL, BYTEA for BLOB,
-- and byte-order ("C") collation so text sorts as it does in SQLite.
-- Retention: the delta of a rejected or void update is deleted once its
-- round closed (its hash stays here and on-chain); `blob_pruned` marks the
-- updates whose bytes are gone.
ALTER TABLE updates ADD COLUMN blob_pruned BIGINT NOT NULL DEFAULT 0;
CREATE INDEX updates_by_hash ON updates (update_hash);
