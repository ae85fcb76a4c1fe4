//! Sites on brokers of their own (`docs/multi-site.md`): a master and a
//! slave each on a private RabbitMQ node; registration through the real
//! API makes the slave's broker user on the master's broker and the
//! shovels on the slave's broker; commands, status and replication cross
//! them; a link deleted by hand is made again; unregistering removes both.
//! The link user's permissions are
//! proven on the broker with a client of the test's own, a master broker
//! the slave's broker cannot reach leaves nothing behind, and a link runs
//! over TLS verified with a CA the test makes.

use lapin::{
    options::{BasicGetOptions, BasicPublishOptions},
    BasicProperties, Channel,
};
use rampart_shared::{
    amqp::{close_channel, Broker},
    broker_admin::grants::{provision, url_with_user, BrokerGrant},
    topology::{NameSegment, Topology},
    Secret,
};
use rampart_tests::{
    faults::{
        broker::{PrivateBroker, TlsListener},
        free_port, take_turn,
    },
    hierarchy::{insert_endpoints, receipt, register, token, wait_for_receipts, wait_for_replicated_endpoints},
    namespace, wait_for, ServerOptions, TestServer,
};
use serde_json::json;

/// A master on `broker`, telling slaves to reach its broker at `for_slaves`.
async fn master_on(broker: &PrivateBroker, ns: &str, for_slaves: &str) -> TestServer {
    TestServer::spawn(ServerOptions {
        amqp_url: broker.url(),
        namespace: ns.to_owned(),
        broker_xml: broker.management_xml(),
        extra_xml: format!("<Hierarchy><BrokerForSlaves>{for_slaves}</BrokerForSlaves></Hierarchy>"),
        ..ServerOptions::master()
    })
    .await
}

/// A stand-alone named `name` on its own `broker`, ready to link.
async fn site_on(broker: &PrivateBroker, ns: &str, name: &str) -> TestServer {
    TestServer::spawn(ServerOptions {
        amqp_url: broker.url(),
        broker_xml: broker.management_xml(),
        extra_xml: "<Hierarchy><SiteBroker>true</SiteBroker><LinkStartSeconds>8</LinkStartSeconds></Hierarchy>".into(),
        ..ServerOptions::site(name, ns)
    })
    .await
}

/// The names of the shovels defined on `broker`.
async fn shovels(broker: &PrivateBroker) -> Vec<String> {
    broker.management().shovel_names("/").await.expect("the shovels")
}

async fn user_exists(broker: &PrivateBroker, user: &str) -> bool {
    broker.management().user(user).await.is_ok()
}

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

/// Publishes one message with confirms; `Ok` only if the broker took it.
async fn publish(channel: &Channel, exchange: &str, key: &str) -> Result<(), lapin::Error> {
    channel.confirm_select(Default::default()).await?;
    let confirm = channel
        .basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), b"{}", BasicProperties::default())
        .await?;
    confirm.await.map(drop)
}

/// Whether `attempt` on a fresh channel of `broker` is refused with 403.
async fn refused<F, Fut, T>(broker: &Broker, what: &str, attempt: F)
where
    F: FnOnce(Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, lapin::Error>>,
{
    let channel = broker.channel().await.expect("a channel");
    let result = tokio::time::timeout(rampart_tests::WAIT, attempt(channel.clone())).await.expect("bounded");
    let error = match result {
        Ok(_) => panic!("{what}: the broker allowed it"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("ACCESS_REFUSED") || error.contains("403"), "{what}: {error}");
    let _ = close_channel(&channel, "done").await;
}

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

/// A CA and a certificate for `localhost` signed by it, as PEM texts.
fn certificate_authority() -> TlsListener {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Rampart test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    TlsListener { ca_pem: ca.pem(), certificate_pem: certificate.pem(), key_pem: key.serialize_pem() }
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
