//! Sites on brokers of their own, what protects the link
//! (`docs/multi-site.md`): a slave's link user on the master's broker is
//! refused everything but its own command queue and its own keys (proven
//! with a broker client of the test's own), and a link runs over TLS,
//! verifying the master broker's certificate with a CA the test makes.

use lapin::options::BasicGetOptions;
use rampart_shared::{
    amqp::{close_channel, Broker},
    broker_admin::{
        grants::{provision, url_with_user, BrokerGrant},
        TopicPermissions,
    },
    replication::Lane,
    topology::{NameSegment, Topology},
    Secret,
};
use rampart_tests::{
    faults::{broker::PrivateBroker, take_turn},
    hierarchy::{insert_endpoints, register, token, wait_for_receipts, wait_for_replicated_endpoints},
    multi_site::{certificate_authority, master_on, shovels, site_on},
    namespace,
    refusals::{publish, refused},
    wait_for, ServerOptions, TestServer,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_user_reaches_only_its_own_slaves_queue_and_keys() {
    let _turn = take_turn().await;
    let hq_broker = PrivateBroker::start_with_management().await;
    let ns = namespace();
    let topo = Topology::new(&NameSegment::parse(&ns).unwrap());
    let admin = hq_broker.management();
    // The master's topology, as a master declares it.
    let master = master_on(&hq_broker, &ns, &format!("amqp://127.0.0.1:{}/%2f", hq_broker.port)).await;
    let setup = Broker::connect(Secret::new(hq_broker.url()), "rt setup").await.unwrap();
    let channel = setup.channel().await.unwrap();
    for slave in ["par", "paris"] {
        let bindings = [Topology::slave_key(slave), Topology::ALL_SLAVES_KEY.to_owned()];
        rampart_shared::topology::declare_queue(
            &channel,
            &topo,
            &topo.slave_commands_queue(slave),
            &topo.commands_exchange(),
            &bindings,
        )
        .await
        .unwrap();
    }
    let _ = close_channel(&channel, "declared").await;
    setup.close().await;

    let user = provision(&admin, "/", &BrokerGrant::slave_link(&topo, "par")).await.expect("provision");
    let url = url_with_user(&hq_broker.url(), &user).unwrap();
    let as_par = Broker::connect(Secret::new(url), "rt attacker with slave par's link user").await.unwrap();

    // What its links do is allowed.
    let channel = as_par.channel().await.unwrap();
    publish(&channel, &topo.status_exchange(), &Topology::status_key("par", "heartbeat")).await.expect("own status");
    publish(&channel, &topo.replication_exchange(), &Topology::slave_key("par")).await.expect("own replication");
    let own = topo.slave_commands_queue("par");
    channel.basic_get(own.as_str().into(), BasicGetOptions::default()).await.expect("its own command queue");
    let _ = close_channel(&channel, "done").await;

    // What would be another slave's, or the master's, is refused.
    let (status, paris_status) = (topo.status_exchange(), Topology::status_key("paris", "heartbeat"));
    refused(&as_par, "status under slave paris's keys", |c| async move { publish(&c, &status, &paris_status).await })
        .await;
    let replication = topo.replication_exchange();
    refused(&as_par, "replication under slave paris's key", |c| async move {
        publish(&c, &replication, &Topology::slave_key("paris")).await
    })
    .await;
    let commands = topo.commands_exchange();
    refused(
        &as_par,
        "publishing commands",
        |c| async move { publish(&c, &commands, &Topology::slave_key("par")).await },
    )
    .await;
    let other_queue = topo.slave_commands_queue("paris");
    refused(&as_par, "reading slave paris's command queue", |c| async move {
        c.basic_get(other_queue.as_str().into(), BasicGetOptions::default()).await
    })
    .await;
    let master_status = topo.master_status_queue();
    refused(&as_par, "reading the master's status queue", |c| async move {
        c.basic_get(master_status.as_str().into(), BasicGetOptions::default()).await
    })
    .await;
    as_par.close().await;
    master.stop(&[topo.slave_commands_queue("par"), topo.slave_commands_queue("paris")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_runs_over_tls_verifying_the_master_broker() {
    let _turn = take_turn().await;
    let tls = certificate_authority();
    let ca_pem = tls.ca_pem.clone();
    let (hq_broker, nice_broker) = tokio::join!(PrivateBroker::start_with_tls(tls), PrivateBroker::start_with_links());
    let ns = namespace();
    let amqps = format!("amqps://localhost:{}/%2f", hq_broker.tls_port.expect("a TLS listener"));
    let master = master_on(&hq_broker, &ns, &amqps).await;
    // The CA file is read by the site's broker, so it lives on its host.
    let ca_file = nice_broker.write_file("hq-ca.pem", &ca_pem);
    let nice = TestServer::spawn(ServerOptions {
        amqp_url: nice_broker.url(),
        broker_xml: nice_broker.management_xml(),
        extra_xml: format!(
            "<Hierarchy><SiteBroker>true</SiteBroker><LinkStartSeconds>15</LinkStartSeconds>\
             <MasterBrokerCaFile>{}</MasterBrokerCaFile></Hierarchy>",
            ca_file.display()
        ),
        ..ServerOptions::site("nice", &ns)
    })
    .await;

    // A CA that did not sign the master broker's certificate: no link.
    let other_ca = nice_broker.write_file("other-ca.pem", &certificate_authority().ca_pem);
    let impostor = TestServer::spawn(ServerOptions {
        amqp_url: nice_broker.url(),
        broker_xml: nice_broker.management_xml(),
        extra_xml: format!(
            "<Hierarchy><SiteBroker>true</SiteBroker><LinkStartSeconds>5</LinkStartSeconds>\
             <MasterBrokerCaFile>{}</MasterBrokerCaFile></Hierarchy>",
            other_ca.display()
        ),
        ..ServerOptions::site("antibes", &ns)
    })
    .await;
    let token = token(&master).await;
    let (status, body) =
        impostor.post("/api/hierarchy/register", json!({"master": master.address(), "token": token})).await;
    assert_eq!(status, 502, "the master broker's certificate is not verified by another CA: {body}");
    assert!(shovels(&nice_broker).await.is_empty(), "no link left behind");
    impostor.stop(&[]).await;

    register(&master, &nice).await;
    let (status, policy) = master.post("/api/policies", json!({"name": "Over TLS", "target": {"slaves": "all"}})).await;
    assert_eq!(status, 201, "{policy}");
    let path = format!("/api/policies/{}", policy["id"].as_str().unwrap());
    // No endpoints at this site: applied on all (none) of them.
    wait_for_receipts(&master, &path, &["nice"], "a receipt across the TLS link", |r| r["state"] == "applied").await;
    let slave = wait_for("the link's connection listed on the master's broker", || async {
        let slave = master.get_ok("/api/slaves/nice").await;
        (slave["broker"]["connections"].as_array().is_some_and(|c| !c.is_empty())).then_some(slave)
    })
    .await;
    let connections = hq_broker.management().connections_of(&format!("{ns}.link.nice")).await.unwrap();
    assert!(!connections.is_empty(), "{slave}");
    let tls_port = format!(":{}", hq_broker.tls_port.unwrap());
    assert!(
        connections.iter().all(|c| c.name.ends_with(&tls_port)),
        "every link connection is on the TLS port: {connections:?}"
    );

    nice.stop(&[]).await;
    master.stop(&[]).await;
}

/// Links made by the version before the live replication lane keep
/// replicating once both servers run this one: the master's start brings
/// the slave's link user up to this version's grant (a key more on
/// `<ns>.replication`), and the slave's link keeper binds its local link
/// queue to that key. Both are put back as the older version left them,
/// then the servers restart and a caught-up batch crosses the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_made_by_an_older_version_are_brought_up_to_date() {
    let _turn = take_turn().await;
    let (hq_broker, lille_broker) = tokio::join!(PrivateBroker::start_with_links(), PrivateBroker::start_with_links());
    let ns = namespace();
    let topo = Topology::new(&NameSegment::parse(&ns).unwrap());
    let master = master_on(&hq_broker, &ns, &format!("amqp://127.0.0.1:{}/%2f", hq_broker.port)).await;
    let lille = site_on(&lille_broker, &ns, "lille").await;
    register(&master, &lille).await;

    let (master, mut lille) = (master.halt().await, lille.halt().await);
    let (admin, user) = (hq_broker.management(), topo.link_user("lille"));
    let older =
        TopicPermissions { exchange: topo.replication_exchange(), write: r"^slave\.lille$".into(), read: "^$".into() };
    admin.set_topic_permissions("/", &user, &older).await.expect("the older grant");
    let site = Broker::connect(Secret::new(lille_broker.url()), "rt older binding").await.unwrap();
    let channel = site.channel().await.unwrap();
    channel
        .queue_unbind(
            topo.link_replication_queue("lille").as_str().into(),
            topo.replication_exchange().as_str().into(),
            Topology::replication_key("lille", Lane::Live).as_str().into(),
            Default::default(),
        )
        .await
        .expect("the older binding");
    let _ = close_channel(&channel, "unbound").await;
    site.close().await;

    let master = TestServer::spawn(master).await;
    wait_for("the link user's grant brought up to date", || async {
        let topics = admin.topic_permissions("/", &user).await.ok()?;
        topics.iter().any(|t| t.exchange == topo.replication_exchange() && t.write.contains("live")).then_some(())
    })
    .await;
    lille.extra_xml = lille.extra_xml.replace("</Hierarchy>", "<LinkCheckSeconds>1</LinkCheckSeconds></Hierarchy>");
    let lille = TestServer::spawn(lille).await;
    insert_endpoints(&lille, "lille", 3).await;
    let (status, body) = master.post("/api/slaves/lille/replicate", json!({"full": false})).await;
    assert_eq!(status, 202, "{body}");
    wait_for_replicated_endpoints(&master, "lille", 3).await;
    lille.stop(&[]).await;
    master.stop(&[]).await;
}
