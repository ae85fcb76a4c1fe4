//! Change capture on a slave: reading the change stream while several
//! connections write at once never misses a row's latest version, and
//! deletions travel as tombstones.

use std::collections::HashMap;

use rampart_server::replication::changes;
use rampart_shared::replication::{ReplicatedTable, Watermark};
use rampart_tests::{
    hierarchy::{add_threats, insert_endpoints},
    ServerOptions, TestServer,
};

const ENDPOINTS: i64 = 300;
const WRITERS: usize = 4;
const TRANSACTIONS_PER_WRITER: u64 = 400;

/// One writer's transactions: 1 to 4 endpoints each (in id order, so
/// writers never deadlock), some lingering before commit so sequence
/// numbers commit out of order.
fn transactions(writer: u64, prefix: &'static str) -> impl Iterator<Item = (Vec<String>, bool)> {
    let mut state = writer.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..TRANSACTIONS_PER_WRITER).map(move |_| {
        let mut ids: Vec<String> =
            (0..=(next() % 4)).map(|_| format!("{prefix}-{:05}", next() % ENDPOINTS as u64)).collect();
        ids.sort();
        (ids, next() % 8 == 0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_hide_a_change_from_the_stream() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let url = server.options.database_url();
    insert_endpoints(&server, "ep", ENDPOINTS).await;

    let writers: Vec<_> =
        (0..WRITERS as u64).map(|w| tokio::spawn(add_threats(url.clone(), transactions(w, "ep")))).collect();
    let waiter = tokio::spawn(async move {
        let mut total = 0;
        for w in writers {
            total += w.await.expect("a writer failed");
        }
        total
    });
    let deadline = tokio::time::Instant::now() + rampart_tests::WAIT;

    // The replicator's view: latest version seen per endpoint, read in
    // small pages from a moving watermark, as the replicator does.
    let mut seen: HashMap<String, i64> = HashMap::new();
    let (mut from, mut pages) = (Watermark::START, 0);
    let mut reader = server.state.pool.get().await.unwrap();
    // Once the writers are done, the stream must reach past every
    // transaction they ran: the horizon is the oldest transaction of the
    // whole cluster, so a transaction of another database (another test)
    // can hold it below the writers' last commits for a while, and a page
    // that is caught up to such a horizon has not seen them yet.
    let mut past_writers: Option<i64> = None;
    loop {
        // Read until caught up once more after the writers are done (or failed).
        if past_writers.is_none() && waiter.is_finished() {
            let row = reader.query_one("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint", &[]).await;
            past_writers = Some(row.unwrap().get(0));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writers did not finish, or the stream did not reach their last commit, within {:?}",
            rampart_tests::WAIT
        );
        let tx = reader
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .unwrap();
        let page = changes::read_page(&tx, from, 50, usize::MAX).await.unwrap();
        tx.commit().await.unwrap();
        pages += 1;
        assert!(page.to >= from, "the watermark went back from {from} to {}", page.to);
        for c in page.changes {
            assert!(c.position > from, "a change at {} was read again after {from}", c.position);
            if c.row.table == ReplicatedTable::Endpoints {
                let id = c.row.key["id"].as_str().unwrap().to_owned();
                let entry = seen.entry(id).or_insert(0);
                *entry = (*entry).max(c.row.change_seq);
            }
        }
        from = page.to;
        if past_writers.is_some_and(|xid| page.caught_up && page.to.xid >= xid) {
            break;
        }
        if page.caught_up {
            // Polled: the next page can only come once the horizon moves.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let updates = waiter.await.unwrap();

    let client = server.state.pool.get().await.unwrap();
    let truth: HashMap<String, i64> = client
        .query("SELECT id, change_seq FROM endpoints", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let missed: Vec<_> = truth.iter().filter(|(id, seq)| seen.get(*id) != Some(seq)).collect();
    assert!(
        missed.is_empty(),
        "{} of {} endpoints not seen at their latest version: {:?}",
        missed.len(),
        truth.len(),
        &missed[..missed.len().min(5)]
    );
    assert!(pages > 3, "the reader ran only {pages} pages during {updates} updates: the test did not overlap");
    let threats: i64 = client.query_one("SELECT sum(active_threats)::bigint FROM endpoints", &[]).await.unwrap().get(0);
    assert_eq!(threats as u64, updates);

    drop(client);
    drop(reader);
    server.stop(&[]).await;
}

#[tokio::test]
async fn deletions_leave_tombstones_in_the_stream() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let client = server.state.pool.get().await.unwrap();
    let (status, group) = server.post("/api/groups", serde_json::json!({"name": "Temporary"})).await;
    assert_eq!(status, 201, "{group}");
    let (status, _) = server.delete(&format!("/api/groups/{}", group["id"])).await;
    assert_eq!(status, 204);
    // The horizon is cluster-wide: a transaction still open elsewhere (a
    // concurrent test) holds the stream below the deletion until it ends.
    let rows = rampart_tests::wait_for("the deletion to fall below the horizon", || async {
        let page = changes::read_page(&client, Watermark::START, 1000, usize::MAX).await.unwrap();
        let groups: Vec<_> = page
            .changes
            .into_iter()
            .filter(|c| c.row.table == ReplicatedTable::NetworkGroups && c.row.key["id"] == group["id"])
            .collect();
        groups.iter().any(|c| c.row.row.is_none()).then_some(groups)
    })
    .await;
    assert!(rows.iter().all(|c| c.row.row.is_none()), "a deleted group is shipped only as a tombstone: {rows:?}");
    drop(client);
    server.stop(&[]).await;
}

/// What a slave ships plus what it keeps to itself is the whole table, so a
/// column added by a migration is either shipped or deliberately private.
#[tokio::test]
async fn shipped_and_private_columns_cover_each_replicated_table() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let client = server.state.pool.get().await.unwrap();
    for table in ReplicatedTable::ALL {
        let columns: Vec<String> = client
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&table.name()],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let shipped = table.shipped_columns();
        let private = table.private_columns();
        assert!(shipped.iter().all(|c| !private.contains(c)), "{table}: a column is both shipped and private");
        let in_table_order: Vec<&str> = columns.iter().map(String::as_str).filter(|c| !private.contains(c)).collect();
        assert_eq!(
            in_table_order, shipped,
            "{table}: the shipped columns are the table's columns but the private ones, in table order"
        );
        let mut named: Vec<&str> = shipped.iter().chain(private).copied().collect();
        named.sort_unstable();
        let mut all: Vec<&str> = columns.iter().map(String::as_str).collect();
        all.sort_unstable();
        assert_eq!(named, all, "{table}: every column is shipped or private");
    }
    drop(client);
    server.stop(&[]).await;
}
