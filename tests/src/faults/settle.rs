//! Waiting for a healed stack to settle: nothing in flight anywhere (no
//! outbox row, no ready message on any queue of the stack, every slave's
//! changes acknowledged by the master) and the state stopped changing, so
//! the checker compares a final state.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::options::QueueDeclareOptions;
use rampart_server::replication::{changes, replicator};
use rampart_shared::{amqp::Broker, Secret};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::TestServer;

/// Upper bound of the wait for a healed stack to settle.
pub const SETTLE: Duration = Duration::from_secs(180);
/// How long the state must stay unchanged, with nothing in flight, to count
/// as settled: longer than the slaves' report interval (1 s).
const QUIET: Duration = Duration::from_secs(3);

/// Waits until nothing is in flight (outboxes empty, no ready message on
/// any queue of the stack, every slave's changes acknowledged by the
/// master) and the state has not changed for [`QUIET`]; bounded by
/// [`SETTLE`]. Returns when it settled.
pub async fn settle(master: &TestServer, slaves: &[&TestServer]) -> DateTime<Utc> {
    let t = master.topology();
    // Each server's queues on its own broker: one broker for the whole
    // stack, or a broker per site (docs/multi-site.md), whose link queues
    // hold what waits for the master's broker.
    let master_queues = vec![t.master_status_queue(), t.master_replication_queue(), t.master_live_replication_queue()];
    let mut brokers: Vec<(String, Vec<String>)> = vec![(master.options.amqp_url.clone(), master_queues)];
    for s in slaves {
        let name = &s.options.instance;
        let mut queues = vec![t.site_inbox(name), t.slave_commands_queue(name)];
        if s.options.amqp_url != master.options.amqp_url {
            queues.extend([t.link_status_queue(name), t.link_replication_queue(name)]);
        }
        match brokers.iter_mut().find(|(url, _)| *url == s.options.amqp_url) {
            Some((_, known)) => known.extend(queues),
            None => brokers.push((s.options.amqp_url.clone(), queues)),
        }
    }
    let brokers: Vec<(Broker, Vec<String>)> = brokers
        .into_iter()
        .map(|(url, queues)| (Broker::new(Secret::new(url), "rampart-tests settle"), queues))
        .collect();
    let deadline = Instant::now() + SETTLE;
    let mut last: Option<(Value, Instant)> = None;
    loop {
        let (in_flight, fingerprint) = snapshot(&brokers, master, slaves).await;
        let now = Instant::now();
        if in_flight.is_empty() {
            match &last {
                Some((seen, since)) if *seen == fingerprint && now.duration_since(*since) >= QUIET => break,
                Some((seen, _)) if *seen == fingerprint => {}
                _ => last = Some((fingerprint, now)),
            }
        } else {
            last = None;
        }
        assert!(now < deadline, "the stack did not settle within {SETTLE:?}; in flight: {}", in_flight.join(", "));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (broker, _) in brokers {
        broker.close().await;
    }
    Utc::now()
}

/// What is in flight (empty when nothing is) and a fingerprint of the
/// effects the checker reads.
async fn snapshot(
    brokers: &[(Broker, Vec<String>)],
    master: &TestServer,
    slaves: &[&TestServer],
) -> (Vec<String>, Value) {
    let mut in_flight = Vec::new();
    let mut parts = Vec::new();
    for (broker, queues) in brokers {
        let Ok(channel) = broker.channel().await else {
            return (vec!["the broker is unreachable".into()], Value::Null);
        };
        for q in queues {
            match channel
                .queue_declare(
                    q.as_str().into(),
                    QueueDeclareOptions { passive: true, ..Default::default() },
                    Default::default(),
                )
                .await
            {
                Ok(queue) if queue.message_count() > 0 => {
                    in_flight.push(format!("{} ready in {q}", queue.message_count()))
                }
                Ok(_) => {}
                Err(e) => return (vec![format!("queue {q}: {e}")], Value::Null),
            }
        }
        let _ = rampart_shared::amqp::close_channel(&channel, "probed").await;
    }
    for server in std::iter::once(master).chain(slaves.iter().copied()) {
        let name = &server.options.instance;
        let Ok(client) = server.state.pool.get().await else {
            return (vec![format!("{name}'s database is unreachable")], Value::Null);
        };
        let Ok(row) = client.query_one("SELECT count(*) FROM outbox", &[]).await else {
            return (vec![format!("{name}'s database is unreachable")], Value::Null);
        };
        let outbox: i64 = row.get(0);
        if outbox > 0 {
            in_flight.push(format!("{outbox} in {name}'s outbox"));
        }
        if let Ok(Some(stream)) = replicator::stream(&client).await {
            let backlog = changes::backlog(&client, stream.acked).await.unwrap_or(-1);
            if backlog != 0 {
                in_flight.push(format!(
                    "{backlog} changes of {name} not acknowledged (batch {} sent, {} answered)",
                    stream.sent_batch, stream.acked_batch
                ));
            }
        }
        // Effects only: a slave ships an empty caught-up batch every
        // interval, which changes counters but nothing the checker reads.
        let effects = if std::ptr::eq(server, master) {
            "SELECT json_build_array((SELECT count(*) FROM checker_replica_writes),
                                     (SELECT count(*) || ' ' || max(updated_at) FROM receipts))::text"
        } else {
            "SELECT json_build_array((SELECT count(*) FROM checker_policy_writes), (SELECT count(*) FROM checker_dispatches),
                                     (SELECT count(*) FROM tasks), (SELECT count(*) FROM policies))::text"
        };
        match client.query_one(effects, &[]).await {
            Ok(row) => parts.push(json!(row.get::<_, String>(0))),
            Err(e) => return (vec![format!("{name}'s effects are unreadable: {e}")], Value::Null),
        }
    }
    (in_flight, Value::Array(parts))
}
