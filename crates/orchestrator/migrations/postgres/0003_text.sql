-- PostgreSQL form of ../sqlite/0003_text.sql: the same tables, columns and order;
-- BIGINT for SQLite's INTEGER, DOUBLE PRECISION for REAL, BYTEA for BLOB,
-- and byte-order ("C") collation so text sorts as it does in SQLite.
-- Issue 15: a text job's checkpoints come with a short sample of the text
-- they write.
ALTER TABLE rounds ADD COLUMN sample TEXT COLLATE "C";
