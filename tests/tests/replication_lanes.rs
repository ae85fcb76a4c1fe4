//! The master's two replication lanes (`Lane`): a caught-up slave's batch
//! goes to the live queue and does not wait behind the backlogs in the
//! bulk one, a caught-up slave whose batch was lost sends it again while
//! the bulk queue is still full, and a backlog's batch waits for room in
//! a full bulk queue.

use std::time::Duration;

use lapin::{options::QueuePurgeOptions, Connection, ConnectionProperties};
use rampart_server::replication::replicator::ACK_TIMEOUT;
use rampart_shared::{amqp::publisher::Outgoing, replication::Lane, topology::Topology};
use rampart_tests::{
    hierarchy::{insert_endpoints, register, wait_for_replicated_endpoints},
    inject, queue_depth, wait_for, ServerOptions, TestServer, AMQP_URL, WAIT,
};
use tokio::time::Instant;

/// The value of one series (name and labels, as printed) of a `/metrics` text.
fn sample(metrics: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    let line = metrics.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {series} in {metrics}"));
    line[prefix.len()..].parse().unwrap()
}

/// A master with two registered slaves, then down: lyon (batches of 100
/// rows) gathers ten batches' worth of changes and nice a few, and both
/// restart, so that each one's next pass sends its first batch and waits
/// for the master's answer, lyon's in the bulk lane, nice's in the live
/// one. `fillers` messages are put in the bulk queue before the restart.
/// Returns the master's options (to start it again) and the slaves.
async fn master_down_with_a_backlog_and_a_caught_up_slave(fillers: usize) -> (ServerOptions, TestServer, TestServer) {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let topo = master.topology();
    let site = |name: &str| {
        let mut options = ServerOptions::site(name, &master.options.namespace);
        options.extra_xml = "<ReplicationBatchSize>100</ReplicationBatchSize>".to_owned();
        options
    };
    let (lyon, nice) = tokio::join!(TestServer::spawn(site("lyon")), TestServer::spawn(site("nice")));
    for slave in [&lyon, &nice] {
        insert_endpoints(slave, &slave.options.instance, 3).await;
        register(&master, slave).await;
        wait_for_replicated_endpoints(&master, &slave.options.instance, 3).await;
    }

    let options = master.halt().await;
    insert_endpoints(&lyon, "lyon-b", 1_000).await;
    insert_endpoints(&nice, "nice-b", 5).await;
    let (lyon, nice) = (lyon.halt().await, nice.halt().await);
    let filler = || Outgoing {
        exchange: topo.replication_exchange(),
        routing_key: Topology::replication_key("filler", Lane::Bulk),
        payload: b"filler".to_vec(),
        properties: Default::default(),
    };
    inject((0..fillers).map(|_| filler()).collect()).await;
    let (lyon, nice) = tokio::join!(TestServer::spawn(lyon), TestServer::spawn(nice));
    (options, lyon, nice)
}

/// Waits for one batch in each lane's queue, and checks there is only one.
async fn one_batch_in_each_lane(topo: &Topology) {
    let (bulk, live) = (topo.master_replication_queue(), topo.master_live_replication_queue());
    let depths = wait_for("lyon's first full batch in the bulk queue and nice's batch in the live one", || async {
        let depths = (queue_depth(&bulk).await?, queue_depth(&live).await?);
        (depths.0 >= 1 && depths.1 >= 1).then_some(depths)
    })
    .await;
    assert_eq!(depths, (1, 1), "one batch in flight per slave, each in its lane");
}

/// With the master down, a slave draining a backlog leaves a full batch in
/// the bulk queue and a slave that keeps up leaves its caught-up batch in
/// the live queue, where it does not wait behind the backlog; back up, the
/// master applies both, the second through the live lane's consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caught_up_batch_takes_the_live_lane_and_a_backlog_the_bulk_one() {
    let (options, lyon, nice) = master_down_with_a_backlog_and_a_caught_up_slave(0).await;
    one_batch_in_each_lane(&lyon.topology()).await;

    let master = TestServer::spawn(options).await;
    wait_for_replicated_endpoints(&master, "nice", 8).await;
    wait_for_replicated_endpoints(&master, "lyon", 1_003).await;
    let metrics = master.metrics().await;
    let applied =
        |consumer: &str| sample(&metrics, &format!("rampart_messages_applied_total{{consumer=\"{consumer}\"}}"));
    assert!(applied("replication") >= 9.0, "lyon's backlog went through the bulk lane: {metrics}");
    assert!(applied("replication_live") >= 2.0, "nice's and lyon's caught-up batches through the live one: {metrics}");

    lyon.stop(&[]).await;
    nice.stop(&[]).await;
    master.stop(&[]).await;
}

