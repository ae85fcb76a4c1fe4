-- Slaves whose site runs a broker of its own, linked to the master's broker
-- by shovels made at registration (docs/multi-site.md): the master made a
-- broker user for their links and deletes it when they leave.
ALTER TABLE slaves ADD COLUMN site_broker boolean NOT NULL DEFAULT false;
