-- Issue 7: why an update went to validators, the guards' measurements, and
-- the clean record that drives adaptive replication.
ALTER TABLE updates ADD COLUMN reason TEXT NOT NULL DEFAULT 'none';
ALTER TABLE updates ADD COLUMN duplicate_of TEXT;      -- update index with the same hash (known-hash)
ALTER TABLE updates ADD COLUMN norm REAL;              -- L2 norm of the delta
ALTER TABLE updates ADD COLUMN probe_gain REAL;        -- probe loss of base minus probe loss of base + delta
ALTER TABLE participants ADD COLUMN clean INTEGER NOT NULL DEFAULT 0; -- accepted since the last rejection
ALTER TABLE chain_updates ADD COLUMN seen_at INTEGER NOT NULL DEFAULT 0; -- unix seconds the event was applied
