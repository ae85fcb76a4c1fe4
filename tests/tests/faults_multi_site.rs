//! Sites on brokers of their own under a WAN fault (`docs/multi-site.md`):
//! the link between a slave's broker and the master's goes through a TCP
//! proxy the test cuts. While cut, the slave shows its links down and what
//! waits on its side; once restored, the commands sent meanwhile arrive and
//! the changes made meanwhile replicate, each once; the same when the link
//! flaps (cut 1 s every 3 s) under traffic; and under the fault suite's
//! writers and checker, a cut loses, duplicates and reorders nothing. With
//! the slave's server
//! down, commands keep crossing to its broker and wait there for it.

use std::time::Duration;

use chrono::Utc;
use rampart_shared::topology::{NameSegment, Topology};
use rampart_tests::{
    faults::{
        broker::PrivateBroker,
        take_turn,
        traffic::{edit_policies, fan_out, Stack, Writers, FAST_REPLICATION},
        wan::Wan,
    },
    hierarchy::{insert_endpoints, register, wait_for_receipts, wait_for_replicated_endpoints},
    multi_site::{master_on, site_on},
    namespace, wait_for, ServerOptions, TestServer,
};
use serde_json::json;

/// Whether `ops/chaos --long` runs the scenarios (`RAMPART_CHAOS_LONG=1`).
fn long() -> bool {
    std::env::var("RAMPART_CHAOS_LONG").is_ok_and(|v| v == "1")
}

