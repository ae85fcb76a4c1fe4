//! Change capture on a slave: reading changes window by window while
//! several connections write at once never misses a row's latest version.

use std::collections::HashMap;

use rampart_server::replication::{self, Table};
use rampart_tests::{ServerOptions, TestServer};
use tokio_postgres::NoTls;

const ENDPOINTS: usize = 300;
const WRITERS: usize = 4;
const TRANSACTIONS_PER_WRITER: u64 = 400;

/// One writer: small transactions touching 1 to 4 endpoints each (in id
/// order, so writers never deadlock), some lingering before commit so
/// sequence numbers commit out of order.
async fn write(url: String, writer: u64) -> u64 {
    let (mut client, connection) = tokio_postgres::connect(&url, NoTls).await.expect("writer connects");
    tokio::spawn(connection);
    let mut state = writer.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut updates = 0;
    for _ in 0..TRANSACTIONS_PER_WRITER {
        let tx = client.transaction().await.unwrap();
        let mut ids: Vec<String> = (0..=(next() % 4)).map(|_| format!("ep-{:04}", next() % ENDPOINTS as u64)).collect();
        ids.sort();
        for id in ids {
            tx.execute("UPDATE endpoints SET active_threats = active_threats + 1 WHERE id = $1", &[&id]).await.unwrap();
            updates += 1;
        }
        if next() % 8 == 0 {
            tx.execute("SELECT pg_sleep(0.005)", &[]).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    updates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_hide_a_change_from_the_replicator() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let url = server.options.database_url();
    let client = server.state.pool.get().await.unwrap();
    client
        .execute(
            "INSERT INTO endpoints (id, hostname, ip, os, agent_version, signatures_version, signatures_date,
                                    realtime_protection, status, last_seen)
             SELECT format('ep-%s', lpad(n::text, 4, '0')), 'host', '10.0.0.1', 'os', '1', '1', current_date, true, 'protected', now()
               FROM generate_series(0, $1::int - 1) AS n",
            &[&(ENDPOINTS as i32)],
        )
        .await
        .unwrap();

    let writers: Vec<_> = (0..WRITERS as u64).map(|w| tokio::spawn(write(url.clone(), w))).collect();
    let waiter = tokio::spawn(async move {
        let mut total = 0;
        for w in writers {
            total += w.await.expect("a writer failed");
        }
        total
    });
    let deadline = tokio::time::Instant::now() + rampart_tests::WAIT;

    // The replicator's view: latest version seen per endpoint.
    let mut seen: HashMap<String, i64> = HashMap::new();
    let (mut from, mut busy_windows) = (0_i64, 0);
    let mut reader = server.state.pool.get().await.unwrap();
    loop {
        // Read once more after the writers are done (or have failed).
        let finished = waiter.is_finished();
        assert!(tokio::time::Instant::now() < deadline, "the writers did not finish within {:?}", rampart_tests::WAIT);
        let tx = reader.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).start().await.unwrap();
        let to = replication::horizon(&tx).await.unwrap();
        let changes = replication::changes(&tx, Table::Endpoints, from, to, 0, i64::MAX).await.unwrap();
        tx.commit().await.unwrap();
        if changes.len() > 10 {
            busy_windows += 1;
        }
        for c in changes {
            let id = c.row["id"].as_str().unwrap().to_owned();
            let entry = seen.entry(id).or_insert(0);
            *entry = (*entry).max(c.change_seq);
        }
        from = to;
        if finished {
            break;
        }
    }
    let updates = waiter.await.unwrap();

    let truth: HashMap<String, i64> = client
        .query("SELECT id, change_seq FROM endpoints", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let missed: Vec<_> = truth.iter().filter(|(id, seq)| seen.get(*id) != Some(seq)).collect();
    assert!(missed.is_empty(), "{} of {} endpoints not seen at their latest version: {:?}", missed.len(), truth.len(), &missed[..missed.len().min(5)]);
    assert!(busy_windows > 3, "the reader ran only {busy_windows} windows during {updates} updates: the test did not overlap");
    let threats: i64 = client.query_one("SELECT sum(active_threats)::bigint FROM endpoints", &[]).await.unwrap().get(0);
    assert_eq!(threats as u64, updates);

    drop(client);
    drop(reader);
    server.stop(&[]).await;
}

#[tokio::test]
async fn deletions_leave_tombstones_in_the_window() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let client = server.state.pool.get().await.unwrap();
    let (status, group) = server.post("/api/groups", serde_json::json!({"name": "Temporary"})).await;
    assert_eq!(status, 201, "{group}");
    let (status, _) = server.delete(&format!("/api/groups/{}", group["id"])).await;
    assert_eq!(status, 204);
    // The horizon is cluster-wide: a transaction still open elsewhere (a
    // concurrent test) holds the window below the deletion until it ends.
    let groups = rampart_tests::wait_for("the deletion to fall below the horizon", || async {
        let to = replication::horizon(&client).await.unwrap();
        let tombstones = replication::changes(&client, Table::Tombstones, 0, to, 0, 100).await.unwrap();
        let groups = replication::changes(&client, Table::NetworkGroups, 0, to, 0, 100).await.unwrap();
        let shipped = tombstones.iter().any(|t| t.row["table_name"] == "network_groups" && t.row["row_key"]["id"] == group["id"]);
        shipped.then_some(groups)
    })
    .await;
    assert!(groups.iter().all(|g| g.row["id"] != group["id"]), "a deleted group is not shipped as a row");
    drop(client);
    server.stop(&[]).await;
}
