//! Broker faults during fan-out and replication, on a private RabbitMQ node:
//! the application stopped and started again (`stop_app`/`start_app`), the
//! node killed with `kill -9` and started again on its data, and the node
//! frozen (SIGSTOP) for longer than its heartbeat, then thawed. Each time a
//! master and two slaves carry policies, tasks and a few thousand replicated
//! rows under concurrent writers; after healing the checker must count 0
//! lost, duplicated, stale and reordered, with no operator action.

use std::time::Duration;

use chrono::Utc;
use rampart_tests::{
    faults::{
        broker::{PrivateBroker, HEARTBEAT},
        resident_memory, take_turn,
        traffic::{edit_policies, fan_out, outbox_depth, Stack, Writers, FAST_REPLICATION},
        Timeline,
    },
    wait_for, ServerOptions,
};

/// How each scenario breaks the broker.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// `rabbitmqctl stop_app`, held, then `start_app`.
    StopApp,
    /// `kill -9` of the node, held, then a start on the same data.
    Kill,
    /// SIGSTOP for longer than the heartbeat, then SIGCONT.
    Freeze,
}

/// Seconds a fault is held (longer with `RAMPART_CHAOS_LONG=1`).
fn hold(fault: Fault) -> Duration {
    let long = std::env::var("RAMPART_CHAOS_LONG").is_ok_and(|v| v == "1");
    let seconds = match fault {
        // Longer than two heartbeats, so every client gives its connection up.
        Fault::Freeze => 3 * HEARTBEAT + 3,
        Fault::StopApp | Fault::Kill => 5,
    };
    Duration::from_secs(if long { seconds * 4 } else { seconds })
}

async fn broker_fault_during_traffic(scenario: &str, fault: Fault) {
    let _turn = take_turn().await;
    let timeline = Timeline::new(scenario);
    let broker = PrivateBroker::start().await;
    timeline.mark("broker up");
    let mut master = ServerOptions::master();
    master.amqp_url = broker.url();
    let stack = Stack::start(master, &["paris", "lyon"], 400, |s| s.extra_xml = FAST_REPLICATION.into()).await;
    stack.wait_for_copies(400).await;
    let baseline = fan_out(&stack.master, "Baseline", 1, 0).await;
    stack.wait_for_receipts(&baseline).await;
    timeline.mark("hierarchy registered and replicated");

    // Traffic in full flow when the fault comes: policies and a task on
    // their way out, writers on every slave, replication every second.
    let writers: Vec<Writers> = stack.slaves.iter().map(|s| Writers::start(s, 2, 5_000)).collect();
    // A few replication rounds under the writers before the fault. (A quorum
    // queue declared well under a second before a kill -9 of its node came
    // back without a leader on RabbitMQ 3.10: see docs/reliability.md.)
    for _ in 0..3 {
        stack.wait_for_copies_to_grow().await;
    }
    let sent = fan_out(&stack.master, "Before", 3, 1).await;
    let before_fault = resident_memory();
    match fault {
        Fault::StopApp => broker.stop_app().await,
        Fault::Kill => broker.kill().await,
        Fault::Freeze => broker.freeze(),
    }
    timeline.mark("fault injected");

    // While the broker is away the API keeps working: the new versions and a
    // new task wait in the outbox, unconfirmed.
    let started = tokio::time::Instant::now();
    edit_policies(&stack.master, &sent, false).await;
    fan_out(&stack.master, "During", 1, 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the API hung while the broker was away: {:?}",
        started.elapsed()
    );
    assert!(outbox_depth(&stack.master).await > 0, "the commands made while the broker is away wait in the outbox");
    tokio::time::sleep(hold(fault).saturating_sub(started.elapsed())).await; // holds the fault, waits for nothing
    match fault {
        Fault::StopApp => broker.start_app().await,
        Fault::Kill => broker.restart().await,
        Fault::Freeze => broker.thaw(),
    }
    let healed_at = Utc::now();
    timeline.mark("healed");
    // What the writers did until now is the backlog the recovery must ship.
    let mut committed = 0;
    for w in writers {
        committed += w.finish().await;
    }
    assert!(committed > 200, "the writers committed only {committed} transactions");

    // Unattended recovery: replication resumes and the commands made during
    // the fault go out, with nobody restarting anything.
    stack.wait_for_copies_to_grow().await;
    timeline.mark("replication resumed");
    let report = stack.settle_and_check(scenario, healed_at).await;
    timeline.mark("settled and checked");
    report.assert_clean();
    // Every consumer is back on its queue, without a restart.
    let queues = broker.queues().await;
    for q in stack.consumed_queues() {
        let consumers = queues.iter().find(|(name, ..)| *name == q).map_or(0, |(_, _, _, c)| *c);
        assert!(consumers >= 1, "nobody consumes {q} after the fault: {queues:?}");
    }
    for server in std::iter::once(&stack.master).chain(&stack.slaves) {
        // Answers to the slaves' batches keep passing through it: it drains.
        wait_for(&format!("{}'s outbox to drain", server.options.instance), || async {
            (outbox_depth(server).await == 0).then_some(())
        })
        .await;
    }
    let grown = resident_memory().saturating_sub(before_fault);
    assert!(grown < 256 << 20, "memory grew by {} MiB over the fault", grown >> 20);
    stack.assert_one_epoch().await;
    stack.stop().await;
    timeline.mark("torn down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restarted_during_fan_out_and_replication_loses_and_duplicates_nothing() {
    broker_fault_during_traffic("broker-stop-app", Fault::StopApp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_killed_during_fan_out_and_replication_loses_and_duplicates_nothing() {
    broker_fault_during_traffic("broker-kill-9", Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_frozen_past_its_heartbeat_hangs_nothing_and_recovers_unattended() {
    broker_fault_during_traffic("broker-freeze", Fault::Freeze).await;
}
