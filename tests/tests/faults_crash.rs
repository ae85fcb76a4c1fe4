//! Crashes at the worst moments, as `kill -9` would: the master killed
//! after the broker confirmed its commands but before its outbox forgot them
//! (so they go out twice), and a slave killed in the middle of its
//! replication snapshot. Every effect must still happen exactly once.
//! (The master killed between a replication commit and its ack is in
//! `hierarchy_replication.rs`.)

use std::collections::BTreeMap;

use chrono::Utc;
use rampart_shared::hierarchy::kind;
use rampart_tests::{
    faults::{
        take_turn,
        tap::Tap,
        traffic::{fan_out, Stack, Writers, FAST_REPLICATION},
        Timeline,
    },
    hierarchy::replication_of,
    wait_for, ServerOptions, TestServer, WAIT,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_killed_between_the_brokers_confirm_and_its_outbox_delete_has_each_command_take_effect_once() {
    let _turn = take_turn().await;
    let scenario = "master-kill-after-confirm";
    let timeline = Timeline::new(scenario);
    let Stack { master, slaves } =
        Stack::start(ServerOptions::master(), &["paris", "lyon"], 200, |s| s.extra_xml = FAST_REPLICATION.into()).await;
    let commands = Tap::bind(&master, "commands", master.topology().commands_exchange(), "slave.*").await;
    let writers: Vec<Writers> = slaves.iter().map(|s| Writers::start(s, 1, 5_000)).collect();
    timeline.mark("hierarchy registered");

    // The relay dies once the broker confirmed the batch carrying the tasks.
    master.state.failpoints.die_after_relaying(kind::TASK);
    fan_out(&master, "Crash", 2, 2).await;
    tokio::time::timeout(WAIT, master.state.failpoints.fired.notified()).await.expect("the failpoint fired");
    let options = master.kill().await;
    timeline.mark("master killed after the confirm");
    let left: i64 = rampart_tests::connect_database(&options.database_url())
        .await
        .query_one("SELECT count(*) FROM outbox WHERE kind = $1", &[&kind::TASK])
        .await
        .expect("the outbox")
        .get(0);
    assert!(left >= 2, "the confirmed tasks are still in the outbox ({left}): the relay must publish them again");

    let master = TestServer::spawn(options).await;
    let healed_at = Utc::now();
    timeline.mark("master started again");
    for w in writers {
        w.finish().await;
    }
    let stack = Stack { master, slaves };
    let report = stack.settle_and_check(scenario, healed_at).await;
    timeline.mark("settled and checked");
    report.assert_clean();

    // The fault did deliver the tasks twice; only the effect was once.
    let mut copies: BTreeMap<uuid::Uuid, usize> = BTreeMap::new();
    for m in commands.drain().await.iter().filter(|m| m.envelope.kind == kind::TASK) {
        *copies.entry(m.envelope.id).or_default() += 1;
    }
    assert_eq!(copies.len(), 4, "two tasks to two slaves: {copies:?}");
    // The batch confirmed just before the kill went out again after the
    // restart (a task created after it went out once).
    assert!(
        copies.values().filter(|n| **n >= 2).count() >= 2,
        "the confirmed task commands were published again: {copies:?}"
    );
    assert!(copies.values().all(|n| *n >= 1), "{copies:?}");
    commands.remove().await;
    stack.assert_one_epoch().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slave_killed_in_the_middle_of_its_snapshot_resumes_from_its_watermark_and_applies_each_row_once() {
    let _turn = take_turn().await;
    let scenario = "slave-kill-mid-snapshot";
    let timeline = Timeline::new(scenario);
    let small_batches = "<ReplicationInterval>1</ReplicationInterval><ReplicationBatchSize>100</ReplicationBatchSize>";
    let mut stack =
        Stack::start(ServerOptions::master(), &["paris", "lyon"], 3000, |s| s.extra_xml = small_batches.into()).await;
    let paris = stack.slaves.remove(0);
    let url = paris.options.database_url();
    let batches = wait_for("a few of paris's snapshot batches applied", || async {
        let n = replication_of(&stack.master, "paris").await["batches"].as_i64().unwrap_or(0);
        (n >= 3).then_some(n)
    })
    .await;
    let options = paris.kill().await;
    timeline.mark(&format!("paris killed after {batches} batches"));
    let copied = replication_of(&stack.master, "paris").await;
    assert!(
        copied["replicated_endpoints"].as_i64().unwrap_or(0) < 3000,
        "the snapshot was still under way when paris died: {copied}"
    );

    // Its database lives on while it is down, and changes.
    let writers = [Writers::spawn(url, "paris", 2, 300, true), Writers::start(&stack.slaves[0], 1, 5_000)];
    let paris = TestServer::spawn(options).await;
    let healed_at = Utc::now();
    timeline.mark("paris started again");
    for w in writers {
        w.finish().await;
    }
    stack.slaves.insert(0, paris);
    let report = stack.settle_and_check(scenario, healed_at).await;
    timeline.mark("settled and checked");
    report.assert_clean();
    stack.assert_one_epoch().await;
    stack.stop().await;
}