/// How long the link stays cut: 10 s, 60 s under `ops/chaos --long`.
fn cut() -> Duration {
    Duration::from_secs(if long() { 60 } else { 10 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_link_shows_down_and_catches_up_once_restored() {
    let _turn = take_turn().await;
    let (hq_broker, rennes_broker) = tokio::join!(PrivateBroker::start_with_links(), PrivateBroker::start_with_links());
    let wan = Wan::start(([127, 0, 0, 1], hq_broker.port).into()).await;
    let ns = namespace();
    let master = master_on(&hq_broker, &ns, &format!("amqp://127.0.0.1:{}/%2f", wan.address().port())).await;
    let rennes = site_on(&rennes_broker, &ns, "rennes").await;
    insert_endpoints(&rennes, "rennes-a", 10).await;
    register(&master, &rennes).await;
    wait_for_replicated_endpoints(&master, "rennes", 10).await;

    wan.cut();
    wait_for("the slave showing a link down while the WAN is cut", || async {
        let links = rennes.get_ok("/api/replication").await["links"]["links"].clone();
        links.as_array()?.iter().any(|l| l["state"] != "running").then_some(())
    })
    .await;
    // Meanwhile the master sends a policy and asks for the changes, and the
    // slave's computers change: everything waits on one side of the cut.
    let (status, policy) =
        master.post("/api/policies", json!({"name": "During the cut", "target": {"slaves": "all"}})).await;
    assert_eq!(status, 201, "{policy}");
    insert_endpoints(&rennes, "rennes-b", 15).await;
    let (status, body) = master.post("/api/slaves/rennes/replicate", json!({"full": false})).await;
    assert_eq!(status, 202, "{body}");
    tokio::time::sleep(cut()).await; // the fault itself, not a wait for anything
    wan.restore();

    let path = format!("/api/policies/{}", policy["id"].as_str().unwrap());
    wait_for_receipts(&master, &path, &["rennes"], "the policy sent during the cut", |r| r["state"] == "delivered")
        .await;
    let replication = wait_for_replicated_endpoints(&master, "rennes", 25).await;
    assert_eq!(replication["refused_batches"], 0, "nothing replayed or out of order: {replication}");
    let slave = master.get_ok("/api/slaves/rennes").await;
    assert_eq!(slave["refused_messages"], 0, "{slave}");
    wait_for("the links running again", || async {
        let links = rennes.get_ok("/api/replication").await["links"]["links"].clone();
        links.as_array()?.iter().all(|l| l["state"] == "running").then_some(())
    })
    .await;

    rennes.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_wait_on_the_sites_broker_while_its_server_is_down() {
    let _turn = take_turn().await;
    let (hq_broker, brest_broker) = tokio::join!(PrivateBroker::start_with_links(), PrivateBroker::start_with_links());
    let ns = namespace();
    let topo = Topology::new(&NameSegment::parse(&ns).unwrap());
    let master = master_on(&hq_broker, &ns, &format!("amqp://127.0.0.1:{}/%2f", hq_broker.port)).await;
    let brest = site_on(&brest_broker, &ns, "brest").await;
    register(&master, &brest).await;

    let options = brest.halt().await;
    let mut paths = Vec::new();
    for name in ["While down 1", "While down 2"] {
        let (status, policy) = master.post("/api/policies", json!({"name": name, "target": {"slaves": "all"}})).await;
        assert_eq!(status, 201, "{policy}");
        paths.push(format!("/api/policies/{}", policy["id"].as_str().unwrap()));
    }
    let queue = topo.slave_commands_queue("brest");
    let admin = brest_broker.management();
    wait_for("the commands crossed to the site's broker while its server is down", || async {
        (admin.queue_depth("/", &queue).await.ok()?? >= 2).then_some(())
    })
    .await;

    let brest = TestServer::spawn(options).await;
    for path in &paths {
        wait_for_receipts(&master, path, &["brest"], "a policy sent while the slave was down", |r| {
            r["state"] == "applied"
        })
        .await;
    }
    brest.stop(&[]).await;
    master.stop(&[]).await;
}

/// Flapping: the link is cut for 1 s every 3 s, this many times (20 s; 60 s
/// under `ops/chaos --long`).
fn flaps() -> u32 {
    if long() {
        20
    } else {
        7
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flapping_link_delivers_everything_once() {
    let _turn = take_turn().await;
    let (hq_broker, caen_broker) = tokio::join!(PrivateBroker::start_with_links(), PrivateBroker::start_with_links());
    let wan = Wan::start(([127, 0, 0, 1], hq_broker.port).into()).await;
    let ns = namespace();
    let master = master_on(&hq_broker, &ns, &format!("amqp://127.0.0.1:{}/%2f", wan.address().port())).await;
    let caen = site_on(&caen_broker, &ns, "caen").await;
    register(&master, &caen).await;

    // The fault runs beside the traffic; its sleeps are the fault's rhythm.
    let flapping = tokio::spawn(async move {
        for _ in 0..flaps() {
            tokio::time::sleep(Duration::from_secs(2)).await;
            wan.cut();
            tokio::time::sleep(Duration::from_secs(1)).await;
            wan.restore();
        }
        wan
    });
    let mut paths = Vec::new();
    for round in 0..5 {
        let body = json!({"name": format!("Flapping {round}"), "target": {"slaves": "all"}});
        let (status, policy) = master.post("/api/policies", body).await;
        assert_eq!(status, 201, "{policy}");
        paths.push(format!("/api/policies/{}", policy["id"].as_str().unwrap()));
        insert_endpoints(&caen, &format!("caen-{round}"), 5).await;
        let (status, body) = master.post("/api/slaves/caen/replicate", json!({"full": false})).await;
        assert_eq!(status, 202, "{body}");
        tokio::time::sleep(Duration::from_secs(3)).await; // the traffic's pace
    }
    let _wan = flapping.await.expect("the flapping ran");

    let (status, body) = master.post("/api/slaves/caen/replicate", json!({"full": false})).await;
    assert_eq!(status, 202, "{body}");
    for path in &paths {
        // Applied when the site had no endpoints yet, delivered after.
        wait_for_receipts(&master, path, &["caen"], "a policy sent while the link flapped", |r| {
            r["state"] == "delivered" || r["state"] == "applied"
        })
        .await;
    }
    let replication = wait_for_replicated_endpoints(&master, "caen", 25).await;
    assert_eq!(replication["refused_batches"], 0, "nothing replayed or out of order: {replication}");
    let slave = master.get_ok("/api/slaves/caen").await;
    assert_eq!(slave["refused_messages"], 0, "{slave}");
    caen.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_link_under_writers_loses_and_duplicates_nothing() {
    let _turn = take_turn().await;
    let (hq_broker, site_broker) = tokio::join!(PrivateBroker::start_with_links(), PrivateBroker::start_with_links());
    let wan = Wan::start(([127, 0, 0, 1], hq_broker.port).into()).await;
    let master = ServerOptions {
        amqp_url: hq_broker.url(),
        namespace: namespace(),
        broker_xml: hq_broker.management_xml(),
        extra_xml: format!(
            "<Hierarchy><BrokerForSlaves>amqp://127.0.0.1:{}/%2f</BrokerForSlaves></Hierarchy>",
            wan.address().port()
        ),
        ..ServerOptions::master()
    };
    let (site_url, site_xml) = (site_broker.url(), site_broker.management_xml());
    let stack = Stack::start(master, &["quimper"], 200, |s| {
        s.amqp_url = site_url.clone();
        s.broker_xml = site_xml.clone();
        s.extra_xml = format!(
            "{FAST_REPLICATION}<Hierarchy><SiteBroker>true</SiteBroker><LinkCheckSeconds>1</LinkCheckSeconds></Hierarchy>"
        );
    })
    .await;
    stack.wait_for_copies(200).await;

    // Traffic in full flow when the link is cut: writers on the slave,
    // replication every second, policies and a task on their way.
    let writers: Vec<Writers> = stack.slaves.iter().map(|s| Writers::start(s, 2, 2_000)).collect();
    stack.wait_for_copies_to_grow().await;
    let sent = fan_out(&stack.master, "Before", 2, 1).await;
    wan.cut();
    edit_policies(&stack.master, &sent, false).await;
    fan_out(&stack.master, "During", 1, 1).await;
    tokio::time::sleep(cut()).await; // holds the fault, waits for nothing
    wan.restore();
    let healed_at = Utc::now();
    let mut committed = 0;
    for w in writers {
        committed += w.finish().await;
    }
    assert!(committed > 50, "the writers committed only {committed} transactions");

    stack.wait_for_copies_to_grow().await;
    let report = stack.settle_and_check("multi-site-link-cut", healed_at).await;
    report.assert_clean();
    stack.assert_one_epoch().await;
    stack.stop().await;
}
