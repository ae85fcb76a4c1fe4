//! Change capture on a slave: reading the change stream while several
//! connections write at once never misses a row's latest version,
//! deletions travel as tombstones, and only this database's open
//! transactions hold the stream back.

use std::collections::HashMap;

use rampart_server::replication::{changes, replicator::HORIZON_WAIT};
use rampart_shared::replication::{ReplicatedTable, Watermark};
use rampart_tests::{
    hierarchy::{add_threats, insert_endpoints, register, wait_for_replicated_endpoints},
    wait_for, ServerOptions, TestServer, PG_BASE,
};
use tokio::time::Instant;

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
    // transaction they ran: a page that is caught up to a horizon below
    // the writers' last commits (one of them still committing) has not
    // seen them yet.
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
    // A transaction of this database still open (the server's own work)
    // holds the stream below the deletion until it ends.
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

/// The pass's bounded count of the rows it has waiting (how long it may
/// hold before its first read) agrees with the full count of the backlog
/// at its edge: from the start (rows in several tables) and from just
/// before 30 endpoints written in one transaction (one table alone
/// holding them all).
#[tokio::test]
async fn the_bounded_count_of_the_backlog_agrees_with_the_full_count() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let (status, group) = server.post("/api/groups", serde_json::json!({"name": "Edge"})).await;
    assert_eq!(status, 201, "{group}");
    insert_endpoints(&server, "edge", 30).await;
    let client = server.state.pool.get().await.unwrap();
    let first = client
        .query_one("SELECT min(change_xid::text::bigint), min(change_seq) FROM endpoints WHERE id LIKE 'edge-%'", &[])
        .await
        .unwrap();
    let before_endpoints = Watermark { xid: first.get(0), seq: first.get::<_, i64>(1) - 1 };
    for (from, least) in [(Watermark::START, 31), (before_endpoints, 30)] {
        // The server's own work may still write: the count is read until
        // two reads around the bounded ones agree.
        let (count, below, at, above) = wait_for("a settled backlog", || async {
            let count = changes::backlog(&client, from).await.unwrap();
            let below = changes::waiting(&client, from, (count - 1) as usize).await.unwrap();
            let at = changes::waiting(&client, from, count as usize).await.unwrap();
            let above = changes::waiting(&client, from, count as usize + 100).await.unwrap();
            let again = changes::backlog(&client, from).await.unwrap();
            (again == count).then_some((count, below, at, above))
        })
        .await;
        assert!(count >= least, "the backlog from {from} holds what was written ({count} rows)");
        assert_eq!(below, count - 1, "counted up to {} of the {count} rows from {from}", count - 1);
        assert_eq!(at, count, "counted up to {count} of the {count} rows from {from}");
        assert_eq!(above, count, "counted up to {} of the {count} rows from {from}", count + 100);
    }
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

/// Opens a connection to `url` and, in it, a transaction that holds a
/// transaction id (as a writer does from its first write); returns the
/// connection and that id.
async fn open_transaction(url: &str) -> (tokio_postgres::Client, i64) {
    let client = rampart_tests::connect_database(url).await;
    client.batch_execute("BEGIN").await.unwrap();
    let xid: i64 = client.query_one("SELECT pg_current_xact_id()::text::bigint", &[]).await.unwrap().get(0);
    (client, xid)
}

/// Its id again: the transaction opened by [`open_transaction`] is still
/// the one running (nothing ended it meanwhile).
async fn assert_still_open(client: &tokio_postgres::Client, xid: i64) {
    let now: i64 = client.query_one("SELECT pg_current_xact_id()::text::bigint", &[]).await.unwrap().get(0);
    assert_eq!(now, xid, "the open transaction ended during the test");
}

fn has_endpoint(page: &changes::Page, id: &str) -> bool {
    page.changes.iter().any(|c| c.row.table == ReplicatedTable::Endpoints && c.row.key["id"] == id)
}

