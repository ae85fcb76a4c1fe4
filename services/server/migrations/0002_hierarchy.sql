-- Master and slaves: registration, keys, fan-out receipts, signed outbox.

-- The master's own secret; per-slave command keys derive from it.
ALTER TABLE instance ADD COLUMN master_key text;

-- Registration tokens a master hands out (only their SHA-256 is kept).
CREATE TABLE registration_tokens (
    id          uuid PRIMARY KEY,
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    used_by     text
);

-- The master's slaves. 'removing' waits for the slave to confirm it left.
CREATE TABLE slaves (
    id             text PRIMARY KEY,
    state          text NOT NULL CHECK (state IN ('active', 'removing', 'removed')),
    slave_key      text NOT NULL,
    version        text,
    endpoints      bigint,
    license        jsonb,
    registered_at  timestamptz NOT NULL DEFAULT now(),
    last_seen      timestamptz,
    removed_at     timestamptz,
    removed_reason text
);

-- Messages the master refused from (claimed) slaves: the audit trail.
CREATE TABLE refused_messages (
    id          bigserial PRIMARY KEY,
    slave_id    text,
    kind        text,
    message_id  text,
    reason      text NOT NULL,
    refused_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refused_messages_slave ON refused_messages (slave_id, refused_at DESC);

-- On a master: which slaves (and groups inside them) a policy or task is for.
ALTER TABLE policies ADD COLUMN target jsonb;

-- On a master: where each policy and task stands on each slave.
CREATE TABLE receipts (
    object_kind  text NOT NULL CHECK (object_kind IN ('policy', 'task')),
    object_id    uuid NOT NULL,
    slave_id     text NOT NULL REFERENCES slaves (id),
    version      integer NOT NULL,
    state        text NOT NULL CHECK (state IN ('pending', 'delivered', 'applied', 'failed', 'cancelled')),
    reason       text,
    progress     jsonb,
    -- Sequence of the slave message applied last: older ones change nothing.
    seq          bigint NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (object_kind, object_id, slave_id)
);
CREATE INDEX receipts_slave ON receipts (slave_id);

-- On a slave: its master, and the keys registration issued.
CREATE TABLE master_link (
    id             integer PRIMARY KEY CHECK (id = 1),
    master_id      text NOT NULL,
    address        text NOT NULL,
    slave_key      text NOT NULL,
    command_key    text NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT now()
);

-- On a slave: the last receipt sent for a master policy or task, so only
-- changes are reported, and why one could not be applied.
ALTER TABLE policies ADD COLUMN reported jsonb;
ALTER TABLE policies ADD COLUMN failure text;
-- The reporter counts, every second, the endpoints each master policy governs.
CREATE INDEX endpoints_policy ON endpoints (policy_id);
ALTER TABLE tasks ADD COLUMN reported jsonb;
ALTER TABLE tasks ADD COLUMN failure text;

-- The outbox keeps the exact bytes it publishes, signed at enqueue time.
ALTER TABLE outbox ADD COLUMN payload bytea, ADD COLUMN message_id uuid,
                   ADD COLUMN kind text, ADD COLUMN signature text;
UPDATE outbox SET payload = convert_to(envelope::text, 'UTF8'),
                  message_id = (envelope ->> 'id')::uuid, kind = envelope ->> 'kind';
ALTER TABLE outbox ALTER COLUMN payload SET NOT NULL, ALTER COLUMN message_id SET NOT NULL,
                   ALTER COLUMN kind SET NOT NULL, DROP COLUMN envelope;