/// A caught-up batch lost on its way (its queue purged) is sent again once
/// the slave's wait for the answer runs out, although the bulk queue still
/// holds another slave's backlog: a full bulk queue says the master is
/// behind on backlogs, not on the live lane, so it is no reason to wait on
/// (it once kept a live slave waiting up to ten minutes during a drain).
/// The backlogged slave, whose batch is still queued, waits and does not
/// resend. Back up, the master holds every row of both, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_caught_up_batch_is_resent_while_the_bulk_queue_is_full() {
    let (options, lyon, nice) = master_down_with_a_backlog_and_a_caught_up_slave(0).await;
    let topo = lyon.topology();
    one_batch_in_each_lane(&topo).await;
    let (bulk, live) = (topo.master_replication_queue(), topo.master_live_replication_queue());

    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default()).await.expect("broker reachable");
    let channel = connection.create_channel().await.expect("a channel");
    let purged = channel.queue_purge(live.as_str().into(), QueuePurgeOptions::default()).await.expect("purged");
    assert_eq!(purged, 1, "nice's batch was the live queue's only message");
    let lost_at = Instant::now();
    let _ = connection.close(200, "purged".into()).await;

    wait_for("nice to send its caught-up batch again", || async { (queue_depth(&live).await? == 1).then_some(()) })
        .await;
    let resent_after = lost_at.elapsed();
    assert!(resent_after <= ACK_TIMEOUT + Duration::from_secs(5), "resent {resent_after:?} after the loss");
    assert!(resent_after < WAIT, "within the test's wait, far below the ten minutes of the longest wait");
    assert_eq!(queue_depth(&bulk).await, Some(1), "lyon waits for the master behind its queued batch, no resend");

    let master = TestServer::spawn(options).await;
    wait_for_replicated_endpoints(&master, "nice", 8).await;
    wait_for_replicated_endpoints(&master, "lyon", 1_003).await;

    lyon.stop(&[]).await;
    nice.stop(&[]).await;
    master.stop(&[]).await;
}

/// A slave draining a backlog holds its bulk batch back while the master's
/// bulk queue already holds as many ready batches as the master applies at
/// once (five fillers here), and its `/metrics` say so; a caught-up slave's
/// batch goes to the live lane meanwhile. Once the queue has room, the
/// held batch goes, and the master, back up, holds every row of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_batch_waits_for_room_in_a_full_bulk_queue() {
    let (options, lyon, nice) = master_down_with_a_backlog_and_a_caught_up_slave(5).await;
    let topo = lyon.topology();
    let (bulk, live) = (topo.master_replication_queue(), topo.master_live_replication_queue());

    wait_for("lyon to hold its first batch back", || async {
        sample(&lyon.metrics().await, "rampart_replication_bulk_held").eq(&1.0).then_some(())
    })
    .await;
    wait_for("nice's caught-up batch in the live queue", || async { (queue_depth(&live).await? == 1).then_some(()) })
        .await;
    assert_eq!(queue_depth(&bulk).await, Some(5), "the full bulk queue holds only the fillers: lyon's batch waits");

    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default()).await.expect("broker reachable");
    let channel = connection.create_channel().await.expect("a channel");
    channel.queue_purge(bulk.as_str().into(), QueuePurgeOptions::default()).await.expect("purged");
    let _ = connection.close(200, "purged".into()).await;
    wait_for("lyon's held batch in the emptied bulk queue", || async {
        (queue_depth(&bulk).await? == 1).then_some(())
    })
    .await;
    assert_eq!(sample(&lyon.metrics().await, "rampart_replication_bulk_held"), 0.0, "no longer held");

    let master = TestServer::spawn(options).await;
    wait_for_replicated_endpoints(&master, "nice", 8).await;
    wait_for_replicated_endpoints(&master, "lyon", 1_003).await;

    lyon.stop(&[]).await;
    nice.stop(&[]).await;
    master.stop(&[]).await;
}
