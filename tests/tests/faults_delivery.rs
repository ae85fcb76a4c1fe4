//! Delivery faults: the real signed messages of a master and a slave,
//! captured on the way and injected again straight into the queues,
//! duplicated and in reverse order (commands, replication batches, reports
//! and heartbeats); a master whose copy lost its tail, so the slave's next
//! batch leaves a gap; and a slave offline for a long time (time-compressed:
//! a long queue of commands and a long backlog of changes, its master
//! having not heard of it for an hour). Nothing may change in effect: no
//! duplicate, no stale overwrite, gaps detected and resent, replication
//! resumed from the watermark.

use std::sync::atomic::Ordering;

use chrono::Utc;
use lapin::options::QueueDeclareOptions;
use rampart_server::replication::{changes, replicator};
use rampart_shared::{
    replication::{kind as replication_kind, ReplicationBatch},
    Secret,
};
use rampart_tests::{
    faults::{
        broker::PrivateBroker,
        replication_counts, take_turn,
        tap::{Captured, Tap},
        traffic::{edit_policies, fan_out, settle, Stack, Writers, FAST_REPLICATION},
        Timeline,
    },
    hierarchy::{insert_endpoints, replication_of, wait_for_receipts},
    inject, wait_for, ServerOptions, TestServer,
};
use serde_json::json;

