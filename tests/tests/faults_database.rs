//! The master's PostgreSQL stopped during replication, on a private cluster:
//! once as an operator would (`pg_ctl stop -m fast`) and once as a crash
//! would (`-m immediate`), each held for a while under concurrent writers on
//! both slaves. While it is down the master must take no delivery it cannot
//! commit (nothing acknowledged to the slaves, nothing applied) and must
//! not spin (its consumers back off); once it is back everything catches
//! up unattended and the checker counts 0 lost, duplicated, stale and
//! reordered.

use std::{sync::atomic::Ordering, time::Duration};

use chrono::Utc;
use rampart_tests::{
    faults::{
        postgres::{PrivatePostgres, StopMode},
        replication_counts, take_turn,
        traffic::{fan_out, Stack, Writers, FAST_REPLICATION},
        Timeline,
    },
    ServerOptions, TestServer,
};

/// Seconds each outage lasts (longer with `RAMPART_CHAOS_LONG=1`).
fn outage() -> Duration {
    let long = std::env::var("RAMPART_CHAOS_LONG").is_ok_and(|v| v == "1");
    Duration::from_secs(if long { 30 } else { 8 })
}

/// The batch number each slave has had answered (from its own database).
async fn answered_batches(slaves: &[TestServer]) -> Vec<i64> {
    let mut answered = Vec::new();
    for slave in slaves {
        let client = slave.state.pool.get().await.expect("a slave connection");
        let row = client.query_one("SELECT repl_acked_batch FROM master_link", &[]).await.expect("the slave's link");
        answered.push(row.get(0));
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_masters_database_stopped_during_replication_acks_nothing_early_spins_not_and_catches_up() {
    let _turn = take_turn().await;
    let scenario = "master-db-stopped";
    let timeline = Timeline::new(scenario);
    let cluster = PrivatePostgres::start().await;
    let mut master = ServerOptions::master();
    master.pg_base = cluster.base_url();
    let stack = Stack::start(master, &["paris", "lyon"], 400, |s| s.extra_xml = FAST_REPLICATION.into()).await;
    stack.wait_for_copies(400).await;
    fan_out(&stack.master, "Baseline", 2, 1).await;
    timeline.mark("hierarchy registered and replicated");

    let mut healed_at = Utc::now();
    for mode in [StopMode::Fast, StopMode::Immediate] {
        let writers: Vec<Writers> = stack.slaves.iter().map(|s| Writers::start(s, 2, 5_000)).collect();
        stack.wait_for_copies_to_grow().await;
        let counts = || replication_counts(&stack.master);
        cluster.stop(mode).await;
        timeline.mark(&format!("master database stopped ({mode:?})"));
        // Counted once it is down (batches commit until pg_ctl has stopped it).
        let (applied_before, retries_before) = counts();
        let answered_then = answered_batches(&stack.slaves).await;
        tokio::time::sleep(outage()).await; // holds the fault, waits for nothing

        // Nothing was applied or answered while the database was away, and
        // the consumers backed off instead of retrying in a loop.
        let answered_now = answered_batches(&stack.slaves).await;
        assert_eq!(answered_now, answered_then, "a slave was answered while the master could not commit");
        let (applied_now, retries_now) = counts();
        assert_eq!(applied_now, applied_before, "the master applied batches without its database");
        let retries = retries_now - retries_before;
        // Each of the two replication lanes' consumers backs off on its own.
        let per_consumer = 3 + 2 * outage().as_secs();
        let bound = 2 * per_consumer;
        println!("{scenario}: {mode:?} outage of {:?}: {retries} replication consumer retries", outage());
        assert!(retries <= bound, "{retries} retries in {:?}: a hot loop (at most {bound} expected)", outage());
        let status_retries = stack.master.state.hierarchy_metrics.retries.load(Ordering::Relaxed);
        assert!(status_retries <= 2 * per_consumer, "{status_retries} status consumer retries: a hot loop");

        cluster.start_again().await;
        healed_at = Utc::now();
        timeline.mark("master database back");
        for w in writers {
            w.finish().await;
        }
        // Unattended catch-up: the held batches are applied, and new ones follow.
        stack.wait_for_copies_to_grow().await;
        assert!(counts().0 > applied_before, "the master applied nothing after its database came back");
        timeline.mark("replication resumed");
    }

    let report = stack.settle_and_check(scenario, healed_at).await;
    timeline.mark("settled and checked");
    report.assert_clean();
    stack.assert_one_epoch().await;
    stack.stop().await;
    timeline.mark("torn down");
}
