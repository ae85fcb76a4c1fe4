//! Replication slave -> master end to end, on the real broker and databases:
//! snapshot after registration, increments on a short interval under
//! concurrent writers, verify, a master killed between commit and ack,
//! forged duplicates and gaps, an offline slave catching up, keep or purge.

use std::collections::BTreeSet;

use rampart_shared::{
    amqp::publisher::Outgoing,
    compression,
    replication::{kind, ReplicatedRow, ReplicatedTable, ReplicationBatch, Watermark},
    topology::Topology,
    Envelope,
};
use rampart_tests::{
    faults::tap::Tap,
    hierarchy::{add_threats, insert_endpoints, register, replication_of, verify, wait_for_replicated_endpoints},
    inject, wait_for, ServerOptions, TestServer, WAIT,
};
use serde_json::json;

/// A master and one stand-alone named `name` with extra server.xml, not registered yet.
async fn master_and_site(name: &str, site_xml: &str) -> (TestServer, TestServer) {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let mut options = ServerOptions::site(name, &master.options.namespace);
    options.extra_xml = site_xml.to_owned();
    let site = TestServer::spawn(options).await;
    (master, site)
}

async fn count(server: &TestServer, sql: &str) -> i64 {
    server.state.pool.get().await.unwrap().query_one(sql, &[]).await.unwrap().get(0)
}

/// The value of one series (name and labels, as printed) of a `/metrics` text.
fn sample(metrics: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    let line = metrics.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {series} in {metrics}"));
    line[prefix.len()..].parse().unwrap()
}

