-- The orchestrator's state. Addresses and hashes are lower-case 0x-hex text,
-- amounts of wei are decimal text, times are unix seconds, update indices are
-- 0x-hex text of the U256 `round << 160 | trainer`.

-- Key/value settings: the last processed block, the orchestrator's address.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- Jobs this orchestrator leads.
CREATE TABLE jobs (
    job_id           INTEGER PRIMARY KEY NOT NULL,
    owner            TEXT NOT NULL,
    leader           TEXT NOT NULL,
    spec_hash        TEXT NOT NULL,
    spec             TEXT,                      -- the spec's TOML once fetched
    name             TEXT NOT NULL DEFAULT '',
    -- pending (waiting for the spec), active, finished, closed, invalid
    status           TEXT NOT NULL,
    reason           TEXT,                      -- why a job is invalid
    round            INTEGER NOT NULL DEFAULT 0, -- the round being trained
    rounds           INTEGER NOT NULL,
    quorum           INTEGER NOT NULL,
    challenge_window INTEGER NOT NULL,
    deposit_wei      TEXT NOT NULL,
    base_reward_wei  TEXT NOT NULL,
    bonus_reward_wei TEXT NOT NULL,
    paid_wei         TEXT NOT NULL DEFAULT '0',
    slashed_wei      TEXT NOT NULL DEFAULT '0',
    remaining_wei    TEXT NOT NULL DEFAULT '0',
    chain_closed     INTEGER NOT NULL DEFAULT 0, -- JobClosed seen (owner or exhausted)
    secret           BLOB NOT NULL,             -- salt of the replay draws, never served
    created_at       INTEGER NOT NULL,
    created_block    INTEGER NOT NULL,
    spec_attempts    INTEGER NOT NULL DEFAULT 0,
    next_spec_try    INTEGER NOT NULL DEFAULT 0
);

-- Rounds: round t trains checkpoint t into checkpoint t+1.
CREATE TABLE rounds (
    job_id          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    -- open, closing (inputs fixed, checkpoint being built/committed), closed
    status          TEXT NOT NULL,
    base_hash       TEXT NOT NULL,
    checkpoint_hash TEXT,
    outer_state     TEXT,              -- blob of the outer optimizer state after this round
    opened_at       INTEGER NOT NULL,
    deadline        INTEGER NOT NULL,
    closed_at       INTEGER,
    commit_tx       TEXT,
    test_loss       REAL,
    test_accuracy   REAL,
    train_loss      REAL,
    PRIMARY KEY (job_id, round)
);

-- The updates a closing round aggregates, fixed before aggregation so a
-- restart rebuilds the same checkpoint.
CREATE TABLE round_inputs (
    job_id       INTEGER NOT NULL,
    round        INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    update_index TEXT NOT NULL,
    update_hash  TEXT NOT NULL,
    PRIMARY KEY (job_id, round, position)
);

