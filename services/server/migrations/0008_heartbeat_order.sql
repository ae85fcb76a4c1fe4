-- On a master: when the slave sent the heartbeat applied last, so that an
-- older one (redelivered, replayed, overtaken) never overwrites a newer one.
ALTER TABLE slaves ADD COLUMN heartbeat_sent_at timestamptz;