fn assert_in_sync(verification: &serde_json::Value) {
    assert_eq!(verification["in_sync"], true, "the master's copy differs: {verification:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_endpoints_replicate_and_verify_in_sync() {
    let (master, paris) = master_and_site("paris", "").await;
    insert_endpoints(&paris, "paris", 10_000).await;
    let batches = Tap::bind(&master, "replication", master.topology().replication_exchange(), "slave.paris.#").await;
    register(&master, &paris).await;

    // The snapshot right after registration, with the default 1800 s interval.
    let replication = wait_for_replicated_endpoints(&master, "paris", 10_000).await;
    assert_eq!(replication["epoch"], 1);
    assert!(replication["batches"].as_i64().unwrap() >= 2, "5000 rows a batch: {replication}");
    assert_in_sync(&verify(&master, "paris").await);

    // The full batches travelled compressed, at a fraction of their JSON.
    let captured = batches.drain().await;
    batches.remove().await;
    let full: Vec<_> = captured
        .iter()
        .filter_map(|c| Some((c, c.envelope.body::<ReplicationBatch>().ok().filter(|b| b.rows.len() >= 1000)?)))
        .collect();
    assert!(full.len() >= 2, "{} messages, {} with 1000 rows or more", captured.len(), full.len());
    for (message, batch) in &full {
        let json = message.envelope.to_bytes().len();
        assert_eq!(message.content_encoding(), Some(compression::LZ4), "batch {}", batch.batch);
        assert!(
            message.wire_len() * 4 < json,
            "batch {}: {} bytes for {json} of JSON",
            batch.batch,
            message.wire_len()
        );
    }

    // The consolidated view: a slave column, filters, the tree.
    let page = master.get_ok("/api/endpoints?slave=paris&limit=3&search=pc-99").await;
    assert_eq!(page["total"], 111, "pc-99, pc-990..pc-999, pc-9900..pc-9999: {page}");
    assert!(page["endpoints"].as_array().unwrap().iter().all(|e| e["slave"] == "paris" && e["group"] == "Default"));
    let tree = master.get_ok("/api/tree?view=network").await;
    assert_eq!(tree["root"]["kind"], "master");
    let slave = &tree["root"]["children"][0];
    assert_eq!((slave["kind"].as_str(), slave["name"].as_str()), (Some("slave"), Some("paris")));
    assert_eq!(slave["children"][0]["name"], "Default");
    assert_eq!(slave["children"][0]["endpoints"].as_array().unwrap().len(), 10_000);

    let metrics = master.metrics().await;
    assert!(sample(&metrics, "rampart_replication_rows_applied_total{slave=\"paris\"}") >= 10_000.0);
    assert!(sample(&metrics, "rampart_replication_lag_seconds{slave=\"paris\"}") < 600.0);

    paris.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_interval_keeps_up_with_concurrent_writers() {
    let (master, lyon) = master_and_site("lyon", "<ReplicationInterval>1</ReplicationInterval>").await;
    insert_endpoints(&lyon, "lyon", 300).await;
    register(&master, &lyon).await;
    wait_for_replicated_endpoints(&master, "lyon", 300).await;

    // Several connections write at once while the 1 s interval replicates;
    // some endpoints are deleted and others enrolled meanwhile.
    let url = lyon.options.database_url();
    let writers: Vec<_> = (0..4).map(|w| tokio::spawn(add_threats(url.clone(), transactions(w)))).collect();
    let client = lyon.state.pool.get().await.unwrap();
    client.execute("DELETE FROM endpoints WHERE id IN ('lyon-00001', 'lyon-00002')", &[]).await.unwrap();
    drop(client);
    insert_endpoints(&lyon, "lyon-late", 20).await;
    let mut updates = 0;
    for w in writers {
        updates += tokio::time::timeout(WAIT, w).await.expect("a writer finishes in time").expect("a writer failed");
    }

    // No replicate-now: the interval alone brings the master up to date.
    assert!(updates > 1000, "the writers changed {updates} rows");
    let threats = count(&lyon, "SELECT sum(active_threats)::bigint FROM endpoints").await;
    wait_for("the master's copy to catch up with the writers", || async {
        let copied = count(
            &master,
            "SELECT COALESCE(sum(active_threats), 0)::bigint FROM replica_endpoints WHERE slave_id = 'lyon'",
        )
        .await;
        let endpoints = count(&master, "SELECT count(*) FROM replica_endpoints WHERE slave_id = 'lyon'").await;
        (copied == threats && endpoints == 318).then_some(())
    })
    .await;
    assert_in_sync(&verify(&master, "lyon").await);
    let replication = replication_of(&master, "lyon").await;
    assert_eq!(replication["epoch"], 1, "increments only, no resync: {replication}");
    assert!(replication["lag_seconds"].as_i64().unwrap() < 30, "{replication}");

    lyon.stop(&[]).await;
    master.stop(&[]).await;
}

/// One writer's 300 small transactions: two endpoints each, in id order
/// (no deadlocks).
fn transactions(writer: u64) -> impl Iterator<Item = (Vec<String>, bool)> {
    (0..300_u64).map(move |n| {
        let a = (n * 7 + writer * 31) % 300;
        let ids: BTreeSet<String> = [a, (a * 13) % 300].iter().map(|i| format!("lyon-{i:05}")).collect();
        (ids.into_iter().collect(), false)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_killed_between_commit_and_ack_applies_every_row_once() {
    let (master, nice) = master_and_site("nice", "<ReplicationBatchSize>1000</ReplicationBatchSize>").await;
    insert_endpoints(&nice, "nice", 3000).await;
    // Dies right after committing the first batch, before acking it.
    master.state.failpoints.die_after_replication_commits(1);
    register(&master, &nice).await;
    tokio::time::timeout(WAIT, master.state.failpoints.fired.notified()).await.expect("the failpoint fired");
    let options = master.kill().await;

    let master = TestServer::spawn(options).await;
    wait_for_replicated_endpoints(&master, "nice", 3000).await;
    assert_in_sync(&verify(&master, "nice").await);
    let replication = replication_of(&master, "nice").await;
    // Every row of the slave applied exactly once: the redelivered batch was
    // refused as a duplicate, not applied again.
    // The replicated tables here: the endpoints, the groups, and the activity
    // log (registering to the master is an entry).
    let rows = count(
        &nice,
        "SELECT (SELECT count(*) FROM endpoints) + (SELECT count(*) FROM network_groups) + (SELECT count(*) FROM activity)",
    )
    .await;
    assert_eq!(replication["rows"], rows, "{replication}");
    assert!(replication["refused_batches"].as_i64().unwrap() >= 1, "the redelivery was seen: {replication}");

    nice.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_duplicates_and_gaps_change_nothing() {
    let (master, nantes) = master_and_site("nantes", "").await;
    insert_endpoints(&nantes, "nantes", 50).await;
    register(&master, &nantes).await;
    let before = wait_for_replicated_endpoints(&master, "nantes", 50).await;

    // Batches signed with the slave's real key, published straight to the queue.
    let key = nantes.state.keyring.link().expect("nantes is a slave").slave_key;
    let forged_row = ReplicatedRow {
        table: ReplicatedTable::Endpoints,
        key: json!({"id": "nantes-00001"}),
        change_seq: i64::MAX,
        row: Some(serde_json::value::to_raw_value(&json!({"id": "nantes-00001", "hostname": "forged"})).unwrap()),
    };
    let copy_end: Watermark = before["watermark"].as_str().unwrap().parse().unwrap();
    let duplicate = ReplicationBatch {
        epoch: 1,
        batch: 9001,
        from: Watermark::START,
        to: copy_end,
        caught_up: true,
        taken_at: chrono::Utc::now(),
        rows: vec![forged_row.clone()],
        digest: None,
    };
    let gap = ReplicationBatch {
        batch: 9002,
        from: Watermark { xid: copy_end.xid + 1000, seq: 1 },
        to: Watermark { xid: copy_end.xid + 2000, seq: 1 },
        ..duplicate.clone()
    };
    let topology = master.topology();
    let signed = |batch: &ReplicationBatch| {
        let envelope = Envelope::new(kind::BATCH, "nantes", batch.batch as u64, batch);
        Outgoing::envelope(topology.replication_exchange(), Topology::slave_key("nantes"), &envelope, Some(&key))
    };
    inject(vec![signed(&duplicate), signed(&gap)]).await;
    let after = wait_for("both forged batches refused", || async {
        let r = replication_of(&master, "nantes").await;
        (r["refused_batches"].as_i64().unwrap() >= before["refused_batches"].as_i64().unwrap() + 2).then_some(r)
    })
    .await;
    assert_eq!(
        (after["watermark"].clone(), after["rows"].clone()),
        (before["watermark"].clone(), before["rows"].clone())
    );
    assert_eq!(count(&master, "SELECT count(*) FROM replica_endpoints WHERE hostname = 'forged'").await, 0);

    // The slave is not confused by answers to batches it never sent.
    nantes
        .state
        .pool
        .get()
        .await
        .unwrap()
        .execute("UPDATE endpoints SET hostname = 'renamed' WHERE id = 'nantes-00002'", &[])
        .await
        .unwrap();
    let (status, body) = nantes.post("/api/replication/now", json!({})).await;
    assert_eq!(status, 202, "{body}");
    wait_for("the rename to reach the master", || async {
        (count(&master, "SELECT count(*) FROM replica_endpoints WHERE hostname = 'renamed'").await == 1).then_some(())
    })
    .await;
    assert_in_sync(&verify(&master, "nantes").await);

    nantes.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_offline_slave_catches_up_from_its_watermark_and_removal_keeps_or_purges() {
    let (master, brest) = master_and_site("brest", "").await;
    insert_endpoints(&brest, "brest", 200).await;
    register(&master, &brest).await;
    let before = wait_for_replicated_endpoints(&master, "brest", 200).await;

    // Offline: changes pile up in the slave's database.
    let options = brest.halt().await;
    let client = rampart_tests::connect_database(&options.database_url()).await;
    client.execute("DELETE FROM endpoints WHERE id < 'brest-00010'", &[]).await.unwrap();
    client.execute("INSERT INTO virtual_groups (name) VALUES ('Servers')", &[]).await.unwrap();
    client
        .execute(
            "INSERT INTO virtual_group_members SELECT id, 'brest-00100' FROM virtual_groups WHERE name = 'Servers'",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    let brest = TestServer::spawn(options).await;

    // Back online, it ships only what changed since its watermark.
    let after = wait_for_replicated_endpoints(&master, "brest", 190).await;
    assert_eq!(after["epoch"], before["epoch"], "no new snapshot: {after}");
    let shipped = after["rows"].as_i64().unwrap() - before["rows"].as_i64().unwrap();
    assert!((10..100).contains(&shipped), "shipped {shipped} rows after being offline, not the whole site: {after}");
    assert_in_sync(&verify(&master, "brest").await);
    let tree = master.get_ok("/api/tree?view=virtual").await;
    let servers = &tree["root"]["children"][0]["children"][0];
    assert_eq!(
        (servers["name"].as_str(), servers["endpoints"][0]["id"].as_str()),
        (Some("Servers"), Some("brest-00100")),
        "{tree}"
    );

    // Removing keeps the copy unless purged; the answer says which.
    let (status, removed) = master.delete("/api/slaves/brest").await;
    assert_eq!(status, 200, "{removed}");
    assert!(removed["message"].as_str().unwrap().contains("kept"), "{removed}");
    assert!(removed["replicated_rows_kept"].as_i64().unwrap() >= 190);
    let (status, purged) = master.delete("/api/slaves/brest?purge=true").await;
    assert_eq!(status, 200, "{purged}");
    assert!(purged["message"].as_str().unwrap().contains("purged"), "{purged}");
    assert_eq!(count(&master, "SELECT count(*) FROM replica_rows WHERE slave_id = 'brest'").await, 0);

    brest.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_restored_from_an_old_backup_gets_a_full_snapshot() {
    let (master, rennes) = master_and_site("rennes", "").await;
    insert_endpoints(&rennes, "rennes", 100).await;
    register(&master, &rennes).await;
    wait_for_replicated_endpoints(&master, "rennes", 100).await;
    let old_copy: Vec<(String, i64, serde_json::Value)> = {
        let client = master.state.pool.get().await.unwrap();
        let rows = client
            .query("SELECT row_key::text, change_seq, row FROM replica_rows WHERE slave_id = 'rennes' AND table_name = 'endpoints' AND row ->> 'id' < 'rennes-00005'", &[])
            .await
            .unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
    };
    assert_eq!(old_copy.len(), 5);

    // Deletions reach the master; once it has applied them, the slave drops its tombstones.
    rennes
        .state
        .pool
        .get()
        .await
        .unwrap()
        .execute("DELETE FROM endpoints WHERE id < 'rennes-00005'", &[])
        .await
        .unwrap();
    let (status, body) = rennes.post("/api/replication/now", json!({})).await;
    assert_eq!(status, 202, "{body}");
    wait_for_replicated_endpoints(&master, "rennes", 95).await;
    wait_for("the slave to prune the tombstones the master applied", || async {
        (count(&rennes, "SELECT count(*) FROM tombstones").await == 0).then_some(())
    })
    .await;

    // The master's database comes back from a backup taken before the deletions.
    let client = master.state.pool.get().await.unwrap();
    for (key, seq, row) in &old_copy {
        client
            .execute("UPDATE replica_rows SET change_seq = $2, row = $3 WHERE slave_id = 'rennes' AND row_key = $1::text::jsonb", &[key, seq, row])
            .await
            .unwrap();
    }
    client.execute("UPDATE slaves SET repl_xid = 0, repl_seq = 0 WHERE id = 'rennes'", &[]).await.unwrap();
    drop(client);
    assert_eq!(count(&master, "SELECT count(*) FROM replica_endpoints WHERE slave_id = 'rennes'").await, 100);

    // The slave cannot replay deletions it no longer has: it sends a new epoch, which replaces the copy.
    let (status, body) = rennes.post("/api/replication/now", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let replication = wait_for("a new epoch on the master", || async {
        let r = replication_of(&master, "rennes").await;
        (r["epoch"] == 2 && r["replicated_endpoints"] == 95).then_some(r)
    })
    .await;
    assert!(replication["refused_batches"].as_i64().unwrap() >= 1, "{replication}");
    assert_in_sync(&verify(&master, "rennes").await);

    rennes.stop(&[]).await;
    master.stop(&[]).await;
}
