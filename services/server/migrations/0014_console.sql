-- The web console: operators' sessions and their remembered choices
-- (see operators/sessions.rs and docs/console.md).

-- A signed-in browser. Only the SHA-256 of the session's secret (the
-- cookie) is kept; a session idle longer than <Console><IdleMinutes> is over.
CREATE TABLE console_sessions (
    id            uuid PRIMARY KEY,
    secret_hash   bytea NOT NULL UNIQUE,
    operator      text NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_sessions_operator ON console_sessions (operator);

-- What the console remembers per operator: the view of the tree.
CREATE TABLE console_preferences (
    operator   text PRIMARY KEY REFERENCES operators (name) ON DELETE CASCADE,
    tree_view  text NOT NULL DEFAULT 'network' CHECK (tree_view IN ('network', 'virtual'))
);
