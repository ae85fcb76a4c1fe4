-- Reports (see reports/mod.rs).

-- On a master: orders the events it publishes for the report service; a
-- part with a lower number than the one the report service holds is stale.
CREATE SEQUENCE report_seq;

-- On a stand-alone or slave: reports made on a schedule, written to the
-- configured directory and sent by e-mail when asked.
CREATE TABLE report_schedules (
    id             uuid PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    kind           text NOT NULL,
    format         text NOT NULL CHECK (format IN ('json', 'csv', 'html')),
    -- Exactly one of: every N seconds, or daily at a UTC time.
    every_seconds  integer CHECK (every_seconds >= 60),
    daily_at       time,
    email          boolean NOT NULL DEFAULT false,
    next_run       timestamptz NOT NULL,
    last_run       timestamptz,
    last_file      text,
    last_error     text,
    runs           bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((every_seconds IS NULL) <> (daily_at IS NULL))
);
CREATE INDEX report_schedules_due ON report_schedules (next_run);
