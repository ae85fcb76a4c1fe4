-- Change capture for replication (slave -> master).
--
-- Every insert or update of a replicated row stamps it with:
--   change_seq  a number from one sequence: the row's version (newer wins);
--   change_xid  the writing transaction's id.
-- Sequence numbers are taken before commit, so they commit out of order and
-- "everything above the last number shipped" would skip a late committer.
-- The replicator therefore ships by transaction-id window instead: rows with
-- change_xid below pg_snapshot_xmin(now) all belong to finished transactions,
-- so the replicator walks rows in (change_xid, change_seq) order up to that
-- horizon and a position, once passed, never gains a row later. A row
-- changed again moves to a later position with a higher change_seq.
-- Deletions leave a tombstone stamped the same way.

CREATE SEQUENCE change_seq;

CREATE FUNCTION stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := nextval('change_seq');
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END $$;

CREATE TABLE tombstones (
    change_seq  bigint PRIMARY KEY DEFAULT nextval('change_seq'),
    change_xid  xid8 NOT NULL DEFAULT pg_current_xact_id(),
    table_name  text NOT NULL,
    row_key     jsonb NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tombstones_position ON tombstones (change_xid, change_seq);

-- Trigger arguments: the key columns of the table.
CREATE FUNCTION record_deletion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tombstones (table_name, row_key)
    SELECT TG_TABLE_NAME, jsonb_object_agg(k, to_jsonb(OLD) -> k) FROM unnest(TG_ARGV) AS k;
    RETURN OLD;
END $$;

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('endpoints', ARRAY['id']),
        ('network_groups', ARRAY['id']),
        ('virtual_groups', ARRAY['id']),
        ('virtual_group_members', ARRAY['virtual_group_id', 'endpoint_id']),
        ('detections', ARRAY['detection_id']),
        ('task_results', ARRAY['task_id', 'endpoint_id']),
        ('license', ARRAY['id'])
    ) AS v(name, keys) LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN change_seq bigint NOT NULL DEFAULT nextval(''change_seq''),
                                      ADD COLUMN change_xid xid8 NOT NULL DEFAULT pg_current_xact_id()', t.name);
        EXECUTE format('CREATE INDEX %I ON %I (change_xid, change_seq)', t.name || '_position', t.name);
        EXECUTE format('CREATE TRIGGER stamp_change BEFORE INSERT OR UPDATE ON %I
                        FOR EACH ROW EXECUTE FUNCTION stamp_change()', t.name);
        EXECUTE format('CREATE TRIGGER record_deletion AFTER DELETE ON %I
                        FOR EACH ROW EXECUTE FUNCTION record_deletion(%s)', t.name,
                       (SELECT string_agg(quote_literal(k), ', ') FROM unnest(t.keys) AS k));
    END LOOP;
END $$;
