-- The report service's read model: what the master's events say, one row
-- per slave and one per task and slave, pre-aggregated so a report over a
-- hundred slaves reads a hundred rows.

-- Each part of a slave carries the number (seq) of the event that wrote it;
-- an event with a lower or equal number changes nothing.
CREATE TABLE slaves (
    slave_id          text PRIMARY KEY,
    -- Health, as the master last said.
    health_seq        bigint NOT NULL DEFAULT 0,
    state             text NOT NULL DEFAULT 'unknown',
    version           text,
    last_seen         timestamptz,
    replicated_at     timestamptz,
    synced_as_of      timestamptz,
    rows_behind       bigint,
    batches_refused   bigint NOT NULL DEFAULT 0,
    -- The site summary: computers by status, signatures, detections, license.
    site_seq          bigint NOT NULL DEFAULT 0,
    site_as_of        timestamptz,
    total             bigint NOT NULL DEFAULT 0,
    protected         bigint NOT NULL DEFAULT 0,
    at_risk           bigint NOT NULL DEFAULT 0,
    infected          bigint NOT NULL DEFAULT 0,
    unprotected       bigint NOT NULL DEFAULT 0,
    unlicensed        bigint NOT NULL DEFAULT 0,
    signatures        jsonb NOT NULL DEFAULT '[]',
    detections_daily  jsonb NOT NULL DEFAULT '[]',
    threats           jsonb NOT NULL DEFAULT '[]',
    most_infected     jsonb NOT NULL DEFAULT '[]',
    license           jsonb,
    -- The last event that listed every task of the slave.
    tasks_seq         bigint NOT NULL DEFAULT 0
);

CREATE TABLE task_outcomes (
    slave_id    text NOT NULL REFERENCES slaves (slave_id) ON DELETE CASCADE,
    task_id     uuid NOT NULL,
    seq         bigint NOT NULL,
    name        text,
    kind        text,
    pending     bigint NOT NULL,
    running     bigint NOT NULL,
    succeeded   bigint NOT NULL,
    failed      bigint NOT NULL,
    cancelled   bigint NOT NULL,
    detections  bigint NOT NULL,
    PRIMARY KEY (slave_id, task_id)
);

-- The last roster applied: which slaves the master knows.
CREATE TABLE roster (
    id     integer PRIMARY KEY CHECK (id = 1),
    seq    bigint NOT NULL,
    as_of  timestamptz
);
INSERT INTO roster (id, seq) VALUES (1, 0);
