-- PostgreSQL form of ../sqlite/0010_compute_dispatch.sql: the same indexes.
-- Dispatch of compute replicas at scale (docs/tasks.md, "Dispatch"):
-- whether a worker already has a replica of a task is a probe of this
-- index, not a scan of every replica the worker ever ran; lapsing leases
-- reads only the live ones.
CREATE INDEX compute_replicas_task_worker ON compute_replicas (task_id, worker);
CREATE INDEX compute_replicas_live ON compute_replicas (status, expires_at);
