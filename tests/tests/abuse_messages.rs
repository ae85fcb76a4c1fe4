//! Bad input on every consumer of the system: the site inbox, the agents'
//! queue, a slave's command queue, the master's status and replication
//! queues, the report service's events queue. Each gets malformed JSON, an
//! unknown kind, an unknown version, an oversized body, a wrong AMQP type
//! and a poison message (well formed, but the database can never store it;
//! an agent keeps no database, so none exists for it), signed where the
//! consumer checks signatures so each reaches the check it is about. Every
//! one lands in its queue's parking queue with an `x-rampart-reason`, the
//! consumer applies a good message sent after them, and the servers record
//! the refusals in their audit. Every queue declared has the delivery limit.
//! (Malformed, unknown-kind, unknown-version and forged agent messages on
//! the inbox are in `inbox.rs`; they are not repeated here.)

use chrono::Utc;
use rampart_shared::{
    amqp::publisher::Outgoing,
    envelope::MAX_MESSAGE_BYTES,
    hierarchy::{MasterCommand, MasterPolicy, Scope, SlaveHeartbeat, SlaveReport},
    messages::{kind, EndpointCommand, EndpointTask, Heartbeat, PolicySettings, TaskKind},
    replication::{self, ReplicatedRow, ReplicatedTable, ReplicationBatch, Watermark, MAX_REPLICATION_BYTES},
    report::events::{self, SlaveHealth, SlaveSummary, MAX_EVENT_BYTES},
    signing::SigningKey,
    topology::Topology,
    Envelope,
};
use rampart_tests::{
    abuse::{
        assert_delivery_limits, assert_reasons, broken_encodings, broken_variants, inject_bad, parked, poison, Bad,
    },
    hierarchy::{insert_endpoints, register, wait_for_receipts, wait_for_replicated_endpoints},
    report::{TestReport, EVENT_KEY},
    wait_for, ServerOptions, TestAgent, TestServer,
};
use serde_json::{json, Value};

fn heartbeat(id: &str, hostname: &str) -> Heartbeat {
    Heartbeat {
        endpoint_id: id.into(),
        hostname: hostname.into(),
        ip: "10.9.0.1".into(),
        os: "Debian 12".into(),
        agent_version: "7.2.0".into(),
        signatures_version: "today".into(),
        signatures_date: Utc::now().date_naive(),
        realtime_protection: true,
        active_threats: 0,
        policy_id: None,
        policy_version: None,
    }
}

/// The audit of `server` for `queue`: the reasons recorded.
async fn audited(server: &TestServer, queue: &str, at_least: usize) -> Vec<Value> {
    wait_for(&format!("{at_least} refusals of {queue} in the audit"), || async {
        let audit = server.get_ok(&format!("/api/refused-messages?queue={queue}&limit=1000")).await;
        let messages = audit["messages"].as_array().cloned().unwrap_or_default();
        (messages.len() >= at_least).then_some(messages)
    })
    .await
}