/// The horizon is this database's: a transaction left open in another
/// database of the cluster does not hold the stream back (a slave sharing
/// its PostgreSQL with other sites, or with its master); one open in this
/// database does, and its rows are read once it commits, after a page
/// that was caught up below it.
#[tokio::test]
async fn only_this_databases_open_transactions_hold_the_stream_back() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let client = server.state.pool.get().await.unwrap();

    let (elsewhere, elsewhere_xid) = open_transaction(&format!("{PG_BASE}/postgres")).await;
    insert_endpoints(&server, "after-other", 1).await;
    let page = wait_for("a row committed after another database's open transaction", || async {
        let page = changes::read_page(&client, Watermark::START, 1000, usize::MAX).await.unwrap();
        has_endpoint(&page, "after-other-00000").then_some(page)
    })
    .await;
    assert!(
        page.to.xid > elsewhere_xid,
        "the stream stopped at {} below the other database's {elsewhere_xid}",
        page.to
    );
    assert_still_open(&elsewhere, elsewhere_xid).await;
    let from = page.to;

    // Same database: a transaction that wrote a computer and stays open,
    // then another computer committed after it.
    let (held, held_xid) = open_transaction(&server.options.database_url()).await;
    held.execute(
        "INSERT INTO endpoints (id, hostname, ip, os, agent_version, signatures_version, signatures_date,
                                realtime_protection, status, last_seen)
         VALUES ('held-00000', 'pc-held', '10.0.0.2', 'Windows 11', '1.0', '2026.11.1', current_date, true, 'protected', now())",
        &[],
    )
    .await
    .unwrap();
    insert_endpoints(&server, "after-held", 1).await;
    let page = changes::read_page(&client, from, 1000, usize::MAX).await.unwrap();
    assert!(page.caught_up, "one page holds everything below the horizon");
    assert!(page.to.xid <= held_xid, "the stream went to {} past this database's open {held_xid}", page.to);
    assert!(!has_endpoint(&page, "after-held-00000"), "a row above the open transaction was read before it ended");
    assert_still_open(&held, held_xid).await;

    // Committed: the next pages, from where the caught-up page ended, hold
    // both computers; nothing between was skipped.
    held.batch_execute("COMMIT").await.unwrap();
    let (mut from, mut seen) = (page.to, Vec::new());
    let deadline = Instant::now() + rampart_tests::WAIT;
    while seen.len() < 2 {
        assert!(Instant::now() < deadline, "only {seen:?} reached the stream within {:?}", rampart_tests::WAIT);
        let page = changes::read_page(&client, from, 1000, usize::MAX).await.unwrap();
        seen.extend(["held-00000", "after-held-00000"].into_iter().filter(|id| has_endpoint(&page, id)));
        assert!(page.to >= from, "the watermark went back from {from} to {}", page.to);
        from = page.to;
        if seen.len() < 2 {
            // Polled: the next page can only come once the horizon moves.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    elsewhere.batch_execute("COMMIT").await.unwrap();
    drop(client);
    server.stop(&[]).await;
}

/// A slave's pass is not held back by a transaction left open in another
/// database of the cluster (here its master's, as when several sites share
/// a PostgreSQL): new computers reach the master long before the pass
/// would give up waiting for that transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_open_in_another_database_does_not_delay_a_pass() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let mut options = ServerOptions::site("vannes", &master.options.namespace);
    options.extra_xml = "<ReplicationInterval>1</ReplicationInterval>".to_owned();
    let vannes = TestServer::spawn(options).await;
    insert_endpoints(&vannes, "vannes", 10).await;
    register(&master, &vannes).await;
    wait_for_replicated_endpoints(&master, "vannes", 10).await;

    let (elsewhere, elsewhere_xid) = open_transaction(&master.options.database_url()).await;
    let opened = Instant::now();
    insert_endpoints(&vannes, "vannes-late", 5).await;
    wait_for_replicated_endpoints(&master, "vannes", 15).await;
    assert!(
        opened.elapsed() < HORIZON_WAIT,
        "the new computers took {:?}: the pass waited for the other database's transaction",
        opened.elapsed()
    );
    assert_still_open(&elsewhere, elsewhere_xid).await;

    elsewhere.batch_execute("COMMIT").await.unwrap();
    vannes.stop(&[]).await;
    master.stop(&[]).await;
}
