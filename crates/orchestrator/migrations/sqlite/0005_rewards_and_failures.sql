-- Issue 21: a job pays each validator of a deciding quorum its validation
-- reward (`JobCreated.validationReward`); `ValidatorsPaid` events add up
-- to what the job paid its validators. Jobs from before paid none.
ALTER TABLE jobs ADD COLUMN validation_reward_wei TEXT NOT NULL DEFAULT '0';
ALTER TABLE jobs ADD COLUMN validators_paid_wei TEXT NOT NULL DEFAULT '0';

-- Issue 21: trainers report the tasks they give up, with a reason, so the
-- owner's `job status` can quote it. At most one report per task.
CREATE TABLE task_failures (
    failure_id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     INTEGER NOT NULL,
    task_id    INTEGER NOT NULL UNIQUE,
    trainer    TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX task_failures_by_job ON task_failures (job_id, at);