fn assert_audited(audit: &[Value], reasons: &[String]) {
    for reason in reasons {
        assert!(
            audit.iter().any(|m| m["reason"].as_str().unwrap_or("").contains(reason.as_str())),
            "'{reason}' not in the audit: {audit:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_site_inbox_and_the_agents_queue_park_bad_input_and_keep_serving() {
    let site = TestServer::spawn(ServerOptions::standalone()).await;
    let agent = TestAgent::spawn(&site, 3, |_| {});
    site.wait_for_endpoints(3).await;
    let (topo, instance) = (site.topology(), site.options.instance.clone());
    let inbox = topo.site_inbox(&instance);

    // The inbox: what inbox.rs does not cover yet, and a poison heartbeat.
    let good = Envelope::new(kind::HEARTBEAT, "ep-big", 1, &heartbeat("ep-big", "pc"));
    let key = Topology::site_key(&instance, kind::HEARTBEAT);
    let mut bad: Vec<_> =
        broken_variants(&topo.site_exchange(), &key, &good, None, MAX_MESSAGE_BYTES).into_iter().skip(3).collect();
    bad.push(poison(
        &topo.site_exchange(),
        &key,
        &Envelope::new(kind::HEARTBEAT, "ep-nul", 1, &heartbeat("ep-nul", "pc\u{0}1")),
        None,
    ));
    let inbox_reasons = inject_bad(bad).await;

    // The agents' queue: every variant, and a task of a kind that does not exist.
    let routing = Topology::endpoint_key(&instance, "sim1-00001");
    let task = EndpointCommand::Task(EndpointTask { task_id: uuid::Uuid::new_v4(), kind: TaskKind::QuickScan })
        .to_envelope(&instance, 1);
    let mut bad = broken_variants(&topo.agents_exchange(), &routing, &task, None, MAX_MESSAGE_BYTES);
    let mut defrag = task.clone();
    let mut body: Value = defrag.body().unwrap();
    body["kind"] = json!("defrag");
    defrag.body = serde_json::value::to_raw_value(&body).unwrap();
    bad.push(Bad {
        message: Outgoing::envelope(topo.agents_exchange(), routing.clone(), &defrag, None),
        reason: "body of 'endpoint.task' is invalid".into(),
    });
    let agent_reasons = inject_bad(bad).await;

    // Good messages after them are applied: a heartbeat, and a task the agents run.
    rampart_tests::inject(vec![Outgoing::envelope(
        topo.site_exchange(),
        key.clone(),
        &Envelope::new(kind::HEARTBEAT, "ep-after", 1, &heartbeat("ep-after", "pc-after")),
        None,
    )])
    .await;
    site.wait_for_endpoints(4).await;
    let (status, task) = site.post("/api/tasks", json!({"kind": "quick_scan", "target": {"all": true}})).await;
    assert_eq!(status, 201, "{task}");
    let path = format!("/api/tasks/{}", task["id"].as_str().unwrap());
    wait_for("the agents to finish the task sent after the bad commands", || async {
        let t = site.get_ok(&path).await;
        (t["progress"]["succeeded"] == 3).then_some(())
    })
    .await;
    assert_eq!(site.get("/api/endpoints/ep-nul").await.0, 404, "the poison heartbeat enrolled nothing");

    let parked_inbox = parked(&inbox, inbox_reasons.len()).await;
    assert!(parked_inbox.iter().all(|p| p.queue == inbox), "{parked_inbox:#?}");
    assert_reasons(&parked_inbox, &inbox_reasons.iter().map(String::as_str).collect::<Vec<_>>());
    let parked_agent = parked(&agent.queue, agent_reasons.len()).await;
    assert_reasons(&parked_agent, &agent_reasons.iter().map(String::as_str).collect::<Vec<_>>());
    let audit = audited(&site, &inbox, inbox_reasons.len()).await;
    assert_audited(&audit, &inbox_reasons);
    assert!(audit.iter().any(|m| m["sender"] == "ep-nul" && m["kind"] == kind::HEARTBEAT), "{audit:#?}");

    assert_delivery_limits(topo.namespace(), &[inbox, agent.queue.clone()]);
    let queue = agent.stop().await;
    site.stop(&[queue]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slaves_commands_and_the_masters_status_and_replication_park_bad_input_and_keep_serving() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let paris = TestServer::spawn(ServerOptions::site("paris", &master.options.namespace)).await;
    register(&master, &paris).await;
    let copy = wait_for("the snapshot after registration", || async {
        let r = rampart_tests::hierarchy::replication_of(&master, "paris").await;
        (!r["synced_as_of"].is_null()).then_some(r)
    })
    .await;
    let topo = master.topology();
    let link = paris.state.keyring.link().expect("paris is a slave");

    // Commands to paris, signed with its command key, from its master.
    let policy = |name: &str| {
        MasterCommand::Policy(MasterPolicy {
            policy_id: uuid::Uuid::new_v4(),
            version: 1,
            name: name.into(),
            settings: PolicySettings::default(),
            scope: Scope::default(),
        })
    };
    let to_paris = Topology::slave_key("paris");
    let mut bad = broken_variants(
        &topo.commands_exchange(),
        &to_paris,
        &policy("Fine").to_envelope("hq"),
        Some(&link.command_key),
        MAX_MESSAGE_BYTES,
    );
    bad.push(poison(
        &topo.commands_exchange(),
        &to_paris,
        &policy("Bad\u{0}Name").to_envelope("hq"),
        Some(&link.command_key),
    ));
    let command_reasons = inject_bad(bad).await;

    // Reports from paris, signed with its slave key.
    let report = |version: &str| {
        SlaveReport::Heartbeat(SlaveHeartbeat {
            version: version.into(),
            endpoints: 1,
            license: None,
            replication: None,
            links: None,
        })
    };
    let status_key = Topology::status_key("paris", rampart_shared::hierarchy::kind::HEARTBEAT);
    let mut bad = broken_variants(
        &topo.status_exchange(),
        &status_key,
        &report("1.0").to_envelope("paris"),
        Some(&link.slave_key),
        MAX_MESSAGE_BYTES,
    );
    bad.push(poison(
        &topo.status_exchange(),
        &status_key,
        &report("0.1\u{0}").to_envelope("paris"),
        Some(&link.slave_key),
    ));
    let status_reasons = inject_bad(bad).await;

    // Batches from paris: the poison starts at the copy's watermark, so only the database can refuse it.
    let watermark: Watermark = copy["watermark"].as_str().unwrap().parse().unwrap();
    let batch = |row: Value| ReplicationBatch {
        epoch: copy["epoch"].as_i64().unwrap(),
        batch: 9000,
        from: watermark,
        to: Watermark { xid: watermark.xid + 1, seq: 1 },
        caught_up: false,
        taken_at: Utc::now(),
        digest: None,
        rows: vec![ReplicatedRow {
            table: ReplicatedTable::Endpoints,
            key: json!({"id": "forged-1"}),
            change_seq: 1,
            row: Some(serde_json::value::to_raw_value(&row).unwrap()),
        }],
    };
    let envelope = |b: &ReplicationBatch| Envelope::new(replication::kind::BATCH, "paris", 9000, b);
    let mut bad = broken_variants(
        &topo.replication_exchange(),
        &to_paris,
        &envelope(&batch(json!({"id": "forged-1"}))),
        Some(&link.slave_key),
        MAX_REPLICATION_BYTES,
    );
    bad.extend(broken_encodings(
        &topo.replication_exchange(),
        &to_paris,
        &envelope(&batch(json!({"id": "forged-1"}))),
        Some(&link.slave_key),
        MAX_REPLICATION_BYTES,
    ));
    bad.push(poison(
        &topo.replication_exchange(),
        &to_paris,
        &envelope(&batch(json!({"id": "forged-1", "hostname": "a\u{0}b"}))),
        Some(&link.slave_key),
    ));
    let replication_reasons = inject_bad(bad).await;
    // Every bad batch parked before paris replicates again: its next batch
    // takes the live lane, which does not wait behind the bulk queue, and
    // once applied it moves the watermark the poison starts at (which would
    // then be refused as an overlap and answered, not parked).
    let replication_parked = parked(&topo.master_replication_queue(), replication_reasons.len()).await;

    // Good messages after them: a policy goes down and its receipt comes up; a replication pass.
    let (status, good) = master.post("/api/policies", json!({"name": "After", "target": {"slaves": "all"}})).await;
    assert_eq!(status, 201, "{good}");
    let path = format!("/api/policies/{}", good["id"].as_str().unwrap());
    wait_for_receipts(&master, &path, &["paris"], "the policy sent after the bad messages applied", |r| {
        r["state"] == "applied"
    })
    .await;
    insert_endpoints(&paris, "paris", 5).await;
    assert_eq!(paris.post("/api/replication/now", json!({})).await.0, 202);
    let replicated = wait_for_replicated_endpoints(&master, "paris", 5).await;
    assert_eq!(replicated["epoch"], copy["epoch"], "{replicated}");
    let forged: i64 = master
        .state
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM replica_rows WHERE row_key ->> 'id' = 'forged-1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(forged, 0, "no forged row reached the copy");
    assert!(
        paris.get_ok("/api/policies").await.as_array().unwrap().iter().all(|p| p["name"] != "Fine"),
        "a bad command applied"
    );

    let commands = topo.slave_commands_queue("paris");
    for (server, queue, reasons, got) in [
        (&paris, commands.clone(), &command_reasons, None),
        (&master, topo.master_status_queue(), &status_reasons, None),
        (&master, topo.master_replication_queue(), &replication_reasons, Some(replication_parked)),
    ] {
        let got = match got {
            Some(got) => got,
            None => parked(&queue, reasons.len()).await,
        };
        assert_reasons(&got, &reasons.iter().map(String::as_str).collect::<Vec<_>>());
        let audit = audited(server, &queue, reasons.len()).await;
        assert_audited(&audit, reasons);
        if server.options.role == "master" {
            assert!(audit.iter().all(|m| m["slave"] == "paris"), "{queue}: {audit:#?}");
        }
    }

    assert_delivery_limits(
        topo.namespace(),
        &[commands, topo.master_status_queue(), topo.master_replication_queue(), topo.site_inbox("paris")],
    );
    paris.stop(&[]).await;
    master.stop(&[]).await;
}

fn summary(slave: &str, seq: i64, state: &str) -> SlaveSummary {
    SlaveSummary {
        slave: slave.into(),
        seq,
        as_of: Utc::now(),
        site: None,
        tasks: vec![],
        tasks_complete: false,
        health: SlaveHealth {
            slave: slave.into(),
            state: state.into(),
            version: None,
            last_seen: None,
            replicated_at: None,
            synced_as_of: None,
            rows_behind: None,
            batches_refused: 0,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_services_events_queue_parks_bad_input_and_keeps_serving() {
    let namespace = rampart_tests::namespace();
    let report = TestReport::spawn(&namespace).await;
    let topo = Topology::new(&rampart_shared::topology::NameSegment::parse(&namespace).unwrap());
    let key = SigningKey::from_secret(EVENT_KEY);
    let event = |s: &SlaveSummary| Envelope::new(events::kind::SLAVE_SUMMARY, "hq", 1, s);
    let routing = Topology::event_key(events::kind::SLAVE_SUMMARY);
    let mut bad = broken_variants(
        &topo.events_exchange(),
        &routing,
        &event(&summary("nice", 1, "online")),
        Some(&key),
        MAX_EVENT_BYTES,
    );
    bad.push(poison(&topo.events_exchange(), &routing, &event(&summary("nice", 2, "on\u{0}line")), Some(&key)));
    let reasons = inject_bad(bad).await;

    rampart_tests::inject(vec![Outgoing::envelope(
        topo.events_exchange(),
        routing.clone(),
        &event(&summary("nantes", 3, "online")),
        Some(&key),
    )])
    .await;
    wait_for("the event sent after the bad ones applied", || async {
        let health = report.report("health").await;
        health["slaves"].as_array()?.iter().any(|s| s["slave"] == "nantes").then_some(())
    })
    .await;
    let queue = topo.report_events_queue();
    let got = parked(&queue, reasons.len()).await;
    assert_reasons(&got, &reasons.iter().map(String::as_str).collect::<Vec<_>>());
    let status = report.status().await;
    assert_eq!(status["events"]["dead_lettered"], reasons.len(), "{status}");
    assert_eq!(status["slaves"], 1, "only the good event wrote a slave: {status}");

    assert_delivery_limits(&namespace, std::slice::from_ref(&queue));
    report.stop().await;
    rampart_tests::teardown_namespace(&topo, &[queue]).await;
}

/// A consumer that dies before acking (its connection drops, as at kill -9)
/// gets the message back; after the queue's delivery limit the broker parks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_consumer_keeps_dying_ends_parked_at_the_delivery_limit() {
    use rampart_shared::{amqp::Broker, topology::DELIVERY_LIMIT, Secret};
    let site = TestServer::spawn(ServerOptions::standalone()).await;
    let inbox = site.topology().site_inbox(&site.options.instance);
    let exchange = site.topology().site_exchange();
    let options = site.halt().await;
    let key = Topology::site_key(&options.instance, kind::HEARTBEAT);
    rampart_tests::inject(vec![Outgoing::envelope(
        exchange,
        key,
        &Envelope::new(kind::HEARTBEAT, "ep-doomed", 1, &heartbeat("ep-doomed", "pc")),
        None,
    )])
    .await;

    let mut deliveries = 0;
    for _ in 0..DELIVERY_LIMIT + 5 {
        let broker = Broker::new(Secret::new(rampart_tests::AMQP_URL.to_owned()), "rampart-tests dying consumer");
        let channel = broker.channel().await.unwrap();
        let got =
            channel.basic_get(inbox.as_str().into(), lapin::options::BasicGetOptions { no_ack: false }).await.unwrap();
        broker.close().await; // dies holding the delivery
        if got.is_none() {
            break;
        }
        deliveries += 1;
    }
    assert_eq!(deliveries, DELIVERY_LIMIT + 1, "delivered once, then redelivered up to the limit");
    let got = parked(&inbox, 1).await;
    assert_eq!(got[0].death.as_deref(), Some("delivery_limit"), "{got:#?}");

    // Back up, the server does not see it again.
    let site = TestServer::spawn(options).await;
    let status = site.get_ok("/api/status").await;
    assert_eq!(
        (status["messages"]["applied"].as_u64(), status["endpoints"]["total"].as_u64()),
        (Some(0), Some(0)),
        "{status}"
    );
    site.stop(&[]).await;
}
