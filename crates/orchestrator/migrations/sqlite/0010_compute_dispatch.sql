-- Dispatch of compute replicas at scale (docs/tasks.md, "Dispatch"):
-- whether a worker already has a replica of a task is a probe of this
-- index, not a scan of every replica the worker ever ran; lapsing leases
-- reads only the live ones.
CREATE INDEX compute_replicas_task_worker ON compute_replicas (task_id, worker);
CREATE INDEX compute_replicas_live ON compute_replicas (status, expires_at);
-- Drilling (docs/tasks.md, "Drilling"): a drill is a task the orchestrator
-- gives a worker on joining and periodically; drill_ops is its known
-- operation count (0 for an owner's task). Open drills are issued before
-- other work, found through the last index.
ALTER TABLE compute_tasks ADD COLUMN drill_ops INTEGER NOT NULL DEFAULT 0;
CREATE INDEX compute_tasks_drills ON compute_tasks (status, drill_ops);
-- Reputation is counted in ut from here on (docs/reputation.md); points
-- counted in steps before cannot be converted (a step's operations depend
-- on its job), so they start again from zero.
UPDATE participants SET train_points = 0, drill_points = 0;
