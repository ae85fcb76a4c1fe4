//! Helpers for tests of sites on brokers of their own
//! (`tests/tests/multi_site*.rs`, `docs/multi-site.md`): a master and sites
//! each on a private RabbitMQ node, linked by registration.

use serde_json::json;

use crate::{
    faults::broker::{PrivateBroker, TlsListener},
    hierarchy::wait_for_receipts,
    ServerOptions, TestServer,
};

/// A master on `broker`, telling slaves to reach its broker at `for_slaves`.
pub async fn master_on(broker: &PrivateBroker, ns: &str, for_slaves: &str) -> TestServer {
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
pub async fn site_on(broker: &PrivateBroker, ns: &str, name: &str) -> TestServer {
    TestServer::spawn(ServerOptions {
        amqp_url: broker.url(),
        broker_xml: broker.management_xml(),
        extra_xml: "<Hierarchy><SiteBroker>true</SiteBroker><LinkStartSeconds>8</LinkStartSeconds></Hierarchy>".into(),
        ..ServerOptions::site(name, ns)
    })
    .await
}

/// The names of the shovels defined on `broker`.
pub async fn shovels(broker: &PrivateBroker) -> Vec<String> {
    broker.management().shovel_names("/").await.expect("the shovels")
}

pub async fn user_exists(broker: &PrivateBroker, user: &str) -> bool {
    broker.management().user(user).await.is_ok()
}

/// Once the WAN is back after leaving with it down: waits until the master
/// has removed `slave` (the departure crossed), deleted its link user on
/// `hq_broker`, and the site's `site_broker` has removed the status link
/// kept to deliver the departure.
pub async fn departure_crosses(
    master: &TestServer,
    hq_broker: &PrivateBroker,
    site_broker: &PrivateBroker,
    slave: &str,
) {
    let path = format!("/api/slaves/{slave}");
    crate::wait_for("the master to learn of the departure", || async {
        (master.get_ok(&path).await["state"] == "removed").then_some(())
    })
    .await;
    let user = master.topology().link_user(slave);
    crate::wait_for("the slave's broker user deleted on the master", || async {
        (!user_exists(hq_broker, &user).await).then_some(())
    })
    .await;
    crate::wait_for("the status link gone once it delivered the departure", || async {
        shovels(site_broker).await.is_empty().then_some(())
    })
    .await;
}

/// Creates a policy for every slave and waits until `slave` has it (no
/// endpoints there: applied on all of them).
pub async fn policy_reaches(master: &TestServer, slave: &str, name: &str) {
    let (status, policy) = master.post("/api/policies", json!({"name": name, "target": {"slaves": "all"}})).await;
    assert_eq!(status, 201, "{policy}");
    let path = format!("/api/policies/{}", policy["id"].as_str().unwrap());
    wait_for_receipts(master, &path, &[slave], &format!("policy '{name}' applied on {slave}"), |r| {
        r["state"] == "applied"
    })
    .await;
}

/// A CA and a certificate for `localhost` signed by it, as PEM texts.
pub fn certificate_authority() -> TlsListener {
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
