//! Who may speak in a hierarchy, checked on the tables: spoofed slaves on
//! the master's status and replication queues (a bad signature, no
//! signature, one slave signing as or routing as another, a stranger, a
//! removed slave), a slave forging commands to another, and late messages
//! after a slave left with tasks in flight (on its own, or removed by the
//! master). Nothing is written but the audit, which names each refusal.
//! (Wrong keys and strangers on a command queue, and a late heartbeat of a
//! removed slave, are in `hierarchy_trust.rs` and `hierarchy.rs`.)

use chrono::Utc;
use rampart_shared::{
    amqp::publisher::Outgoing,
    hierarchy::{
        kind as hkind, MasterCommand, MasterPolicy, Receipt, ReceiptObject, ReceiptState, Scope, SlaveHeartbeat,
        SlaveReport, TaskProgress,
    },
    messages::{kind, PolicySettings, TaskResult, TaskState},
    replication::{self, ReplicatedRow, ReplicatedTable, ReplicationBatch, Watermark},
    signing::SigningKey,
    topology::Topology,
    Envelope,
};
use rampart_tests::{
    abuse::{changed, snapshot},
    hierarchy::{
        insert_endpoints, receipt, replication_of, wait_for_receipts, wait_for_replicated_endpoints, Hierarchy,
    },
    inject, queue_exists, wait_for, TestAgent, TestServer,
};
use serde_json::{json, Value};

/// Waits until `server`'s audit holds `count` refusals matching `filter`; returns them.
async fn audit(server: &TestServer, query: &str, count: usize) -> Vec<Value> {
    wait_for(&format!("{count} refusals ({query}) in the audit of {}", server.options.instance), || async {
        let a = server.get_ok(&format!("/api/refused-messages?limit=1000&{query}")).await;
        let m = a["messages"].as_array().cloned().unwrap_or_default();
        (m.len() >= count).then_some(m)
    })
    .await
}

fn has(audit: &[Value], slave: &str, sender: &str, words: &str) -> bool {
    audit
        .iter()
        .any(|m| m["slave"] == slave && m["sender"] == sender && m["reason"].as_str().unwrap_or("").contains(words))
}

/// A signed (or unsigned) report `from`, published as slave `as_slave`.
fn report(topo: &Topology, report: &SlaveReport, from: &str, as_slave: &str, key: Option<&SigningKey>) -> Outgoing {
    Outgoing::envelope(
        topo.status_exchange(),
        Topology::status_key(as_slave, report.kind()),
        &report.to_envelope(from),
        key,
    )
}

