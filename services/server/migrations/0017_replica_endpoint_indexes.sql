-- A master's consolidated computers (fleet/consolidated.rs: the console's
-- computers page and tree, the API's endpoint list) read replica_endpoints,
-- a view of the JSON rows in replica_rows. With a million computers held
-- every page counted and sorted all of them: EXPLAIN ANALYZE on a copy of
-- the benchmark's 1M master, the total 517 ms, the first page's sort
-- 137 ms, a hostname search 707 ms, the infected computers' count 366 ms.
-- Every index below covers only the computers' rows, so the rows of other
-- tables are applied without maintaining them.

-- The two columns the list filters on, kept beside the JSON (computed by
-- PostgreSQL as rows are written): a count filtered on them can then be
-- answered from an index alone, which a filter on an expression of `row`
-- cannot. Adding them rewrites replica_rows once (about 20 s per million
-- rows).
ALTER TABLE replica_rows
    ADD COLUMN endpoint_status text
        GENERATED ALWAYS AS (CASE WHEN table_name = 'endpoints' THEN row ->> 'status' END) STORED,
    ADD COLUMN endpoint_group bigint
        GENERATED ALWAYS AS (CASE WHEN table_name = 'endpoints' THEN (row ->> 'group_id')::bigint END) STORED;

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

-- Paging in the list's order (slave, id): a page reads its own 50 rows, and
-- one slave's computers are a range.
CREATE INDEX replica_endpoints_order ON replica_rows (slave_id, (row ->> 'id'))
    WHERE table_name = 'endpoints' AND row IS NOT NULL;

-- The list's total: of everything, of a slave, of a slave's group, with or
-- without a status; and of a status over every slave. Index-only counts
-- over small indexes (few distinct values, deduplicated).
CREATE INDEX replica_endpoints_counts ON replica_rows (slave_id, endpoint_group, endpoint_status)
    WHERE table_name = 'endpoints' AND row IS NOT NULL;
CREATE INDEX replica_endpoints_status ON replica_rows (endpoint_status, slave_id)
    WHERE table_name = 'endpoints' AND row IS NOT NULL;

-- The search box (hostname ILIKE '%text%' OR ip LIKE '%text%'): a trigram
-- index per column, combined by a bitmap OR.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX replica_endpoints_hostname ON replica_rows USING gin ((row ->> 'hostname') gin_trgm_ops)
    WHERE table_name = 'endpoints' AND row IS NOT NULL;
CREATE INDEX replica_endpoints_ip ON replica_rows USING gin ((row ->> 'ip') gin_trgm_ops)
    WHERE table_name = 'endpoints' AND row IS NOT NULL;