-- Task leases.
CREATE TABLE tasks (
    task_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     INTEGER NOT NULL,
    round      INTEGER NOT NULL,
    shard      INTEGER NOT NULL,
    trainer    TEXT NOT NULL,
    capacity   TEXT NOT NULL,
    platform   TEXT,
    steps      INTEGER NOT NULL,
    seed       INTEGER NOT NULL,   -- u64 stored as its i64 bit pattern
    base_hash  TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    submitted  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_by_round ON tasks (job_id, round);
CREATE INDEX tasks_by_trainer ON tasks (trainer, job_id);

-- Updates as reported by their trainers (off-chain facts).
CREATE TABLE updates (
    job_id       INTEGER NOT NULL,
    update_index TEXT NOT NULL,
    round        INTEGER NOT NULL,
    trainer      TEXT NOT NULL,
    task_id      INTEGER NOT NULL,
    shard        INTEGER NOT NULL,
    steps        INTEGER NOT NULL,
    update_hash  TEXT NOT NULL,
    submit_tx    TEXT NOT NULL,
    submit_block INTEGER NOT NULL,
    deadline     INTEGER NOT NULL,     -- end of the challenge window (chain time)
    replay       INTEGER NOT NULL,     -- drawn for checking (or challenged)
    loss_before  REAL NOT NULL,
    loss_after   REAL NOT NULL,
    platform     TEXT,
    submitted_at INTEGER NOT NULL,
    credited     INTEGER NOT NULL DEFAULT 0, -- training points given
    PRIMARY KEY (job_id, update_index)
);
CREATE INDEX updates_by_round ON updates (job_id, round);

-- Updates as the chain tells them (events).
CREATE TABLE chain_updates (
    job_id       INTEGER NOT NULL,
    update_index TEXT NOT NULL,
    round        INTEGER NOT NULL,
    trainer      TEXT NOT NULL,
    update_hash  TEXT NOT NULL,
    submit_tx    TEXT NOT NULL,
    submit_block INTEGER NOT NULL,
    status       TEXT NOT NULL,       -- pending, challenged, accepted, rejected
    decided_by   TEXT,
    paid_wei     TEXT NOT NULL DEFAULT '0',
    slashed_wei  TEXT NOT NULL DEFAULT '0',
    PRIMARY KEY (job_id, update_index)
);

-- Votes stored or deciding on-chain (events).
CREATE TABLE chain_votes (
    job_id       INTEGER NOT NULL,
    update_index TEXT NOT NULL,
    validator    TEXT NOT NULL,
    valid        INTEGER NOT NULL,
    tx_hash      TEXT NOT NULL,
    PRIMARY KEY (job_id, update_index, validator)
);

-- Validation assignments handed to validators.
CREATE TABLE assignments (
    job_id       INTEGER NOT NULL,
    update_index TEXT NOT NULL,
    validator    TEXT NOT NULL,
    issued_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    done         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, update_index, validator)
);

-- Votes as reported by validators, with what they measured.
CREATE TABLE validations (
    job_id       INTEGER NOT NULL,
    update_index TEXT NOT NULL,
    validator    TEXT NOT NULL,
    valid        INTEGER NOT NULL,
    tx_hash      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    reported_at  INTEGER NOT NULL,
    PRIMARY KEY (job_id, update_index, validator)
);

-- Everyone the orchestrator has heard of.
CREATE TABLE participants (
    address      TEXT PRIMARY KEY NOT NULL,
    roles        INTEGER NOT NULL DEFAULT 0,  -- bit 1 trainer, 2 validator, 4 owner
    stake_wei    TEXT NOT NULL DEFAULT '0',
    credit_wei   TEXT NOT NULL DEFAULT '0',
    earned_wei   TEXT NOT NULL DEFAULT '0',
    slashed_wei  TEXT NOT NULL DEFAULT '0',
    accepted     INTEGER NOT NULL DEFAULT 0,
    rejected     INTEGER NOT NULL DEFAULT 0,
    validations  INTEGER NOT NULL DEFAULT 0,
    train_points REAL NOT NULL DEFAULT 0,     -- decayed to train_at
    train_at     INTEGER NOT NULL DEFAULT 0,
    drill_points REAL NOT NULL DEFAULT 0,     -- decayed to drill_at
    drill_at     INTEGER NOT NULL DEFAULT 0,
    capacity     TEXT,
    platform     TEXT,
    last_seen    INTEGER NOT NULL DEFAULT 0
);

-- Who talks to whom.
CREATE TABLE graph_nodes (
    id        TEXT PRIMARY KEY NOT NULL,
    label     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    last_seen INTEGER NOT NULL
);
CREATE TABLE graph_edges (
    source    TEXT NOT NULL,
    target    TEXT NOT NULL,
    label     TEXT NOT NULL,
    count     INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY (source, target, label)
);

-- Nonces of signed requests still inside the timestamp window, saved on a
-- clean shutdown and loaded on start.
CREATE TABLE nonces (
    address    TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (address, nonce)
);
