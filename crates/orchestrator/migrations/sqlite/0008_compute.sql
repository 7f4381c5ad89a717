-- Generic verified compute: WebAssembly tasks (docs/tasks.md).
-- A task, known by its persistent id; `wanted` is how many replicas it has
-- been given so far (target_nresults, raised when replicas disagree or
-- lapse); `adaptive` is the owner's choice of adaptive replication and
-- `adapted` whether it ran the task once; `result` is the canonical run's
-- RunResult as JSON.
CREATE TABLE compute_tasks (
    task_id           TEXT PRIMARY KEY NOT NULL,
    owner             TEXT NOT NULL,
    module            TEXT NOT NULL,
    validator         TEXT,
    input             TEXT NOT NULL,
    min_quorum        INTEGER NOT NULL,
    target_nresults   INTEGER NOT NULL,
    max_error_results INTEGER NOT NULL,
    max_total_results INTEGER NOT NULL,
    adaptive          INTEGER NOT NULL,
    adapted           INTEGER NOT NULL,
    fuel              INTEGER NOT NULL,
    wanted            INTEGER NOT NULL,
    status            TEXT NOT NULL,
    result            TEXT,
    reason            TEXT,
    created_at        INTEGER NOT NULL,
    decided_at        INTEGER
);
CREATE INDEX compute_tasks_status ON compute_tasks (status, created_at, task_id);
-- One run of a task by one worker (never two replicas of a task to the
-- same worker).
CREATE TABLE compute_replicas (
    task_id     TEXT NOT NULL,
    replica     INTEGER NOT NULL,
    worker      TEXT NOT NULL,
    status      TEXT NOT NULL,
    leased_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    result      TEXT,
    digest      TEXT,
    reported_at INTEGER,
    PRIMARY KEY (task_id, replica)
);
CREATE INDEX compute_replicas_worker ON compute_replicas (worker, status);
