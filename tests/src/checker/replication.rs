//! Replication slave -> master: each slave's replicated rows `(key,
//! change_seq)` are the truth; the master's copy (`replica_rows`) must hold
//! exactly them, and the history of writes to the copy (logged by a
//! test-only trigger) must show each version written once, in order. The
//! master's consolidated counts (endpoints, detections, task results by
//! state) must equal the slave's own.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rampart_shared::replication::ReplicatedTable;

use super::{compare_copy, compare_count, count_history, SlaveFindings};
use crate::TestServer;

/// A row of the copy: (table, key as canonical JSON text).
type RowKey = (String, String);

/// Logs every write to the master's `replica_rows`, and every removal (a
/// new epoch or a purge) with no `change_seq`.
const HISTORY: &str = "
CREATE TABLE IF NOT EXISTS checker_replica_writes (
    id         bigserial PRIMARY KEY,
    slave_id   text NOT NULL,
    table_name text NOT NULL,
    row_key    jsonb NOT NULL,
    change_seq bigint,
    at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION checker_log_replica_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO checker_replica_writes (slave_id, table_name, row_key) VALUES (OLD.slave_id, OLD.table_name, OLD.row_key);
    ELSE
        INSERT INTO checker_replica_writes (slave_id, table_name, row_key, change_seq)
        VALUES (NEW.slave_id, NEW.table_name, NEW.row_key, NEW.change_seq);
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS checker_replica_writes ON replica_rows;
CREATE TRIGGER checker_replica_writes AFTER INSERT OR UPDATE OF change_seq, row OR DELETE ON replica_rows
    FOR EACH ROW EXECUTE FUNCTION checker_log_replica_write();";

/// Installs the history trigger on the master.
pub async fn install(master: &TestServer) {
    let client = master.state.pool.get().await.expect("a master connection");
    client.batch_execute(HISTORY).await.expect("the checker's replication history installs");
}

/// `jsonb_build_object('col', t.col, ...)` of a table's key: the same
/// canonical JSON the slave ships as the row key.
fn key_expr(table: ReplicatedTable) -> String {
    let pairs: Vec<String> = table.key_columns().iter().map(|c| format!("'{c}', t.{c}")).collect();
    format!("jsonb_build_object({})::text", pairs.join(", "))
}

/// Adds the replication and report findings of `slave` to `findings`.
pub async fn check(master: &TestServer, slave: &TestServer, findings: &mut SlaveFindings) {
    let id = slave.options.instance.as_str();
    let site = slave.state.pool.get().await.expect("a slave connection");
    let mut truth: BTreeMap<RowKey, i64> = BTreeMap::new();
    for table in ReplicatedTable::ALL {
        let sql = format!("SELECT {}, t.change_seq FROM {} t", key_expr(table), table.name());
        for r in site.query(&sql, &[]).await.expect("the slave's rows") {
            truth.insert((table.name().to_owned(), r.get(0)), r.get(1));
        }
    }
    let hq = master.state.pool.get().await.expect("a master connection");
    let copy: BTreeMap<RowKey, (i64, bool)> = hq
        .query(
            "SELECT table_name, row_key::text, change_seq, row IS NOT NULL FROM replica_rows WHERE slave_id = $1",
            &[&id],
        )
        .await
        .expect("the master's copy")
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect();
    let mut examples = Vec::new();
    let mut counts = compare_copy(&truth, &copy, |e| examples.push(format!("replication {e}")));
    let writes = hq
        .query("SELECT table_name, row_key::text, change_seq, at FROM checker_replica_writes WHERE slave_id = $1 ORDER BY id", &[&id])
        .await
        .expect("the checker's replication history (installed before the traffic?)");
    let history = writes.iter().map(|r| ((r.get::<_, String>(0), r.get::<_, String>(1)), r.get::<_, Option<i64>>(2)));
    let (duplicated, reordered) = count_history(history, |e| examples.push(format!("replication {e}")));
    counts.duplicated += duplicated;
    counts.reordered += reordered;
    findings.replication = counts;
    findings.saw(writes.last().map(|r| r.get::<_, DateTime<Utc>>(3)));
    for e in examples {
        findings.note(|| e);
    }
    check_reports(&hq, &site, id, findings).await;
}

/// What an operator reads on the master (endpoints, detections and task
/// results per state of this slave) against the slave's own numbers.
async fn check_reports(
    hq: &deadpool_postgres::Client,
    site: &deadpool_postgres::Client,
    id: &str,
    findings: &mut SlaveFindings,
) {
    let pairs: [(&str, &str, &str); 2] = [
        ("endpoints", "SELECT count(*) FROM endpoints", "SELECT count(*) FROM replica_endpoints WHERE slave_id = $1"),
        (
            "detections",
            "SELECT count(*) FROM detections",
            "SELECT count(*) FROM replica_detections WHERE slave_id = $1",
        ),
    ];
    let mut counts = findings.reports;
    let mut examples = Vec::new();
    for (what, theirs, ours) in pairs {
        let truth: i64 = site.query_one(theirs, &[]).await.expect("a slave count").get(0);
        let shown: i64 = hq.query_one(ours, &[&id]).await.expect("a master count").get(0);
        compare_count(what, truth, shown, &mut counts, |e| examples.push(format!("report {e}")));
    }
    let by_state = |rows: Vec<tokio_postgres::Row>| -> BTreeMap<String, i64> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let truth = by_state(
        site.query("SELECT state, count(*) FROM task_results GROUP BY state", &[]).await.expect("slave task results"),
    );
    let shown = by_state(
        hq.query("SELECT state, count(*) FROM replica_task_results WHERE slave_id = $1 GROUP BY state", &[&id])
            .await
            .expect("master task results"),
    );
    let states: std::collections::BTreeSet<&String> = truth.keys().chain(shown.keys()).collect();
    for state in states {
        let (t, s) = (truth.get(state).copied().unwrap_or(0), shown.get(state).copied().unwrap_or(0));
        compare_count(&format!("task results {state}"), t, s, &mut counts, |e| examples.push(format!("report {e}")));
    }
    findings.reports = counts;
    for e in examples {
        findings.note(|| e);
    }
}
