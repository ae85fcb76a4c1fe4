-- Replication slave -> master (see replication/mod.rs).

-- On a slave: where its change stream stands with the master. It lives and
-- dies with the link, so a new registration starts with a full snapshot.
ALTER TABLE master_link
    ADD COLUMN repl_epoch        bigint NOT NULL DEFAULT 1,
    ADD COLUMN repl_sent_batch   bigint NOT NULL DEFAULT 0,
    ADD COLUMN repl_acked_xid    bigint NOT NULL DEFAULT 0,
    ADD COLUMN repl_acked_seq    bigint NOT NULL DEFAULT 0,
    ADD COLUMN repl_acked_batch  bigint NOT NULL DEFAULT 0,
    ADD COLUMN repl_acked_at     timestamptz,
    -- A verification to answer with the next caught-up batch.
    ADD COLUMN repl_verification uuid,
    -- Tombstones up to here are deleted (the master has applied them); a
    -- master whose copy ends before this needs a full snapshot.
    ADD COLUMN repl_pruned_xid   bigint NOT NULL DEFAULT 0,
    ADD COLUMN repl_pruned_seq   bigint NOT NULL DEFAULT 0;

-- On a master: where its copy of each slave stands.
ALTER TABLE slaves
    ADD COLUMN repl_epoch      bigint NOT NULL DEFAULT 0,
    ADD COLUMN repl_xid        bigint NOT NULL DEFAULT 0,
    ADD COLUMN repl_seq        bigint NOT NULL DEFAULT 0,
    ADD COLUMN repl_batches    bigint NOT NULL DEFAULT 0,
    ADD COLUMN repl_rows       bigint NOT NULL DEFAULT 0,
    -- Batches not applied (duplicates, gaps, stale epochs), answered with a resend.
    ADD COLUMN repl_refused    bigint NOT NULL DEFAULT 0,
    -- When the master last applied a batch.
    ADD COLUMN replicated_at   timestamptz,
    -- The slave's clock when it read its last caught-up batch: the copy is
    -- complete as of then.
    ADD COLUMN synced_as_of    timestamptz,
    -- Changes the slave has not had acknowledged yet (its heartbeat says).
    ADD COLUMN rows_behind     bigint;

-- The master's copy of every slave's replicated rows. A row deleted on the
-- slave stays as a marker (row IS NULL) so an older version can never
-- bring it back.
CREATE TABLE replica_rows (
    slave_id    text NOT NULL REFERENCES slaves (id) ON DELETE CASCADE,
    table_name  text NOT NULL,
    row_key     jsonb NOT NULL,
    change_seq  bigint NOT NULL,
    row         jsonb,
    PRIMARY KEY (slave_id, table_name, row_key)
);

-- Verifications the master asked its slaves for.
CREATE TABLE verifications (
    id            uuid PRIMARY KEY,
    slave_id      text NOT NULL REFERENCES slaves (id) ON DELETE CASCADE,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    in_sync       boolean,
    result        jsonb
);

-- Typed views of the copy, for the consolidated views and reports.
CREATE VIEW replica_endpoints AS
SELECT r.slave_id, r.row ->> 'id' AS id, r.row ->> 'hostname' AS hostname, r.row ->> 'ip' AS ip,
       r.row ->> 'os' AS os, (r.row ->> 'group_id')::bigint AS group_id, r.row ->> 'agent_version' AS agent_version,
       r.row ->> 'signatures_version' AS signatures_version, (r.row ->> 'signatures_date')::date AS signatures_date,
       (r.row ->> 'realtime_protection')::boolean AS realtime_protection,
       (r.row ->> 'active_threats')::integer AS active_threats, r.row ->> 'status' AS status,
       (r.row ->> 'licensed')::boolean AS licensed, (r.row ->> 'last_seen')::timestamptz AS last_seen,
       (r.row ->> 'enrolled_at')::timestamptz AS enrolled_at, (r.row ->> 'policy_id')::uuid AS policy_id,
       (r.row ->> 'policy_version')::integer AS policy_version,
       (r.row ->> 'applied_policy_id')::uuid AS applied_policy_id,
       (r.row ->> 'applied_policy_version')::integer AS applied_policy_version
  FROM replica_rows r WHERE r.table_name = 'endpoints' AND r.row IS NOT NULL;

CREATE VIEW replica_network_groups AS
SELECT r.slave_id, (r.row ->> 'id')::bigint AS id, r.row ->> 'name' AS name,
       (r.row ->> 'parent_id')::bigint AS parent_id, r.row ->> 'subnet' AS subnet
  FROM replica_rows r WHERE r.table_name = 'network_groups' AND r.row IS NOT NULL;

CREATE VIEW replica_virtual_groups AS
SELECT r.slave_id, (r.row ->> 'id')::bigint AS id, r.row ->> 'name' AS name, r.row ->> 'description' AS description
  FROM replica_rows r WHERE r.table_name = 'virtual_groups' AND r.row IS NOT NULL;

CREATE VIEW replica_virtual_group_members AS
SELECT r.slave_id, (r.row ->> 'virtual_group_id')::bigint AS virtual_group_id, r.row ->> 'endpoint_id' AS endpoint_id
  FROM replica_rows r WHERE r.table_name = 'virtual_group_members' AND r.row IS NOT NULL;

CREATE VIEW replica_detections AS
SELECT r.slave_id, (r.row ->> 'detection_id')::uuid AS detection_id, r.row ->> 'endpoint_id' AS endpoint_id,
       r.row ->> 'malware' AS malware, r.row ->> 'path' AS path, r.row ->> 'action' AS action,
       (r.row ->> 'detected_at')::timestamptz AS detected_at, (r.row ->> 'task_id')::uuid AS task_id
  FROM replica_rows r WHERE r.table_name = 'detections' AND r.row IS NOT NULL;

CREATE VIEW replica_task_results AS
SELECT r.slave_id, (r.row ->> 'task_id')::uuid AS task_id, r.row ->> 'endpoint_id' AS endpoint_id,
       r.row ->> 'state' AS state, (r.row ->> 'scanned_files')::bigint AS scanned_files,
       (r.row ->> 'detections')::integer AS detections, r.row ->> 'message' AS message,
       (r.row ->> 'updated_at')::timestamptz AS updated_at
  FROM replica_rows r WHERE r.table_name = 'task_results' AND r.row IS NOT NULL;

CREATE VIEW replica_license AS
SELECT r.slave_id, (r.row ->> 'license_id')::uuid AS license_id, r.row ->> 'customer' AS customer,
       (r.row ->> 'seats')::integer AS seats, (r.row ->> 'issued_on')::date AS issued_on,
       (r.row ->> 'expires_on')::date AS expires_on
  FROM replica_rows r WHERE r.table_name = 'license' AND r.row IS NOT NULL;
