-- Agent identities (issue 20, item 3): enrolment tokens, the identities
-- they made (each with its own broker user and queue), and which identity
-- owns each endpoint. Only a SHA-256 of a token is kept.

CREATE TABLE agent_enrolment_tokens (
    id          uuid PRIMARY KEY,
    token_hash  text NOT NULL UNIQUE,
    -- How many endpoints an agent enrolled with this token may own.
    endpoints   integer NOT NULL CHECK (endpoints > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    used_by     text,
    revoked_at  timestamptz
);

CREATE TABLE agent_identities (
    id            text PRIMARY KEY,
    -- The fleet process's own name, as it gave it.
    name          text NOT NULL,
    broker_user   text NOT NULL UNIQUE,
    queue         text NOT NULL,
    token_id      uuid NOT NULL REFERENCES agent_enrolment_tokens (id),
    enrolled_at   timestamptz NOT NULL DEFAULT now(),
    enrolled_from text,
    revoked_at    timestamptz,
    revoked_by    text
);

-- An endpoint is owned by at most one identity; revoking releases its rows.
CREATE TABLE endpoint_owners (
    endpoint_id text PRIMARY KEY,
    agent_id    text NOT NULL REFERENCES agent_identities (id),
    owned_since timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoint_owners_by_agent ON endpoint_owners (agent_id);
