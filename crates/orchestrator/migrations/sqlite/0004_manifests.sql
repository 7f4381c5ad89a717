-- Issue 17: every checkpoint after θ₀ is committed with the hash of its
-- manifest (what it was built from), and a round's inputs record the
-- checkpoint each was trained on (a stale-synchronous job's may be older
-- than the round's own; NULL in rows from before: the round itself).
ALTER TABLE rounds ADD COLUMN manifest_hash TEXT;
ALTER TABLE round_inputs ADD COLUMN base_round INTEGER;
CREATE INDEX round_inputs_by_update ON round_inputs (job_id, update_index);
