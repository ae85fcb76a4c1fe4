-- Seats in use, kept as endpoints come and go and as their `licensed` flag
-- changes, so that a slave's heartbeat (every 10 s) and the dashboard read
-- a few rows instead of every endpoint (on 100 slaves of 10,000 computers
-- sharing a machine, counting them was a sixth of their databases' work).
--
-- Each writing statement adds a row of differences; readers sum the rows,
-- and fold them into one now and then (`licensing::summary`). The triggers
-- only insert, so concurrent writers never wait on each other here. An
-- insert or delete adds one row a statement (from its transition table); a
-- flag changed adds one a row (UPDATE triggers with a column list cannot
-- have transition tables, and a trigger on every UPDATE would copy every
-- agent heartbeat's rows); TRUNCATE empties the counts.

CREATE TABLE seat_counts (
    used        bigint NOT NULL,
    unlicensed  bigint NOT NULL
);

-- Both statement triggers name their transition table `written`: the rows
-- an INSERT added or a DELETE removed.
CREATE FUNCTION count_seats_written() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign bigint := CASE TG_OP WHEN 'DELETE' THEN -1 ELSE 1 END;
BEGIN
    INSERT INTO seat_counts (used, unlicensed)
    SELECT sign * count(*) FILTER (WHERE licensed), sign * count(*) FILTER (WHERE NOT licensed) FROM written
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE FUNCTION count_seat_flag() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seat_counts (used, unlicensed)
    VALUES (CASE WHEN NEW.licensed THEN 1 ELSE -1 END, CASE WHEN NEW.licensed THEN -1 ELSE 1 END);
    RETURN NULL;
END $$;

CREATE FUNCTION count_seats_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM seat_counts;
    RETURN NULL;
END $$;

-- The triggers first: each takes a lock on `endpoints` that holds writers
-- off until this migration commits, so the count below misses nothing.
CREATE TRIGGER count_seats_added AFTER INSERT ON endpoints
    REFERENCING NEW TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION count_seats_written();
CREATE TRIGGER count_seats_removed AFTER DELETE ON endpoints
    REFERENCING OLD TABLE AS written FOR EACH STATEMENT EXECUTE FUNCTION count_seats_written();
CREATE TRIGGER count_seat_flag AFTER UPDATE OF licensed ON endpoints
    FOR EACH ROW WHEN (OLD.licensed IS DISTINCT FROM NEW.licensed) EXECUTE FUNCTION count_seat_flag();
CREATE TRIGGER count_seats_emptied AFTER TRUNCATE ON endpoints
    FOR EACH STATEMENT EXECUTE FUNCTION count_seats_emptied();

INSERT INTO seat_counts (used, unlicensed)
SELECT count(*) FILTER (WHERE licensed), count(*) FILTER (WHERE NOT licensed) FROM endpoints;
