-- The audit of refused messages covers every consumer of the server, not
-- only the master's: the queue a message was refused on and the sender it
-- named, beside the slave its routing key named (slave_id, on a master).
-- Late messages that were not dead-lettered but ignored (a task result for
-- a task that is gone) are recorded here too.
ALTER TABLE refused_messages ADD COLUMN queue text, ADD COLUMN sender text;
CREATE INDEX refused_messages_queue ON refused_messages (queue, id DESC);