/// A replication batch `from`, published as slave `as_slave`, starting where `copy` ends.
fn batch(topo: &Topology, copy: &Value, from: &str, as_slave: &str, key: Option<&SigningKey>) -> Outgoing {
    let watermark: Watermark = copy["watermark"].as_str().unwrap().parse().unwrap();
    let b = ReplicationBatch {
        epoch: copy["epoch"].as_i64().unwrap(),
        batch: 7000,
        from: watermark,
        to: Watermark { xid: watermark.xid + 1, seq: 1 },
        caught_up: true,
        taken_at: Utc::now(),
        digest: None,
        rows: vec![ReplicatedRow {
            table: ReplicatedTable::Endpoints,
            key: json!({"id": "spoofed"}),
            change_seq: 1,
            row: Some(serde_json::value::to_raw_value(&json!({"id": "spoofed", "hostname": "spoofed"})).unwrap()),
        }],
    };
    Outgoing::envelope(
        topo.replication_exchange(),
        Topology::slave_key(as_slave),
        &Envelope::new(replication::kind::BATCH, from, 7000, &b),
        key,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spoofed_slaves_and_forged_commands_write_nothing_and_are_audited() {
    let h = Hierarchy::start(&["paris", "lyon", "brest"]).await;
    let (paris, lyon, brest) = (&h.slaves[0], &h.slaves[1], &h.slaves[2]);
    for slave in [paris, lyon] {
        insert_endpoints(slave, slave.options.instance.as_str(), 3).await;
        assert_eq!(slave.post("/api/replication/now", json!({})).await.0, 202);
        wait_for_replicated_endpoints(&h.master, slave.options.instance.as_str(), 3).await;
    }
    let (_, policy) = h.master.post("/api/policies", json!({"name": "HQ", "target": {"slaves": "all"}})).await;
    let policy_id: uuid::Uuid = policy["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/policies/{policy_id}");
    // Delivered (the inserted computers have no agent to apply it), or applied on brest's none.
    wait_for_receipts(&h.master, &path, &["paris", "lyon", "brest"], "the policy delivered", |r| {
        r["state"] != "pending"
    })
    .await;
    // Brest is removed and gone; it keeps its old key.
    let brest_key = brest.state.keyring.link().unwrap().slave_key;
    assert_eq!(h.master.delete("/api/slaves/brest").await.0, 200);
    h.master.wait_for_field("/api/slaves/brest", "state", "removed").await;
    let topo = h.master.topology();
    let (paris_link, lyon_link) = (paris.state.keyring.link().unwrap(), lyon.state.keyring.link().unwrap());
    let (paris_copy, lyon_copy) = (replication_of(&h.master, "paris").await, replication_of(&h.master, "lyon").await);
    let slaves_before = h.master.get_ok("/api/slaves").await;
    let master_before = snapshot(&h.master.state.pool).await;
    let paris_before = snapshot(&paris.state.pool).await;

    let heartbeat = SlaveReport::Heartbeat(SlaveHeartbeat {
        version: "6.6.6".into(),
        endpoints: 666,
        license: None,
        replication: None,
        links: None,
    });
    let forged_receipt = SlaveReport::Receipt(Receipt {
        object: ReceiptObject::Policy,
        id: policy_id,
        version: 99,
        state: ReceiptState::Failed,
        reason: Some("forged".into()),
        policy: None,
        task: None,
    });
    let stranger = SigningKey::generate();
    let mut spoofs = Vec::new();
    for r in [&heartbeat, &forged_receipt] {
        spoofs.extend([
            report(&topo, r, "paris", "paris", Some(&stranger)), // bad signature
            report(&topo, r, "paris", "paris", None),            // no signature
            report(&topo, r, "lyon", "lyon", Some(&paris_link.slave_key)), // paris signing as lyon
            report(&topo, r, "paris", "lyon", Some(&paris_link.slave_key)), // paris routing as lyon
            report(&topo, r, "ghost", "ghost", Some(&stranger)), // never registered
            report(&topo, r, "brest", "brest", Some(&brest_key)), // removed
        ]);
    }
    spoofs.extend([
        batch(&topo, &paris_copy, "paris", "paris", Some(&stranger)),
        batch(&topo, &paris_copy, "paris", "paris", None),
        batch(&topo, &lyon_copy, "lyon", "lyon", Some(&paris_link.slave_key)),
        batch(&topo, &lyon_copy, "paris", "lyon", Some(&paris_link.slave_key)),
        batch(&topo, &paris_copy, "ghost", "ghost", Some(&stranger)),
        batch(&topo, &paris_copy, "brest", "brest", Some(&brest_key)),
    ]);
    // Lyon forges a command to paris with the only command key it has: its own.
    let command = MasterCommand::Policy(MasterPolicy {
        policy_id,
        version: 50,
        name: "Forged".into(),
        settings: PolicySettings::default(),
        scope: Scope::default(),
    });
    spoofs.push(Outgoing::envelope(
        topo.commands_exchange(),
        Topology::slave_key("paris"),
        &command.to_envelope("hq"),
        Some(&lyon_link.command_key),
    ));
    inject(spoofs).await;

    let status = audit(&h.master, &format!("queue={}", topo.master_status_queue()), 12).await;
    let replicated = audit(&h.master, &format!("queue={}", topo.master_replication_queue()), 6).await;
    for audit in [&status, &replicated] {
        assert!(has(audit, "paris", "paris", "signature missing or invalid"), "{audit:#?}");
        assert!(has(audit, "lyon", "lyon", "signature missing or invalid"), "{audit:#?}");
        assert!(has(audit, "lyon", "paris", "published as slave 'lyon'"), "{audit:#?}");
        assert!(has(audit, "ghost", "ghost", "not a registered slave"), "{audit:#?}");
        assert!(has(audit, "brest", "brest", "not a registered slave"), "{audit:#?}");
    }
    let commands = audit(paris, &format!("queue={}", topo.slave_commands_queue("paris")), 1).await;
    assert!(
        commands.iter().any(|m| m["sender"] == "hq" && m["reason"].as_str().unwrap().contains("signature")),
        "{commands:#?}"
    );

    // Nothing but the audit was written, on the master or on paris.
    let master_after = snapshot(&h.master.state.pool).await;
    let mut diff = changed(&master_before, &master_after);
    diff.retain(|t| t != "refused_messages" && t != "slaves"); // slaves: the real heartbeats' last_seen
    assert!(diff.is_empty(), "the spoofs changed {diff:?} on the master");
    let fields = |l: &Value| {
        l.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (s["id"].clone(), s["version"].clone(), s["endpoints"].clone(), s["replication"]["watermark"].clone())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(fields(&h.master.get_ok("/api/slaves").await), fields(&slaves_before));
    let mut diff = changed(&paris_before, &snapshot(&paris.state.pool).await);
    diff.retain(|t| t != "refused_messages");
    assert!(diff.is_empty(), "the forged command changed {diff:?} on paris");
    assert_eq!(
        h.master.get_ok("/api/slaves/paris").await["refused_messages"].as_i64(),
        Some(6),
        "paris named by 6 spoofs"
    );
    h.stop().await;
}

/// A site's agents with scans that stay running until cancelled.
fn slow_agent(site: &TestServer) -> TestAgent {
    TestAgent::spawn(site, 3, |a| a.scan_duration = std::time::Duration::from_secs(300))
}

async fn count(server: &TestServer, sql: &str) -> i64 {
    server.state.pool.get().await.unwrap().query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaving_with_tasks_in_flight_refuses_late_messages_on_both_sides() {
    let h = Hierarchy::start(&["paris", "lyon"]).await;
    let (paris, lyon) = (&h.slaves[0], &h.slaves[1]);
    let agents: Vec<TestAgent> = h.slaves.iter().map(slow_agent).collect();
    for slave in &h.slaves {
        slave.wait_for_endpoints(3).await;
    }
    let (_, task) = h.master.post("/api/tasks", json!({"kind": "full_scan", "target": {"slaves": "all"}})).await;
    let task_id: uuid::Uuid = task["id"].as_str().unwrap().parse().unwrap();
    let path = format!("/api/tasks/{task_id}");
    wait_for_receipts(&h.master, &path, &["paris", "lyon"], "the scans running", |r| r["progress"]["running"] == 3)
        .await;
    let topo = h.master.topology();
    let paris_link = paris.state.keyring.link().unwrap();
    let paris_copy = replication_of(&h.master, "paris").await;

    // Paris leaves on its own; the master removes lyon.
    assert_eq!(paris.post("/api/hierarchy/unregister", json!({})).await.0, 200);
    assert_eq!(h.master.delete("/api/slaves/lyon").await.0, 200);
    lyon.wait_for_field("/api/hierarchy", "role", "standalone").await;
    for slave in ["paris", "lyon"] {
        h.master.wait_for_field(&format!("/api/slaves/{slave}"), "state", "removed").await;
    }

    // On each site, the agents' cancelled results arrive after the task is gone, and so does a forged success
    // (from an id that sorts first, so the audit line of its batch names it).
    let success = TaskResult {
        task_id,
        endpoint_id: "forged-ep".into(),
        state: TaskState::Succeeded,
        scanned_files: 1,
        detections: 0,
        signatures_version: None,
        message: None,
    };
    let late_line = format!("late task result: task {task_id}");
    for site in [paris, lyon] {
        let key = Topology::site_key(site.options.instance.as_str(), kind::TASK_RESULT);
        let envelope = Envelope::new(kind::TASK_RESULT, "forged-ep", 1, &success);
        inject(vec![Outgoing::envelope(topo.site_exchange(), key, &envelope, None)]).await;
        let late = wait_for(&format!("the late results in the audit of {}", site.options.instance), || async {
            let a = site.get_ok("/api/refused-messages?limit=1000").await;
            let late: Vec<Value> = a["messages"]
                .as_array()?
                .iter()
                .filter(|m| m["reason"].as_str().unwrap_or("").contains(&late_line))
                .cloned()
                .collect();
            let forged = late.iter().any(|m| m["sender"] == "forged-ep");
            let agents = late.iter().any(|m| m["reason"].as_str().unwrap_or("").contains("sim1-"));
            (forged && agents).then_some(late)
        })
        .await;
        assert!(late.iter().all(|m| m["kind"] == kind::TASK_RESULT), "{}: {late:#?}", site.options.instance);
        assert_eq!(site.get(&path).await.0, 404, "the master task is gone from {}", site.options.instance);
        assert_eq!(count(site, &format!("SELECT count(*) FROM task_results WHERE task_id = '{task_id}'")).await, 0);
        assert_eq!(count(site, "SELECT (SELECT count(*) FROM tasks WHERE owner = 'master') + (SELECT count(*) FROM policies WHERE owner = 'master')").await, 0);
        assert!(!queue_exists(&topo.slave_commands_queue(site.options.instance.as_str())).await);
    }

    // On the master: every receipt closed, and paris's late report and batch refused.
    let task_now = h.master.get_ok(&path).await;
    for slave in ["paris", "lyon"] {
        assert_eq!(receipt(&task_now, slave).unwrap()["state"], "cancelled", "{task_now}");
    }
    assert_eq!(count(&h.master, "SELECT count(*) FROM receipts WHERE state IN ('pending', 'delivered')").await, 0);
    let rows_before = count(&h.master, "SELECT count(*) FROM replica_rows").await;
    let applied = SlaveReport::Receipt(Receipt {
        object: ReceiptObject::Task,
        id: task_id,
        version: 1,
        state: ReceiptState::Applied,
        reason: None,
        policy: None,
        task: Some(TaskProgress { total: 3, succeeded: 3, ..Default::default() }),
    });
    let mut late = Outgoing::envelope(
        topo.status_exchange(),
        Topology::status_key("paris", hkind::RECEIPT),
        &applied.to_envelope("paris"),
        Some(&paris_link.slave_key),
    );
    let mut envelope: Value = serde_json::from_slice(&late.payload).unwrap();
    envelope["seq"] = json!(i64::MAX);
    late = Outgoing::envelope(
        late.exchange,
        late.routing_key,
        &serde_json::from_value(envelope).unwrap(),
        Some(&paris_link.slave_key),
    );
    inject(vec![late, batch(&topo, &paris_copy, "paris", "paris", Some(&paris_link.slave_key))]).await;
    let refused = audit(&h.master, "slave=paris", 2).await;
    assert!(
        refused.iter().filter(|m| m["reason"].as_str().unwrap().contains("not a registered slave")).count() >= 2,
        "{refused:#?}"
    );
    let removed = audit(&h.master, "slave=lyon", 1).await;
    assert!(
        removed.iter().any(|m| m["reason"].as_str().unwrap().contains("removed from this master")),
        "lyon's reports while removing: {removed:#?}"
    );
    assert_eq!(receipt(&h.master.get_ok(&path).await, "paris").unwrap()["state"], "cancelled");
    assert_eq!(count(&h.master, "SELECT count(*) FROM replica_rows").await, rows_before);

    let mut queues = Vec::new();
    for agent in agents {
        queues.push(agent.stop().await);
    }
    h.stop().await;
    rampart_tests::delete_queues(&queues).await;
}
