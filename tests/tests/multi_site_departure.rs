//! Leaving the master while the WAN is down, with the slave's server
//! restarted before the departure has crossed (`docs/multi-site.md`,
//! "Unregistering while the links are down"): the status link kept to
//! deliver the departure is stored in the slave's database, so the
//! restarted server still removes it once the departure has crossed, and
//! nothing of the old master stays on the site's broker.
//! `faults_multi_site.rs` has the same departure without the restart.

use rampart_shared::topology::{NameSegment, Topology};
use rampart_tests::{
    faults::{broker::PrivateBroker, take_turn, wan::Wan},
    hierarchy::register,
    multi_site::{departure_crosses, master_on, shovels, site_on},
    namespace, TestServer,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_departure_held_by_the_wan_is_finished_after_the_slave_restarts() {
    let _turn = take_turn().await;
    let (hq_broker, nantes_broker) = tokio::join!(PrivateBroker::start_with_links(), PrivateBroker::start_with_links());
    let wan = Wan::start(([127, 0, 0, 1], hq_broker.port).into()).await;
    let ns = namespace();
    let topo = Topology::new(&NameSegment::parse(&ns).unwrap());
    let master = master_on(&hq_broker, &ns, &format!("amqp://127.0.0.1:{}/%2f", wan.address().port())).await;
    let nantes = site_on(&nantes_broker, &ns, "nantes").await;
    register(&master, &nantes).await;

    // Leaving with the WAN cut: only the status link stays, holding the
    // departure.
    wan.cut();
    let (status, body) = nantes.post("/api/hierarchy/unregister", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["master_informed"], false, "{body}");
    let status_link = topo.link_shovel("nantes", "status");
    assert_eq!(shovels(&nantes_broker).await, vec![status_link.clone()], "only the status link stays");

    // The slave's server restarts while the departure still waits.
    let options = nantes.halt().await;
    let nantes = TestServer::spawn(options).await;
    nantes.wait_for_field("/api/hierarchy", "role", "standalone").await;
    assert_eq!(shovels(&nantes_broker).await, vec![status_link], "the restart keeps the status link");
    let slave = master.get_ok("/api/slaves/nantes").await;
    assert_ne!(slave["state"], "removed", "the master has not heard yet: {slave}");

    // The WAN is back: the departure crosses, the master removes the slave
    // and its broker user, and the restarted server removes the link.
    wan.restore();
    departure_crosses(&master, &hq_broker, &nantes_broker, "nantes").await;
    let link_queues = [topo.link_status_queue("nantes"), topo.link_replication_queue("nantes")];
    let left: Vec<String> =
        nantes_broker.queues().await.into_iter().map(|q| q.0).filter(|q| link_queues.contains(q)).collect();
    assert!(left.is_empty(), "the link queues are gone from the site's broker: {left:?}");

    nantes.stop(&[]).await;
    master.stop(&[]).await;
}
