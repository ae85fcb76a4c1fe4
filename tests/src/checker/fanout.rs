//! Fan-out master -> slaves: the master's policies (id, latest version) and
//! tasks, as its receipts say it sent them to a slave, are the truth. On the
//! slave each must be there at that version; its history of policy writes
//! and task dispatches (logged by test-only triggers) must show every
//! version applied once and in order and every endpoint given a task once;
//! a probe queue on the agents' exchange sees every dispatch command, and
//! two different commands for one (task, endpoint) are a duplicate effect.
//! The master's receipts must come back and count what the slave holds.
//! A scenario may check more than once (one fault after another on the
//! same stack): the probe keeps what it saw, so every check counts every
//! dispatch since [`install`]; [`remove_probe`] ends it.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Mutex,
};

use chrono::{DateTime, Utc};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use rampart_shared::{
    amqp::Broker,
    messages::{kind, EndpointTask},
    topology::{self, Topology},
    Envelope, Secret,
};
use serde_json::Value;
use uuid::Uuid;

use super::{compare_copy, compare_count, count_history, Counts, SlaveFindings};
use crate::TestServer;

const HISTORY: &str = "
CREATE TABLE IF NOT EXISTS checker_policy_writes (
    id        bigserial PRIMARY KEY,
    policy_id uuid NOT NULL,
    version   integer NOT NULL,
    at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION checker_log_policy_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO checker_policy_writes (policy_id, version) VALUES (NEW.id, NEW.version);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS checker_policy_writes ON policies;
CREATE TRIGGER checker_policy_writes AFTER INSERT OR UPDATE OF version, name, settings ON policies
    FOR EACH ROW WHEN (NEW.owner = 'master') EXECUTE FUNCTION checker_log_policy_write();
CREATE TABLE IF NOT EXISTS checker_dispatches (
    id          bigserial PRIMARY KEY,
    task_id     uuid NOT NULL,
    endpoint_id text NOT NULL,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION checker_log_dispatch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO checker_dispatches (task_id, endpoint_id) VALUES (NEW.task_id, NEW.endpoint_id);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS checker_dispatches ON task_results;
CREATE TRIGGER checker_dispatches AFTER INSERT ON task_results
    FOR EACH ROW EXECUTE FUNCTION checker_log_dispatch();";

/// Dispatches seen so far: message ids by (task, endpoint).
type Seen = BTreeMap<(Uuid, String), BTreeSet<Uuid>>;

/// What each probe queue has shown the checks so far.
static SEEN: Mutex<BTreeMap<String, Seen>> = Mutex::new(BTreeMap::new());

/// The probe queue that sees every command the slave sends its endpoints.
pub fn probe_queue(slave: &TestServer) -> String {
    format!("{}.checker.{}.dispatches", slave.options.namespace, slave.options.instance)
}

/// Installs the history triggers on a slave and binds its dispatch probe.
pub async fn install(slave: &TestServer) {
    let client = slave.state.pool.get().await.expect("a slave connection");
    client.batch_execute(HISTORY).await.expect("the checker's fan-out history installs");
    let broker = Broker::new(Secret::new(slave.options.amqp_url.clone()), "rampart-tests checker");
    let channel = broker.channel().await.expect("the checker reaches the broker");
    let topo = slave.topology();
    let binding = Topology::endpoints_binding(&slave.options.instance);
    topology::declare_queue(&channel, &topo, &probe_queue(slave), &topo.agents_exchange(), &[binding])
        .await
        .expect("the dispatch probe is declared");
    broker.close().await;
}

/// Deletes the probe queue (once the scenario is over) and forgets what
/// it saw.
pub async fn remove_probe(slave: &TestServer) {
    let queue = probe_queue(slave);
    SEEN.lock().expect("the probes' record").remove(&queue);
    let broker = Broker::new(Secret::new(slave.options.amqp_url.clone()), "rampart-tests checker");
    if let Ok(channel) = broker.channel().await {
        let _ = topology::delete_queue(&channel, &queue).await;
    }
    broker.close().await;
}

/// Reads what the probe saw since the last check, and returns it with what
/// it saw before: the message ids of every `endpoint.task` command, by
/// (task, endpoint).
async fn drain_probe(slave: &TestServer) -> Seen {
    let broker = Broker::new(Secret::new(slave.options.amqp_url.clone()), "rampart-tests checker");
    let channel = broker.channel().await.expect("the checker reaches the broker");
    let queue = probe_queue(slave);
    let _ = channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions { passive: true, ..Default::default() },
            Default::default(),
        )
        .await;
    let mut seen = SEEN.lock().expect("the probes' record").remove(&queue).unwrap_or_default();
    let deadline = tokio::time::Instant::now() + crate::WAIT;
    for _ in 0..1_000_000 {
        let got = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }),
        )
        .await
        .expect("basic.get answers")
        .expect("the probe queue is readable");
        let Some(message) = got else { break };
        assert!(tokio::time::Instant::now() < deadline, "draining the dispatch probe took over {:?}", crate::WAIT);
        let Ok(envelope) = Envelope::decode(&message.delivery.data, None) else { continue };
        if envelope.kind != kind::ENDPOINT_TASK {
            continue;
        }
        let Ok(task) = envelope.body::<EndpointTask>() else { continue };
        let endpoint = message.delivery.routing_key.as_str().rsplit('.').next().unwrap_or_default().to_owned();
        seen.entry((task.task_id, endpoint)).or_default().insert(envelope.id);
    }
    broker.close().await;
    SEEN.lock().expect("the probes' record").insert(queue, seen.clone());
    seen
}

