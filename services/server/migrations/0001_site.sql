-- The instance itself: one row, written at first start.
CREATE TABLE instance (
    id          integer PRIMARY KEY CHECK (id = 1),
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('standalone', 'slave', 'master')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Network groups (network builder). Group 1 is "Default" and always exists.
CREATE TABLE network_groups (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    parent_id   bigint REFERENCES network_groups (id) ON DELETE SET NULL,
    subnet      cidr,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (parent_id, name)
);
INSERT INTO network_groups (id, name) VALUES (1, 'Default');
SELECT setval('network_groups_id_seq', 1);

-- Managed computers.
CREATE TABLE endpoints (
    id                      text PRIMARY KEY,
    hostname                text NOT NULL,
    ip                      inet NOT NULL,
    os                      text NOT NULL,
    group_id                bigint NOT NULL DEFAULT 1 REFERENCES network_groups (id),
    agent_version           text NOT NULL,
    signatures_version      text NOT NULL,
    signatures_date         date NOT NULL,
    realtime_protection     boolean NOT NULL,
    active_threats          integer NOT NULL DEFAULT 0,
    status                  text NOT NULL CHECK (status IN ('protected', 'at_risk', 'infected', 'unprotected')),
    licensed                boolean NOT NULL DEFAULT false,
    last_seen               timestamptz NOT NULL,
    enrolled_at             timestamptz NOT NULL DEFAULT now(),
    -- Effective policy the server assigned (NULL = built-in default).
    policy_id               uuid,
    policy_version          integer,
    -- What the agent reports it has applied.
    applied_policy_id       uuid,
    applied_policy_version  integer
);
CREATE INDEX endpoints_group ON endpoints (group_id);
CREATE INDEX endpoints_status ON endpoints (status);
CREATE INDEX endpoints_enrolled ON endpoints (enrolled_at, id);

CREATE TABLE virtual_groups (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE virtual_group_members (
    virtual_group_id bigint NOT NULL REFERENCES virtual_groups (id) ON DELETE CASCADE,
    endpoint_id      text NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    PRIMARY KEY (virtual_group_id, endpoint_id)
);
CREATE INDEX virtual_group_members_endpoint ON virtual_group_members (endpoint_id);

-- Policies: owner 'local' (authored here) or 'master' (pushed by the master, read-only here).
CREATE TABLE policies (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    owner       text NOT NULL CHECK (owner IN ('local', 'master')),
    version     integer NOT NULL DEFAULT 1,
    settings    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE policy_assignments (
    policy_id   uuid NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    target_kind text NOT NULL CHECK (target_kind IN ('all', 'group', 'virtual_group', 'endpoint')),
    target_id   text NOT NULL DEFAULT '',
    assigned_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (policy_id, target_kind, target_id)
);

-- Tasks: owner as for policies. Per-endpoint progress in task_results.
CREATE TABLE tasks (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('quick_scan', 'full_scan', 'update')),
    owner         text NOT NULL CHECK (owner IN ('local', 'master')),
    target        jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    cancelled_at  timestamptz
);

CREATE TABLE task_results (
    task_id       uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    endpoint_id   text NOT NULL,
    state         text NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    scanned_files bigint NOT NULL DEFAULT 0,
    detections    integer NOT NULL DEFAULT 0,
    message       text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, endpoint_id)
);

CREATE TABLE detections (
    detection_id uuid PRIMARY KEY,
    endpoint_id  text NOT NULL,
    malware      text NOT NULL,
    path         text NOT NULL,
    action       text NOT NULL,
    detected_at  timestamptz NOT NULL,
    task_id      uuid,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX detections_recent ON detections (detected_at DESC);
CREATE INDEX detections_endpoint ON detections (endpoint_id, detected_at DESC);

-- Network audit: computers seen on the network, managed or not.
CREATE TABLE discovered_computers (
    computer_id             text PRIMARY KEY,
    hostname                text NOT NULL,
    ip                      inet NOT NULL,
    mac                     text NOT NULL,
    os                      text NOT NULL,
    third_party_protection  boolean NOT NULL,
    reported_by             text NOT NULL,
    first_seen              timestamptz NOT NULL DEFAULT now(),
    last_seen               timestamptz NOT NULL DEFAULT now()
);

-- Deployment tool and automatic deployment.
CREATE TABLE deployments (
    id            uuid PRIMARY KEY,
    computer_id   text NOT NULL,
    state         text NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed')),
    message       text,
    automatic     boolean NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX deployments_computer ON deployments (computer_id, requested_at DESC);

-- The installed license key (one row at most).
CREATE TABLE license (
    id           integer PRIMARY KEY CHECK (id = 1),
    key          text NOT NULL,
    license_id   uuid NOT NULL,
    customer     text NOT NULL,
    seats        integer NOT NULL,
    issued_on    date NOT NULL,
    expires_on   date NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);

-- Operator settings (auto-deploy, e-mail), one JSON value per key.
CREATE TABLE settings (
    key    text PRIMARY KEY,
    value  jsonb NOT NULL
);

-- Commands waiting to be published (written in the same transaction as the
-- change that caused them; the relay deletes a row once the broker confirmed it).
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    exchange    text NOT NULL,
    routing_key text NOT NULL,
    envelope    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
