-- Operators, their personal API tokens, sign-in throttling, and the
-- activity log (see operators/mod.rs and docs/security.md).

CREATE TABLE operators (
    name           text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9._-]{0,63}$'),
    role           text NOT NULL CHECK (role IN ('administrator', 'operator', 'auditor')),
    -- Argon2id, in the PHC string format (algorithm, parameters, salt, hash).
    password_hash  text NOT NULL,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a token is kept: the token itself is shown once.
CREATE TABLE operator_tokens (
    id            uuid PRIMARY KEY,
    operator      text NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE,
    label         text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX operator_tokens_operator ON operator_tokens (operator);

-- Failed sign-ins per account ('operator:<name>') and per source address
-- ('address:<ip>'): each one lengthens the next attempt's delay.
CREATE TABLE sign_in_failures (
    subject        text PRIMARY KEY,
    failures       integer NOT NULL,
    last_failed_at timestamptz NOT NULL
);

-- Who did what, when, from where: written by each domain operation in the
-- transaction of the change. Replicated to the master like the fleet.
CREATE TABLE activity (
    id         uuid PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    operator   text NOT NULL,
    address    text,
    action     text NOT NULL,
    object     text NOT NULL,
    before     jsonb,
    after      jsonb,
    change_seq bigint NOT NULL DEFAULT nextval('change_seq'),
    change_xid xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX activity_at ON activity (at);
CREATE INDEX activity_position ON activity (change_xid, change_seq);
-- /metrics counts failed sign-ins at every scrape: through this index, not
-- over the whole log.
CREATE INDEX activity_sign_in_failures ON activity (at) WHERE action = 'sign_in.failed';
CREATE TRIGGER stamp_change BEFORE INSERT OR UPDATE ON activity
    FOR EACH ROW EXECUTE FUNCTION stamp_change();
CREATE TRIGGER record_deletion AFTER DELETE ON activity
    FOR EACH ROW EXECUTE FUNCTION record_deletion('id');

-- The master's copy of its slaves' activity.
CREATE VIEW replica_activity AS
SELECT r.slave_id, (r.row ->> 'id')::uuid AS id, (r.row ->> 'at')::timestamptz AS at,
       r.row ->> 'operator' AS operator, r.row ->> 'address' AS address, r.row ->> 'action' AS action,
       r.row ->> 'object' AS object, r.row -> 'before' AS before, r.row -> 'after' AS after
  FROM replica_rows r WHERE r.table_name = 'activity' AND r.row IS NOT NULL;