/// Adds the fan-out findings of `slave` to `findings`.
pub async fn check(master: &TestServer, slave: &TestServer, findings: &mut SlaveFindings) {
    let id = slave.options.instance.as_str();
    let hq = master.state.pool.get().await.expect("a master connection");
    let receipts = hq
        .query(
            "SELECT r.object_kind, r.object_id, r.version, r.state, r.progress, r.updated_at, p.version
               FROM receipts r LEFT JOIN policies p ON r.object_kind = 'policy' AND p.id = r.object_id
              WHERE r.slave_id = $1 AND r.state <> 'cancelled'",
            &[&id],
        )
        .await
        .expect("the master's receipts");
    let site = slave.state.pool.get().await.expect("a slave connection");
    let mut copy: BTreeMap<(String, Uuid), (i64, bool)> = BTreeMap::new();
    for r in site.query("SELECT id, version FROM policies WHERE owner = 'master'", &[]).await.expect("slave policies") {
        copy.insert(("policy".into(), r.get(0)), (i64::from(r.get::<_, i32>(1)), true));
    }
    for r in site.query("SELECT id FROM tasks WHERE owner = 'master'", &[]).await.expect("slave tasks") {
        copy.insert(("task".into(), r.get(0)), (1, true));
    }
    let dispatched: BTreeMap<Uuid, i64> = site
        .query("SELECT task_id, count(*) FROM task_results GROUP BY task_id", &[])
        .await
        .expect("slave task results")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let assigned: BTreeMap<Uuid, i64> = site
        .query("SELECT policy_id, count(*) FROM endpoints WHERE policy_id IS NOT NULL GROUP BY policy_id", &[])
        .await
        .expect("slave assignments")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    let mut examples = Vec::new();
    let mut truth: BTreeMap<(String, Uuid), i64> = BTreeMap::new();
    let mut receipt_counts = Counts::default();
    let mut last_receipt: Option<DateTime<Utc>> = None;
    for r in &receipts {
        let (object, object_id, version, state): (String, Uuid, i32, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
        let progress: Option<Value> = r.get(4);
        let latest = r.get::<_, Option<i32>>(6).unwrap_or(version);
        last_receipt = last_receipt.max(Some(r.get(5)));
        truth.insert((object.clone(), object_id), i64::from(latest));
        if state == "pending" {
            receipt_counts.lost += 1;
            examples.push(format!("fan-out lost: no receipt came back for {object} {object_id}"));
        } else if version < latest {
            receipt_counts.stale += 1;
            examples
                .push(format!("fan-out stale: receipt of {object} {object_id} at version {version}, latest {latest}"));
        }
        let progress = progress.unwrap_or(Value::Null);
        let (what, shown, held) = if object == "policy" {
            (
                "assigned endpoints",
                progress["assigned"].as_i64().unwrap_or(0),
                assigned.get(&object_id).copied().unwrap_or(0),
            )
        } else {
            (
                "task endpoints",
                progress["total"].as_i64().unwrap_or(0),
                dispatched.get(&object_id).copied().unwrap_or(0),
            )
        };
        if state != "failed" && state != "pending" {
            compare_count(&format!("receipt of {object} {object_id}: {what}"), held, shown, &mut receipt_counts, |e| {
                examples.push(format!("fan-out {e}"))
            });
        }
    }
    let mut counts = compare_copy(&truth, &copy, |e| examples.push(format!("fan-out {e}")));

    let writes = site
        .query("SELECT policy_id, version, at FROM checker_policy_writes ORDER BY id", &[])
        .await
        .expect("policy history (installed?)");
    let (dup, reordered) =
        count_history(writes.iter().map(|r| (r.get::<_, Uuid>(0), Some(i64::from(r.get::<_, i32>(1))))), |e| {
            examples.push(format!("fan-out policy {e}"))
        });
    counts.duplicated += dup;
    counts.reordered += reordered;
    let dispatches = site
        .query(
            "SELECT d.task_id, d.endpoint_id, d.at FROM checker_dispatches d JOIN tasks t ON t.id = d.task_id AND t.owner = 'master' ORDER BY d.id",
            &[],
        )
        .await
        .expect("dispatch history (installed?)");
    let (dup, _) =
        count_history(dispatches.iter().map(|r| ((r.get::<_, Uuid>(0), r.get::<_, String>(1)), Some(0))), |e| {
            examples.push(format!("fan-out dispatch {e}"))
        });
    counts.duplicated += dup;
    for ((task, endpoint), ids) in drain_probe(slave).await {
        if ids.len() > 1 {
            counts.duplicated += ids.len() as u64 - 1;
            examples.push(format!(
                "fan-out duplicated: task {task} sent to {endpoint} by {} different commands",
                ids.len()
            ));
        }
    }

    findings.fanout = counts.plus(receipt_counts);
    findings.saw(last_receipt);
    findings.saw(writes.last().map(|r| r.get(2)));
    findings.saw(dispatches.last().map(|r| r.get(2)));
    for e in examples {
        findings.note(|| e);
    }
}