/// Everything captured, newest first, twice.
fn reversed_twice(captured: &[Captured], exchange: &str) -> Vec<rampart_shared::amqp::publisher::Outgoing> {
    let once: Vec<_> = captured.iter().rev().map(|m| m.replay(exchange)).collect();
    once.iter().chain(&once).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_duplicated_and_reordered_messages_change_nothing_and_a_gap_is_resent() {
    let _turn = take_turn().await;
    let scenario = "replays-and-gaps";
    let timeline = Timeline::new(scenario);
    let stack = Stack::start(ServerOptions::master(), &["paris"], 200, |s| s.extra_xml = FAST_REPLICATION.into()).await;
    let (master, paris) = (&stack.master, &stack.slaves[0]);
    let t = master.topology();
    let commands = Tap::bind(master, "commands", t.commands_exchange(), "slave.paris").await;
    // Both replication lanes: `slave.paris` (bulk) and `slave.paris.live`.
    let batches = Tap::bind(master, "replication", t.replication_exchange(), "slave.paris.#").await;
    let reports = Tap::bind(master, "status", t.status_exchange(), "slave.paris.#").await;

    // Real traffic: a policy in three versions, a task, replication under writers.
    let writers = Writers::updates_only(paris, 2, 300);
    let sent = fan_out(master, "Replayed", 1, 1).await;
    let policy = sent.policies[0].clone();
    for version in [1, 2, 3] {
        if version > 1 {
            edit_policies(master, &sent, version == 2).await;
        }
        wait_for_receipts(master, &policy, &["paris"], &format!("version {version} applied"), |r| {
            r["version"] == version && r["state"] != "pending"
        })
        .await;
    }
    writers.finish().await;
    // A heartbeat of paris with 200 computers on the tap, then a newer one
    // with 220: replayed, the older must not win.
    let mut reports_seen = Vec::new();
    let deadline = tokio::time::Instant::now() + rampart_tests::WAIT;
    while !reports_seen.iter().any(|m: &Captured| m.envelope.kind == rampart_shared::hierarchy::kind::HEARTBEAT) {
        assert!(tokio::time::Instant::now() < deadline, "no heartbeat of paris within {:?}", rampart_tests::WAIT);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        reports_seen.extend(reports.drain().await);
    }
    insert_endpoints(paris, "late", 20).await;
    master.wait_for_field("/api/slaves/paris", "endpoints", 220).await;
    settle(master, &stack.slave_refs()).await;
    timeline.mark("traffic captured");

    reports_seen.extend(reports.drain().await);
    let (commands_seen, batches_seen) = (commands.drain().await, batches.drain().await);
    assert!(
        commands_seen.len() >= 4 && batches_seen.len() >= 3 && reports_seen.len() >= 3,
        "{} {} {}",
        commands_seen.len(),
        batches_seen.len(),
        reports_seen.len()
    );
    let before = replication_of(master, "paris").await;
    let dead_letters = (
        master.state.hierarchy_metrics.dead_lettered.load(Ordering::Relaxed),
        paris.state.hierarchy_metrics.dead_lettered.load(Ordering::Relaxed),
    );
    let seen = (
        replication_counts(master).0,
        master.state.hierarchy_metrics.applied.load(Ordering::Relaxed),
        paris.state.hierarchy_metrics.applied.load(Ordering::Relaxed),
    );
    let mut replays = reversed_twice(&commands_seen, commands.exchange());
    replays.extend(reversed_twice(&batches_seen, batches.exchange()));
    replays.extend(reversed_twice(&reports_seen, reports.exchange()));
    inject(replays).await;
    wait_for("every replay consumed", || async {
        let now = (
            replication_counts(master).0,
            master.state.hierarchy_metrics.applied.load(Ordering::Relaxed),
            paris.state.hierarchy_metrics.applied.load(Ordering::Relaxed),
        );
        let n = |v: &[Captured]| 2 * v.len() as u64;
        (now.0 >= seen.0 + n(&batches_seen)
            && now.1 >= seen.1 + n(&reports_seen)
            && now.2 >= seen.2 + n(&commands_seen))
        .then_some(())
    })
    .await;
    // Read before the next real heartbeat (every 10 s) could mend it.
    let heartbeats =
        reports_seen.iter().filter(|m| m.envelope.kind == rampart_shared::hierarchy::kind::HEARTBEAT).count();
    let shown = master.get_ok("/api/slaves/paris").await;
    assert_eq!(shown["endpoints"], 220, "one of {heartbeats} replayed old heartbeats overwrote a newer one: {shown}");
    settle(master, &stack.slave_refs()).await;
    timeline.mark("replays consumed");

    // Genuine messages, so none is refused as a forgery; every replayed
    // batch is refused as a duplicate (the checker shows nothing changed).
    let after = replication_of(master, "paris").await;
    assert!(
        after["refused_batches"].as_i64().unwrap()
            >= before["refused_batches"].as_i64().unwrap() + 2 * batches_seen.len() as i64,
        "{after}"
    );
    assert_eq!(
        (
            master.state.hierarchy_metrics.dead_lettered.load(Ordering::Relaxed),
            paris.state.hierarchy_metrics.dead_lettered.load(Ordering::Relaxed)
        ),
        dead_letters
    );

    // The master's copy loses its tail (restored from a backup taken a few
    // batches ago): the slave's next batch leaves a gap, which is refused
    // and answered with the older watermark; the slave resends from there.
    let middle: ReplicationBatch = batches_seen
        .iter()
        .filter(|m| m.envelope.kind == replication_kind::BATCH)
        .nth(batches_seen.len() / 2)
        .expect("a batch in the middle")
        .envelope
        .body()
        .expect("a batch body");
    let client = master.state.pool.get().await.unwrap();
    client
        .execute(
            "UPDATE slaves SET repl_xid = $2, repl_seq = $3 WHERE id = $1",
            &[&"paris", &middle.from.xid, &middle.from.seq],
        )
        .await
        .unwrap();
    drop(client);
    let healed_at = Utc::now();
    paris
        .state
        .pool
        .get()
        .await
        .unwrap()
        .execute("UPDATE endpoints SET hostname = 'after-the-gap' WHERE id = 'paris-00007'", &[])
        .await
        .unwrap();
    wait_for("the rename to cross the gap", || async {
        let client = master.state.pool.get().await.ok()?;
        let n: i64 = client
            .query_one("SELECT count(*) FROM replica_endpoints WHERE hostname = 'after-the-gap'", &[])
            .await
            .ok()?
            .get(0);
        (n == 1).then_some(())
    })
    .await;
    let resent = replication_of(master, "paris").await;
    assert!(
        resent["refused_batches"].as_i64().unwrap() > after["refused_batches"].as_i64().unwrap(),
        "the gap was detected: {resent}"
    );

    let report = stack.settle_and_check(scenario, healed_at).await;
    timeline.mark("settled and checked");
    report.assert_clean();
    stack.assert_one_epoch().await;
    for tap in [commands, batches, reports] {
        tap.remove().await;
    }
    stack.stop().await;
}

/// The changes `url`'s server has not had acknowledged by its master.
async fn backlog_of(url: &str) -> i64 {
    let pool = rampart_shared::db::pool(url, 2).expect("a pool");
    let client = pool.get().await.expect("a connection");
    let stream = replicator::stream(&client).await.expect("the stream").expect("a slave");
    changes::backlog(&client, stream.acked).await.expect("the backlog")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slave_offline_for_long_keeps_its_commands_and_resumes_from_its_watermark() {
    let _turn = take_turn().await;
    let scenario = "slave-offline-long";
    let timeline = Timeline::new(scenario);
    let mut stack =
        Stack::start(ServerOptions::master(), &["paris", "lyon"], 300, |s| s.extra_xml = FAST_REPLICATION.into()).await;
    stack.wait_for_copies(300).await;
    let standing = fan_out(&stack.master, "Standing", 3, 0).await;
    stack.wait_for_receipts(&standing).await;
    let paris = stack.slaves.remove(0);
    let url = paris.options.database_url();
    let options = paris.halt().await;
    let before = replication_of(&stack.master, "paris").await;
    timeline.mark("paris offline");

    // Offline for long, time-compressed: many commands queue up for it, and
    // its database changes a lot meanwhile.
    for round in 0..10 {
        edit_policies(&stack.master, &standing, round % 2 == 0).await;
    }
    let away = fan_out(&stack.master, "While away", 2, 3).await;
    let (status, body) = stack.master.delete(&away.policies[1]).await;
    assert!(status.is_success(), "{status} {body}");
    let committed = Writers::spawn(url.clone(), "paris", 2, 400, true).complete().await;
    assert_eq!(committed, 800);
    let client = stack.master.state.pool.get().await.unwrap();
    client.execute("UPDATE slaves SET last_seen = now() - interval '1 hour' WHERE id = 'paris'", &[]).await.unwrap();
    drop(client);
    stack.master.wait_for_field("/api/slaves/paris", "state", "offline").await;
    let broker =
        rampart_shared::amqp::Broker::new(Secret::new(stack.master.options.amqp_url.clone()), "rampart-tests probe");
    let queued = broker
        .channel()
        .await
        .unwrap()
        .queue_declare(
            stack.master.topology().slave_commands_queue("paris").as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            Default::default(),
        )
        .await
        .unwrap()
        .message_count();
    broker.close().await;
    assert!(queued >= 36, "the commands wait for paris in its queue: {queued}");
    let backlog = backlog_of(&url).await;
    assert!(backlog > 300, "paris changed {backlog} rows while offline");
    timeline.mark("a long absence compressed");

    let paris = TestServer::spawn(options).await;
    let healed_at = Utc::now();
    stack.master.wait_for_field("/api/slaves/paris", "state", "online").await;
    stack.slaves.insert(0, paris);
    let report = stack.settle_and_check(scenario, healed_at).await;
    timeline.mark("settled and checked");
    report.assert_clean();

    // Back online it shipped what changed since its watermark, not a new snapshot.
    stack.assert_one_epoch().await;
    let after = replication_of(&stack.master, "paris").await;
    let shipped = after["rows"].as_i64().unwrap() - before["rows"].as_i64().unwrap();
    assert!(shipped >= backlog, "shipped {shipped} rows for a backlog of {backlog}: {after}");
    let policies = stack.slaves[0].get_ok("/api/policies").await;
    let names: Vec<&str> = policies
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["owner"] == "master")
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names.len(),
        4,
        "3 standing + 1 of the 2 made while away (the other was removed): {names:?} {}",
        json!(policies)
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slave_queue_that_refuses_every_message_holds_up_only_that_slave() {
    let _turn = take_turn().await;
    let scenario = "one-queue-refusing";
    let timeline = Timeline::new(scenario);
    // A private node: the fault is a broker policy on one queue.
    let node = PrivateBroker::start().await;
    let mut master = ServerOptions::master();
    master.amqp_url = node.url();
    let mut stack = Stack::start(master, &["paris", "lyon"], 100, |s| s.extra_xml = FAST_REPLICATION.into()).await;
    stack.wait_for_copies(100).await;
    let master = &stack.master;
    let to_paris = Tap::bind(master, "to-paris", master.topology().commands_exchange(), "slave.paris").await;

    // Lyon is offline and its queue full (a length limit of one message,
    // overflow rejecting): the broker refuses (nacks) lyon's messages.
    let lyon = stack.slaves.pop().expect("lyon").halt().await;
    let lyon_queue = master.topology().slave_commands_queue("lyon");
    let pattern = format!("^{}$", lyon_queue.replace('.', "\\."));
    node.ctl(&[
        "set_policy",
        "--apply-to",
        "queues",
        "full",
        &pattern,
        r#"{"max-length": 1, "overflow": "reject-publish"}"#,
    ])
    .await;
    wait_for("the policy on lyon's queue", || async {
        let listing = node.ctl(&["list_queues", "-q", "--no-table-headers", "name", "policy"]).await;
        listing.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [lyon_queue.as_str(), "full"]).then_some(())
    })
    .await;
    let sent = fan_out(master, "Past a refusing queue", 3, 1).await;
    for path in sent.policies.iter().chain(&sent.tasks) {
        wait_for_receipts(master, path, &["paris"], "paris to get everything while lyon's queue refuses", |r| {
            r["state"] != "pending"
        })
        .await;
    }
    timeline.mark("paris served while lyon's queue refused");
    // Room again (a new limit: RabbitMQ 3.10 keeps refusing a quorum queue
    // whose length policy was cleared, as if the old limit still held).
    node.ctl(&[
        "set_policy",
        "--apply-to",
        "queues",
        "full",
        &pattern,
        r#"{"max-length": 1000000, "overflow": "reject-publish"}"#,
    ])
    .await;
    let lyon = TestServer::spawn(lyon).await;
    let healed_at = Utc::now();
    stack.slaves.push(lyon);
    stack.wait_for_receipts(&sent).await;
    timeline.mark("lyon served once its queue accepts again");

    let report = stack.settle_and_check(scenario, healed_at).await;
    report.assert_clean();
    // Paris got each command once: the relay did not publish paris's
    // messages again each time lyon's were refused.
    let mut copies: std::collections::BTreeMap<uuid::Uuid, usize> = std::collections::BTreeMap::new();
    for m in
        to_paris.drain().await.iter().filter(|m| m.envelope.kind == "master.policy" || m.envelope.kind == "master.task")
    {
        *copies.entry(m.envelope.id).or_default() += 1;
    }
    assert_eq!(copies.len(), 4, "{copies:?}");
    assert!(copies.values().all(|n| *n == 1), "paris's commands were published again and again: {copies:?}");
    to_paris.remove().await;
    stack.stop().await;
}
