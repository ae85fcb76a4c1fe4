//! Who may join and speak in a hierarchy: registration refusals, duplicate
//! and forged commands on a slave's queue, forged reports to the master.

use std::sync::atomic::Ordering;

use rampart_shared::{
    amqp::{publisher::Outgoing, Broker},
    envelope::{header_str, REASON_HEADER},
    hierarchy::{MasterCommand, MasterPolicy, Scope, SlaveHeartbeat, SlaveReport},
    messages::PolicySettings,
    signing::SigningKey,
    topology::Topology,
    Secret,
};
use rampart_tests::{
    hierarchy::{token, wait_for_receipts, Hierarchy},
    inject, wait_for, ServerOptions, TestServer, AMQP_URL,
};
use serde_json::json;

async fn try_register(slave: &TestServer, master: &str, token: &str) -> (u16, String) {
    let (status, body) = slave.post("/api/hierarchy/register", json!({"master": master, "token": token})).await;
    (status.as_u16(), body["error"]["message"].as_str().unwrap_or_default().to_owned())
}

/// An address that answers any request with `200 OK` and a JSON body that
/// goes on for 16 MiB (or until the caller hangs up).
async fn endless_answer() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let _ = socket.read(&mut [0; 4096]).await;
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n";
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "1,".repeat(32 * 1024));
        for _ in 0..256 {
            if socket.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_registrations_are_refused_and_change_nothing() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let ns = master.options.namespace.clone();
    let slave = TestServer::spawn(ServerOptions::site("paris", &ns)).await;
    let other = TestServer::spawn(ServerOptions::site("lyon", &ns)).await;
    let at = master.address();

    let (status, message) = try_register(&slave, &at, "rrt_not-a-token").await;
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("not valid"), "{message}");

    // Expired.
    let (_, expiring) = master.post("/api/registration-tokens", json!({"expires_in_seconds": 1})).await;
    wait_for("the token to expire", || async {
        let list = master.get_ok("/api/registration-tokens").await;
        list.as_array().unwrap().iter().any(|t| t["id"] == expiring["id"] && t["state"] == "expired").then_some(())
    })
    .await;
    let (status, message) = try_register(&slave, &at, expiring["token"].as_str().unwrap()).await;
    assert!(status == 403 && message.contains("expired"), "{status} {message}");

    // Unreachable master, and a server that is no master.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (status, message) = try_register(&slave, &closed.to_string(), "rrt_x").await;
    assert!(status == 502 && message.contains("cannot reach the master"), "{status} {message}");
    let (status, message) = try_register(&slave, &other.address(), "rrt_x").await;
    assert!(status == 409 && message.contains("not a master"), "{status} {message}");
    let (status, message) = try_register(&slave, &endless_answer().await, "rrt_x").await;
    assert!(status == 502 && message.contains("more than 64 KiB"), "{status} {message}");
    let (status, message) = try_register(&slave, "no host:7073", "rrt_x").await;
    assert!(status == 422 && message.contains("HOST:PORT"), "{status} {message}");

    // Nothing changed anywhere.
    assert_eq!(slave.get_ok("/api/hierarchy").await["role"], "standalone");
    assert_eq!(master.get_ok("/api/slaves").await, json!([]));

    // A good token works once; reused, it is refused; twice registered, too.
    let good = token(&master).await;
    assert_eq!(try_register(&slave, &at, &good).await.0, 200);
    let (status, message) = try_register(&other, &at, &good).await;
    assert!(status == 403 && message.contains("already used") && message.contains("paris"), "{status} {message}");
    let (status, message) = try_register(&slave, &at, &token(&master).await).await;
    assert!(status == 409 && message.contains("already a slave"), "{status} {message}");
    assert_eq!(other.get_ok("/api/hierarchy").await["role"], "standalone");
    let listed = master.get_ok("/api/slaves").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // A master registers to nobody, and slaves do not exist on a stand-alone.
    let (status, _) = master.post("/api/hierarchy/register", json!({"master": at, "token": good})).await;
    assert_eq!(status, 409);
    assert_eq!(other.get("/api/slaves").await.0, 409);

    other.stop(&[]).await;
    slave.stop(&[]).await;
    master.stop(&[]).await;
}

fn policy_command(id: uuid::Uuid, version: i32, name: &str) -> MasterCommand {
    MasterCommand::Policy(MasterPolicy {
        policy_id: id,
        version,
        name: name.into(),
        settings: PolicySettings::default(),
        scope: Scope::default(),
    })
}

