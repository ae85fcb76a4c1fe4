//! A master upgraded across migration 0019, which moves its copy of the
//! slaves' rows into partitions by slave: it lists, searches and filters
//! the same computers as before, keeps its deletion markers (so an older
//! version cannot bring a deleted row back) and holds each slave's rows in
//! one partition. That replication, verify and a slave's removal work on
//! the partitioned copy is what the rest of the suite shows (every master
//! there is migrated to it).

use rampart_server::migrations::MIGRATIONS;
use rampart_shared::db;
use rampart_tests::{ServerOptions, TestServer};

/// The slaves of the copy written before the upgrade, and their computers.
const SLAVES: [(&str, i64); 3] = [("lyon", 40), ("paris", 25), ("rome", 12)];

/// The copy as a master at migration 0018 holds it after replication: the
/// slaves ($1), their computers' rows as a slave ships them ($2 each), and
/// one deleted computer of lyon's as its marker.
const SLAVES_SQL: &str = "
INSERT INTO slaves (id, state, slave_key, version, repl_epoch)
SELECT s, 'active', 'key-of-' || s, '1.0.0', 1 FROM unnest($1::text[]) AS s";
const COMPUTERS_SQL: &str = "
INSERT INTO replica_rows (slave_id, table_name, row_key, change_seq, row)
SELECT s, 'endpoints', jsonb_build_object('id', e), n + 2,
       jsonb_build_object('id', e, 'hostname', 'pc-' || e, 'ip', '10.0.' || i || '.' || n,
           'os', 'Windows 11', 'group_id', 1, 'agent_version', '4.2.1', 'signatures_version', '2026.11.1',
           'signatures_date', '2026-11-20', 'realtime_protection', true, 'active_threats', (n % 5 = 0)::int,
           'status', CASE WHEN n % 5 = 0 THEN 'infected' ELSE 'protected' END, 'licensed', true,
           'last_seen', now(), 'enrolled_at', now(), 'policy_id', NULL, 'policy_version', NULL,
           'applied_policy_id', NULL, 'applied_policy_version', NULL)
  FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS t(s, computers, i)
 CROSS JOIN LATERAL generate_series(1, computers) AS n
 CROSS JOIN LATERAL (SELECT s || '-' || lpad(n::text, 3, '0') AS e) AS k";
const MARKER_SQL: &str = "
INSERT INTO replica_rows (slave_id, table_name, row_key, change_seq, row)
VALUES ('lyon', 'endpoints', '{\"id\": \"lyon-deleted\"}', 9000, NULL)";

/// `(slave, id)` of each endpoint of a list answer.
fn keys(page: &serde_json::Value) -> Vec<(String, String)> {
    let endpoints = page["endpoints"].as_array().expect("a list of endpoints");
    endpoints.iter().map(|e| (e["slave"].as_str().unwrap().to_owned(), e["id"].as_str().unwrap().to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_upgraded_across_the_partitioning_keeps_its_copy() {
    let options = ServerOptions::master();
    let url = options.database_url();
    db::ensure_database(&url).await.unwrap();
    let before_partitions = MIGRATIONS.iter().filter(|m| m.version < 19).count();
    let expected: Vec<(String, String)>;
    let infected_before: i64;
    {
        let pool = db::pool(&url, 2).unwrap();
        db::migrate(&pool, &MIGRATIONS[..before_partitions]).await.unwrap();
        let client = pool.get().await.unwrap();
        let names: Vec<&str> = SLAVES.iter().map(|(s, _)| *s).collect();
        let counts: Vec<i64> = SLAVES.iter().map(|(_, c)| *c).collect();
        client.execute(SLAVES_SQL, &[&names]).await.unwrap();
        client.execute(COMPUTERS_SQL, &[&names, &counts]).await.unwrap();
        client.execute(MARKER_SQL, &[]).await.unwrap();
        let kind: String = client
            .query_one("SELECT relkind::text FROM pg_class WHERE relname = 'replica_rows'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(kind, "r", "before migration 0019 the copy is one table");
        expected = client
            .query("SELECT slave_id, id FROM replica_endpoints ORDER BY slave_id, id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        infected_before = client
            .query_one("SELECT count(*) FROM replica_endpoints WHERE status = 'infected'", &[])
            .await
            .unwrap()
            .get(0);
    }
    assert_eq!(expected.len() as i64, SLAVES.iter().map(|(_, c)| c).sum::<i64>());

    // The server migrates at start.
    let master = TestServer::spawn(options).await;
    let all = master.get_ok("/api/endpoints?limit=1000").await;
    assert_eq!(keys(&all), expected, "the list after the upgrade is the list before it, in its order");
    assert_eq!(all["total"], expected.len(), "{all}");
    let infected = master.get_ok("/api/endpoints?status=infected&limit=1000").await;
    assert_eq!(infected["total"], infected_before, "{infected}");
    let found = master.get_ok("/api/endpoints?search=pc-paris-007").await;
    assert_eq!(keys(&found), vec![("paris".to_owned(), "paris-007".to_owned())], "{found}");
    let rome = master.get_ok("/api/endpoints?slave=rome&limit=1000").await;
    assert_eq!(keys(&rome).len(), 12, "{rome}");

    let client = master.state.pool.get().await.unwrap();
    let partitions: i64 = client
        .query_one("SELECT count(*) FROM pg_inherits WHERE inhparent = 'replica_rows'::regclass", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(partitions, 16);
    let marker = client
        .query_one(
            "SELECT change_seq, row IS NULL FROM replica_rows WHERE slave_id = 'lyon' AND row_key = '{\"id\": \"lyon-deleted\"}'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((marker.get::<_, i64>(0), marker.get::<_, bool>(1)), (9000, true), "the deletion marker is kept");
    let spread: Vec<(String, i64)> = client
        .query("SELECT slave_id, count(DISTINCT tableoid) FROM replica_rows GROUP BY slave_id ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        spread,
        SLAVES.iter().map(|(s, _)| (s.to_string(), 1)).collect::<Vec<_>>(),
        "a slave's rows in one partition"
    );
    drop(client);
    master.stop(&[]).await;
}
