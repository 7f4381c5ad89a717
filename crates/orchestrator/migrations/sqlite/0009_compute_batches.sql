-- Funded compute tasks (docs/tasks.md, "Money"): the on-chain task batch
-- that pays a task's results, whether its money is settled on-chain
-- (`settleComputeTask` sent, or nothing was owed) and the settling transaction.
-- An unsettled funded task holds back reward × max_total_results of its
-- batch's deposit from new submissions.
ALTER TABLE compute_tasks ADD COLUMN batch_id INTEGER;
ALTER TABLE compute_tasks ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE compute_tasks ADD COLUMN settle_tx TEXT;
CREATE INDEX compute_tasks_batch ON compute_tasks (batch_id, settled);
