-- Retention: the delta of a rejected or void update is deleted once its
-- round closed (its hash stays here and on-chain); `blob_pruned` marks the
-- updates whose bytes are gone.
ALTER TABLE updates ADD COLUMN blob_pruned INTEGER NOT NULL DEFAULT 0;
CREATE INDEX updates_by_hash ON updates (update_hash);
