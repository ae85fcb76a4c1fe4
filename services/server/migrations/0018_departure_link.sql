-- On a stand-alone with a broker of its own that left its master while the
-- master's broker could not be reached (docs/multi-site.md, "Unregistering
-- while the links are down"): the status link kept on this site's broker to
-- deliver the departure, with the credentials to make it again, until the
-- link keeper has seen the departure cross and removed the link. Kept here,
-- not in memory, so that a restart of this server before the departure has
-- crossed still removes the link afterwards.
CREATE TABLE departure_link (
    id           integer PRIMARY KEY CHECK (id = 1),
    broker_link  jsonb NOT NULL,
    left_at      timestamptz NOT NULL DEFAULT now()
);
