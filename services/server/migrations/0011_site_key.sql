-- The site's command key (Ed25519): it signs every command the site sends
-- its endpoints. Made at first start; one row. The secret never leaves the
-- database except into the server's memory.
CREATE TABLE site_key (
    id         smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    secret     bytea NOT NULL CHECK (length(secret) = 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
