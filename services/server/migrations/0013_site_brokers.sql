-- Slaves whose site runs a broker of its own, linked to the master's broker
-- by shovels made at registration (docs/multi-site.md): the master made a
-- broker user for their links and deletes it when they leave.
ALTER TABLE slaves ADD COLUMN site_broker boolean NOT NULL DEFAULT false;
-- The state of its links as its last heartbeat reported them.
ALTER TABLE slaves ADD COLUMN links jsonb;

-- On a slave with a broker of its own: where and as whom its links reach the
-- master's broker (uri, user, password), so a link deleted or broken on its
-- broker can be made again without registering again.
ALTER TABLE master_link ADD COLUMN broker_link jsonb;
