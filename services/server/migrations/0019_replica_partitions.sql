-- The master's copy in 16 hash partitions by slave (replication/apply.rs).
-- Each slave's batches are applied by one of several appliers at once;
-- on one table they shared the heap's last pages and the trigram indexes'
-- pending lists, and five appliers paid 23 % more CPU a row than one
-- (bench/README.md, change 48). A slave's rows now live in one partition
-- of its own hash, so appliers of different slaves mostly write different
-- tables. The list reads every partition's index and merges them in order
-- (bench/README.md, Scale); a statement on one slave's rows reads one
-- partition.
--
-- The rows are moved once: about 50 s per million rows with the indexes
-- made after them. The views are made again on the new table with the
-- same definitions (0004, 0009, 0017).

ALTER TABLE replica_rows RENAME TO replica_rows_unpartitioned;
ALTER TABLE replica_rows_unpartitioned RENAME CONSTRAINT replica_rows_pkey TO replica_rows_unpartitioned_pkey;
ALTER TABLE replica_rows_unpartitioned DROP CONSTRAINT replica_rows_slave_id_fkey;
DROP INDEX replica_endpoints_order, replica_endpoints_counts, replica_endpoints_status,
    replica_endpoints_hostname, replica_endpoints_ip;

CREATE TABLE replica_rows (
    slave_id    text NOT NULL REFERENCES slaves (id) ON DELETE CASCADE,
    table_name  text NOT NULL,
    row_key     jsonb NOT NULL,
    change_seq  bigint NOT NULL,
    row         jsonb,
    endpoint_status text
        GENERATED ALWAYS AS (CASE WHEN table_name = 'endpoints' THEN row ->> 'status' END) STORED,
    endpoint_group bigint
        GENERATED ALWAYS AS (CASE WHEN table_name = 'endpoints' THEN (row ->> 'group_id')::bigint END) STORED,
    PRIMARY KEY (slave_id, table_name, row_key)
) PARTITION BY HASH (slave_id);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format('CREATE TABLE replica_rows_p%s PARTITION OF replica_rows
                            FOR VALUES WITH (MODULUS 16, REMAINDER %s)', lpad(i::text, 2, '0'), i);
    END LOOP;
END $$;

INSERT INTO replica_rows (slave_id, table_name, row_key, change_seq, row)
SELECT slave_id, table_name, row_key, change_seq, row FROM replica_rows_unpartitioned;

-- The views, unchanged, now reading the partitioned table.
CREATE OR REPLACE VIEW replica_endpoints AS
SELECT r.slave_id, r.row ->> 'id' AS id, r.row ->> 'hostname' AS hostname, r.row ->> 'ip' AS ip,
       r.row ->> 'os' AS os, r.endpoint_group AS group_id, r.row ->> 'agent_version' AS agent_version,
       r.row ->> 'signatures_version' AS signatures_version, (r.row ->> 'signatures_date')::date AS signatures_date,
       (r.row ->> 'realtime_protection')::boolean AS realtime_protection,
       (r.row ->> 'active_threats')::integer AS active_threats, r.endpoint_status AS status,
       (r.row ->> 'licensed')::boolean AS licensed, (r.row ->> 'last_seen')::timestamptz AS last_seen,
       (r.row ->> 'enrolled_at')::timestamptz AS enrolled_at, (r.row ->> 'policy_id')::uuid AS policy_id,
       (r.row ->> 'policy_version')::integer AS policy_version,
       (r.row ->> 'applied_policy_id')::uuid AS applied_policy_id,
       (r.row ->> 'applied_policy_version')::integer AS applied_policy_version
  FROM replica_rows r WHERE r.table_name = 'endpoints' AND r.row IS NOT NULL;

CREATE OR REPLACE VIEW replica_network_groups AS
SELECT r.slave_id, (r.row ->> 'id')::bigint AS id, r.row ->> 'name' AS name,
       (r.row ->> 'parent_id')::bigint AS parent_id, r.row ->> 'subnet' AS subnet
  FROM replica_rows r WHERE r.table_name = 'network_groups' AND r.row IS NOT NULL;

CREATE OR REPLACE VIEW replica_virtual_groups AS
SELECT r.slave_id, (r.row ->> 'id')::bigint AS id, r.row ->> 'name' AS name, r.row ->> 'description' AS description
  FROM replica_rows r WHERE r.table_name = 'virtual_groups' AND r.row IS NOT NULL;

CREATE OR REPLACE VIEW replica_virtual_group_members AS
SELECT r.slave_id, (r.row ->> 'virtual_group_id')::bigint AS virtual_group_id, r.row ->> 'endpoint_id' AS endpoint_id
  FROM replica_rows r WHERE r.table_name = 'virtual_group_members' AND r.row IS NOT NULL;

CREATE OR REPLACE VIEW replica_detections AS
SELECT r.slave_id, (r.row ->> 'detection_id')::uuid AS detection_id, r.row ->> 'endpoint_id' AS endpoint_id,
       r.row ->> 'malware' AS malware, r.row ->> 'path' AS path, r.row ->> 'action' AS action,
       (r.row ->> 'detected_at')::timestamptz AS detected_at, (r.row ->> 'task_id')::uuid AS task_id
  FROM replica_rows r WHERE r.table_name = 'detections' AND r.row IS NOT NULL;

CREATE OR REPLACE VIEW replica_task_results AS
SELECT r.slave_id, (r.row ->> 'task_id')::uuid AS task_id, r.row ->> 'endpoint_id' AS endpoint_id,
       r.row ->> 'state' AS state, (r.row ->> 'scanned_files')::bigint AS scanned_files,
       (r.row ->> 'detections')::integer AS detections, r.row ->> 'message' AS message,
       (r.row ->> 'updated_at')::timestamptz AS updated_at
  FROM replica_rows r WHERE r.table_name = 'task_results' AND r.row IS NOT NULL;

CREATE OR REPLACE VIEW replica_license AS
SELECT r.slave_id, (r.row ->> 'license_id')::uuid AS license_id, r.row ->> 'customer' AS customer,
       (r.row ->> 'seats')::integer AS seats, (r.row ->> 'issued_on')::date AS issued_on,
       (r.row ->> 'expires_on')::date AS expires_on
  FROM replica_rows r WHERE r.table_name = 'license' AND r.row IS NOT NULL;

CREATE OR REPLACE VIEW replica_activity AS
SELECT r.slave_id, (r.row ->> 'id')::uuid AS id, (r.row ->> 'at')::timestamptz AS at,
       r.row ->> 'operator' AS operator, r.row ->> 'address' AS address, r.row ->> 'action' AS action,
       r.row ->> 'object' AS object, r.row -> 'before' AS before, r.row -> 'after' AS after
  FROM replica_rows r WHERE r.table_name = 'activity' AND r.row IS NOT NULL;

DROP TABLE replica_rows_unpartitioned;

-- The indexes of 0017, made on the parent (so on every partition), after
-- the rows.
CREATE INDEX replica_endpoints_order ON replica_rows (slave_id, (row ->> 'id'))
    WHERE table_name = 'endpoints' AND row IS NOT NULL;
CREATE INDEX replica_endpoints_counts ON replica_rows (slave_id, endpoint_group, endpoint_status)
    WHERE table_name = 'endpoints' AND row IS NOT NULL;
CREATE INDEX replica_endpoints_status ON replica_rows (endpoint_status, slave_id)
    WHERE table_name = 'endpoints' AND row IS NOT NULL;
CREATE INDEX replica_endpoints_hostname ON replica_rows USING gin ((row ->> 'hostname') gin_trgm_ops)
    WHERE table_name = 'endpoints' AND row IS NOT NULL;
CREATE INDEX replica_endpoints_ip ON replica_rows USING gin ((row ->> 'ip') gin_trgm_ops)
    WHERE table_name = 'endpoints' AND row IS NOT NULL;

-- The planner's statistics of the moved rows (the list's estimated totals
-- read them); autovacuum does not analyze a partitioned table's parent.
ANALYZE replica_rows;
