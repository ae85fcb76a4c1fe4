//! Sites on brokers of their own (`docs/multi-site.md`): a master and a
//! slave each on a private RabbitMQ node; registration through the real
//! API makes the slave's broker user on the master's broker and the
//! shovels on the slave's broker; commands, status and replication cross
//! them; a link deleted by hand is made again; unregistering removes both;
//! a master broker the slave's broker cannot reach leaves nothing behind.
//! `multi_site_security.rs` has the link user's refusals and TLS,
//! `faults_multi_site.rs` the link and broker faults under the checker.

use rampart_shared::topology::{NameSegment, Topology};
use rampart_tests::{
    faults::{broker::PrivateBroker, free_port, take_turn},
    hierarchy::{insert_endpoints, receipt, register, token, wait_for_receipts, wait_for_replicated_endpoints},
    multi_site::{master_on, shovels, site_on, user_exists},
    namespace, wait_for,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_broker_is_linked_by_registration_and_unlinked_by_unregistration() {
    let _turn = take_turn().await;
    let (hq_broker, paris_broker) = tokio::join!(PrivateBroker::start_with_links(), PrivateBroker::start_with_links());
    let ns = namespace();
    let topo = Topology::new(&NameSegment::parse(&ns).unwrap());
    let master = master_on(&hq_broker, &ns, &format!("amqp://127.0.0.1:{}/%2f", hq_broker.port)).await;
    let paris = site_on(&paris_broker, &ns, "paris").await;
    insert_endpoints(&paris, "paris", 25).await;

    register(&master, &paris).await;
    assert!(user_exists(&hq_broker, &topo.link_user("paris")).await, "the master made the slave's broker user");
    let mut made = shovels(&paris_broker).await;
    made.sort();
    let expected: Vec<String> =
        ["commands", "replication", "status"].iter().map(|w| topo.link_shovel("paris", w)).collect();
    assert_eq!(made, expected, "the shovels live on the slave's broker");
    assert!(shovels(&hq_broker).await.is_empty(), "nothing on the master's broker opens a connection to the site");
    let shown = paris.get_ok("/api/hierarchy").await;
    let links = shown["links"].as_array().expect("the links are shown");
    assert!(links.iter().all(|l| l["state"] == "running"), "{shown}");

    // Commands go down and receipts come back up through the links.
    let (status, policy) =
        master.post("/api/policies", json!({"name": "HQ baseline", "target": {"slaves": "all"}})).await;
    assert_eq!(status, 201, "{policy}");
    let path = format!("/api/policies/{}", policy["id"].as_str().unwrap());
    // Its endpoints have no agent: the receipt says the slave has it.
    wait_for_receipts(&master, &path, &["paris"], "the policy's receipt from the linked slave", |r| {
        r["state"] == "delivered" && r["version"] == 1
    })
    .await;
    assert_eq!(paris.get_ok(&path).await["owner"], "master");
    // The first snapshot crosses the replication link, its signatures intact.
    wait_for_replicated_endpoints(&master, "paris", 25).await;
    let slave = master.get_ok("/api/slaves/paris").await;
    assert_eq!(slave["refused_messages"], 0, "{slave}");

    // What an operator watches: the master sees the links' connections and
    // the command queue; the slave its links and what waits on its side.
    let slave = wait_for("the links' connections listed on the master's broker", || async {
        let slave = master.get_ok("/api/slaves/paris").await;
        (slave["broker"]["connections"].as_array().is_some_and(|c| !c.is_empty())).then_some(slave)
    })
    .await;
    assert_eq!(slave["site_broker"], true, "{slave}");
    assert_eq!(slave["broker"]["user"], topo.link_user("paris"), "{slave}");
    assert!(slave["broker"]["command_queue_depth"].is_u64(), "{slave}");
    wait_for("the links' state in the slave's heartbeat on the master", || async {
        let slave = master.get_ok("/api/slaves/paris").await;
        let links = slave["links"].as_array().cloned().unwrap_or_default();
        (links.len() == 3 && links.iter().all(|l| l["state"] == "running")).then_some(())
    })
    .await;
    let metrics = master.metrics().await;
    assert!(metrics.contains("rampart_slave_link_up{slave=\"paris\",link=\"status\"} 1"), "{metrics}");
    let replication = paris.get_ok("/api/replication").await;
    let links = replication["links"]["links"].as_array().expect("the links beside the stream");
    assert_eq!(links.len(), 3, "{replication}");
    assert!(links.iter().filter(|l| l["carries"] != "commands").all(|l| l["waiting"].is_u64()), "{replication}");
    let metrics = paris.metrics().await;
    for link in ["commands", "status", "replication"] {
        assert!(metrics.contains(&format!("rampart_link_up{{link=\"{link}\"}} 1")), "{metrics}");
    }
    assert!(metrics.contains("rampart_link_waiting_messages{link=\"status\"}"), "{metrics}");

    // A link deleted by hand on the site's broker is made again, and
    // what waited for it crosses.
    let status_link = topo.link_shovel("paris", "status");
    paris_broker.management().delete_shovel("/", &status_link).await.expect("deleted by hand");
    let (status, second) = master.post("/api/policies", json!({"name": "Second", "target": {"slaves": "all"}})).await;
    assert_eq!(status, 201, "{second}");
    let second = format!("/api/policies/{}", second["id"].as_str().unwrap());
    wait_for_receipts(&master, &second, &["paris"], "a receipt through the repaired status link", |r| {
        r["state"] == "delivered"
    })
    .await;
    assert!(shovels(&paris_broker).await.contains(&status_link), "the status link is back");

    // Leaving removes the links on the site and the user on the master.
    let (status, body) = paris.post("/api/hierarchy/unregister", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(shovels(&paris_broker).await.is_empty(), "the links are gone once unregistering returns");
    wait_for("the slave's broker user deleted on the master", || async {
        (!user_exists(&hq_broker, &topo.link_user("paris")).await).then_some(())
    })
    .await;
    let gone = master.get_ok("/api/slaves/paris").await;
    assert_eq!(gone["state"], "removed", "{gone}");
    let object = master.get_ok(&path).await;
    assert_eq!(receipt(&object, "paris").unwrap()["state"], "cancelled", "{object}");

    // Registering again links again; a forced removal on the master does
    // not wait for the slave: its broker user goes at once.
    register(&master, &paris).await;
    assert_eq!(shovels(&paris_broker).await.len(), 3);
    let (status, removal) = master.delete("/api/slaves/paris?force=true").await;
    assert_eq!(status, 200, "{removal}");
    assert_eq!(removal["state"], "removed", "{removal}");
    assert!(!user_exists(&hq_broker, &topo.link_user("paris")).await, "deleted without waiting for the slave");
    assert!(
        !hq_broker.queues().await.iter().any(|(q, ..)| q == &topo.slave_commands_queue("paris")),
        "its command queue is deleted too"
    );

    paris.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_broker_out_of_reach_fails_the_registration_and_leaves_nothing() {
    let _turn = take_turn().await;
    let (hq_broker, lyon_broker) =
        tokio::join!(PrivateBroker::start_with_management(), PrivateBroker::start_with_links());
    let ns = namespace();
    let topo = Topology::new(&NameSegment::parse(&ns).unwrap());
    // Nothing listens on this port: the slave's broker cannot reach it.
    let master = master_on(&hq_broker, &ns, &format!("amqp://127.0.0.1:{}/%2f", free_port())).await;
    let lyon = site_on(&lyon_broker, &ns, "lyon").await;

    let token = token(&master).await;
    let (status, body) =
        lyon.post("/api/hierarchy/register", json!({"master": master.address(), "token": token})).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("did not reach 'running'") && message.contains("withdrawn"), "{message}");
    assert!(message.contains("register again"), "says what to retry: {message}");

    assert_eq!(lyon.get_ok("/api/hierarchy").await["role"], "standalone");
    assert!(shovels(&lyon_broker).await.is_empty(), "no link left on the site's broker");
    assert!(!user_exists(&hq_broker, &topo.link_user("lyon")).await, "no user left on the master's broker");
    let slave = master.get_ok("/api/slaves/lyon").await;
    assert_eq!(slave["state"], "removed", "{slave}");

    lyon.stop(&[]).await;
    master.stop(&[topo.slave_commands_queue("lyon")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_broker_that_is_the_masters_own_is_refused() {
    let _turn = take_turn().await;
    let broker = PrivateBroker::start_with_links().await;
    let ns = namespace();
    let topo = Topology::new(&NameSegment::parse(&ns).unwrap());
    let master = master_on(&broker, &ns, &format!("amqp://127.0.0.1:{}/%2f", broker.port)).await;
    // Configured as on a broker of its own, but it is the master's.
    let metz = site_on(&broker, &ns, "metz").await;

    let token = token(&master).await;
    let (status, body) =
        metz.post("/api/hierarchy/register", json!({"master": master.address(), "token": token})).await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("is this site's own broker") && message.contains("<SiteBroker>"), "{message}");
    assert!(shovels(&broker).await.is_empty(), "no link loops commands back");
    assert!(!user_exists(&broker, &topo.link_user("metz")).await, "the registration was withdrawn");
    assert_eq!(master.get_ok("/api/slaves/metz").await["state"], "removed");

    metz.stop(&[]).await;
    master.stop(&[topo.slave_commands_queue("metz")]).await;
}