/// The reasons of the messages parked for `queue`.
async fn parked_reasons(queue: &str) -> Vec<String> {
    let broker = Broker::new(Secret::new(AMQP_URL.to_owned()), "rampart-tests parking");
    let channel = broker.channel().await.unwrap();
    let mut reasons = Vec::new();
    while let Some(m) = channel
        .basic_get(Topology::parking_queue(queue).as_str().into(), lapin::options::BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        reasons.push(header_str(&m.delivery.properties, REASON_HEADER).unwrap_or_default().to_owned());
    }
    broker.close().await;
    reasons
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_and_forged_messages_have_no_effect() {
    let h = Hierarchy::start(&["paris"]).await;
    let slave = &h.slaves[0];
    let (_, policy) = h.master.post("/api/policies", json!({"name": "Signed", "target": {"slaves": "all"}})).await;
    let id: uuid::Uuid = policy["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/policies/{id}");
    wait_for_receipts(&h.master, &path, &["paris"], "the policy applied", |r| r["state"] == "applied").await;
    let before = slave.get_ok(&path).await;

    let topo = slave.topology();
    let key = slave.state.keyring.link().unwrap().command_key;
    let to_paris = |cmd: &MasterCommand, from: &str, key: Option<&SigningKey>| {
        Outgoing::envelope(topo.commands_exchange(), Topology::slave_key("paris"), &cmd.to_envelope(from), key)
    };
    let metrics = &slave.state.hierarchy_metrics;
    let applied = metrics.applied.load(Ordering::Relaxed);
    inject(vec![
        // The same id and version again: accepted, changes nothing.
        to_paris(&policy_command(id, 1, "Signed"), "hq", Some(&key)),
        // Forged: a newer version under a wrong key, unsigned, or from another master.
        to_paris(&policy_command(id, 9, "Forged"), "hq", Some(&SigningKey::generate())),
        to_paris(&policy_command(id, 9, "Forged"), "hq", None),
        to_paris(&policy_command(id, 9, "Forged"), "evil-hq", Some(&key)),
    ])
    .await;
    wait_for("the slave to apply the duplicate and park the forgeries", || async {
        (metrics.applied.load(Ordering::Relaxed) > applied && metrics.dead_lettered.load(Ordering::Relaxed) >= 3)
            .then_some(())
    })
    .await;
    let after = slave.get_ok(&path).await;
    assert_eq!(
        (&after["version"], &after["name"], &after["updated_at"]),
        (&before["version"], &before["name"], &before["updated_at"])
    );
    let mut reasons = parked_reasons(&topo.slave_commands_queue("paris")).await;
    reasons.sort();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| r.contains("signature missing or invalid")).count(), 2, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("evil-hq")), "{reasons:?}");

    // Reports to the master: wrong key, another slave's name, a stranger.
    let heartbeat = SlaveReport::Heartbeat(SlaveHeartbeat {
        version: "6.6.6".into(),
        endpoints: 666,
        license: None,
        replication: None,
        links: None,
    });
    let paris_key = slave.state.keyring.link().unwrap().slave_key;
    let report = |from: &str, as_slave: &str, key: &SigningKey| {
        Outgoing::envelope(
            topo.status_exchange(),
            Topology::status_key(as_slave, heartbeat.kind()),
            &heartbeat.to_envelope(from),
            Some(key),
        )
    };
    inject(vec![
        report("paris", "paris", &SigningKey::generate()),
        report("paris", "lyon", &paris_key),
        report("ghost", "ghost", &SigningKey::generate()),
    ])
    .await;
    let master_metrics = &h.master.state.hierarchy_metrics;
    wait_for("the master to refuse three reports", || async {
        (master_metrics.dead_lettered.load(Ordering::Relaxed) >= 3).then_some(())
    })
    .await;
    let seen = h.master.wait_for_field("/api/slaves/paris", "refused_messages", 1).await;
    assert_ne!(seen["version"], "6.6.6", "{seen}");
    assert_ne!(seen["endpoints"], 666, "{seen}");

    // The refusals show in the master's metrics (served without a token).
    let metrics = h.master.metrics().await;
    for line in [
        "rampart_slave_refused_messages_total{slave=\"paris\"} 1",
        "rampart_messages_dead_lettered_total{consumer=\"hierarchy\"} 3",
        "rampart_slave_up{slave=\"paris\"} 1",
        "rampart_outbox_depth ",
    ] {
        assert!(metrics.lines().any(|l| l.starts_with(line)), "no '{line}' in:\n{metrics}");
    }
    let site_metrics = slave.metrics().await;
    assert!(site_metrics.contains("rampart_messages_dead_lettered_total{consumer=\"hierarchy\"} 3"), "{site_metrics}");
    assert!(site_metrics.contains("rampart_endpoints{status=\"protected\"} 0"), "{site_metrics}");
    h.stop().await;
}
