-- PostgreSQL form of ../sqlite/0008_compute.sql: the same tables, columns and order;
-- BIGINT for SQLite's INTEGER, and byte-order ("C") collation so text sorts as it does in SQLite.
-- Generic verified compute: WebAssembly tasks (docs/tasks.md).
-- A task, known by its persistent id; `wanted` is how many replicas it has
-- been given so far (target_nresults, raised when replicas disagree or
-- lapse); `adaptive` is the owner's choice of adaptive replication and
-- `adapted` whether it ran the task once; `result` is the canonical run's
-- RunResult as JSON.
CREATE TABLE compute_tasks (
    task_id           TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    owner             TEXT COLLATE "C" NOT NULL,
    module            TEXT COLLATE "C" NOT NULL,
    validator         TEXT COLLATE "C",
    input             TEXT COLLATE "C" NOT NULL,
    min_quorum        BIGINT NOT NULL,
    target_nresults   BIGINT NOT NULL,
    max_error_results BIGINT NOT NULL,
    max_total_results BIGINT NOT NULL,
    adaptive          BIGINT NOT NULL,
    adapted           BIGINT NOT NULL,
    fuel              BIGINT NOT NULL,
    wanted            BIGINT NOT NULL,
    status            TEXT COLLATE "C" NOT NULL,
    result            TEXT COLLATE "C",
    reason            TEXT COLLATE "C",
    created_at        BIGINT NOT NULL,
    decided_at        BIGINT
);
CREATE INDEX compute_tasks_status ON compute_tasks (status, created_at, task_id);
-- One run of a task by one worker (never two replicas of a task to the
-- same worker).
CREATE TABLE compute_replicas (
    task_id     TEXT COLLATE "C" NOT NULL,
    replica     BIGINT NOT NULL,
    worker      TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    leased_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    result      TEXT COLLATE "C",
    digest      TEXT COLLATE "C",
    reported_at BIGINT,
    PRIMARY KEY (task_id, replica)
);
CREATE INDEX compute_replicas_worker ON compute_replicas (worker, status);
