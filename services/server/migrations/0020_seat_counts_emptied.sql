-- Emptying the endpoints empties the seat counts with TRUNCATE, not DELETE.
--
-- A read that folds the counts (`licensing::summary`) deletes the rows it
-- sees and inserts their sum. A DELETE from `count_seats_emptied` running
-- meanwhile waited for the fold's rows, skipped them once deleted, and
-- missed the sum, inserted after its snapshot: the seats of the endpoints
-- just emptied stayed counted. TRUNCATE waits for the fold to commit, then
-- empties the table, the sum with it. Nothing else can write the counts
-- meanwhile: every other writer is a trigger of `endpoints`, which the
-- TRUNCATE that fired this one holds alone.

CREATE OR REPLACE FUNCTION count_seats_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE seat_counts;
    RETURN NULL;
END $$;
