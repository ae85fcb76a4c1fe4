-- The API's self-signed certificate, made at first start when server.xml
-- configures none, kept so its fingerprint (pinned by slaves' registration
-- tokens and by rampartctl) stays the same across restarts.
CREATE TABLE api_certificate (
    id          integer PRIMARY KEY CHECK (id = 1),
    certificate text NOT NULL,
    key         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
