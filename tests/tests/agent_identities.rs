//! Agent identities end to end, on a private RabbitMQ node with the
//! management plugin and a TLS site that requires identities (the
//! production default): real agent processes enrol with one-time tokens
//! over the pinned TLS API, run as their own broker users, and a broker
//! client of the test's own, connected with an agent's enrolled
//! credentials, tries the attacks of issue 20: commanding another endpoint,
//! enrolling computers that do not exist, and speaking in another
//! identity's endpoint's name. Then revocation cuts the agent off.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use lapin::{options::BasicPublishOptions, BasicProperties, Channel};
use rampart_agent::{identity, settings::AgentIdentity};
use rampart_shared::{
    amqp::{
        close_channel,
        publisher::{Outgoing, Publisher},
        Broker,
    },
    broker_admin::{grants::url_with_user, NewUser},
    enrolment::{Enrolment, EnrolmentRequest},
    messages::{kind, AgentMessage, Heartbeat},
    site_key::SitePublicKey,
    topology::{NameSegment, Topology},
    Envelope, Secret,
};
use rampart_tests::{
    faults::{broker::PrivateBroker, take_turn, work_root},
    wait_for, ServerOptions, TestAgent, TestServer,
};
use serde_json::{json, Value};

/// A TLS site on `broker` that requires identities and may make broker users.
async fn site(broker: &PrivateBroker) -> TestServer {
    let credentials = work_root().join(format!("admin-{}.credentials", uuid::Uuid::new_v4().simple()));
    std::fs::write(&credentials, "guest:guest\n").unwrap();
    TestServer::spawn(ServerOptions {
        amqp_url: broker.url(),
        tls: true,
        plain_registration: false,
        require_agent_identity: true,
        broker_management: Some((broker.management_url(), credentials)),
        ..ServerOptions::standalone()
    })
    .await
}

/// A new enrolment token for `endpoints` endpoints, valid `seconds`.
async fn token(server: &TestServer, endpoints: u32, seconds: u64) -> Value {
    let body = json!({"endpoints": endpoints, "expires_in_seconds": seconds});
    let (status, token) = server.post("/api/agents/enrolment-tokens", body).await;
    assert_eq!(status, 201, "{token}");
    token
}

/// The ids a fleet named `name` with `count` endpoints runs.
fn fleet(name: &str, count: u32) -> Vec<String> {
    (1..=count).map(|i| format!("{name}-{i:05}")).collect()
}

/// Enrols a fleet named `name` of `count` endpoints with `token`, as the agent does.
async fn enrol(server: &TestServer, token: &str, name: &str, count: u32) -> anyhow::Result<Enrolment> {
    let request = EnrolmentRequest { token: String::new(), name: name.into(), endpoints: fleet(name, count) };
    identity::enrol(&server.base, token, request).await
}

/// The AMQP URL of an enrolled identity on `broker`.
fn url_of(broker: &PrivateBroker, identity: &Enrolment) -> String {
    let user = NewUser { name: identity.broker_user.clone(), password: Secret::new(identity.broker_password.clone()) };
    url_with_user(&broker.url(), &user).unwrap()
}

/// Runs the enrolled fleet `identity` (named `name`).
fn run(server: &TestServer, broker: &PrivateBroker, identity: &Enrolment, name: &str) -> TestAgent {
    let url = url_of(broker, identity);
    let enrolled = AgentIdentity {
        agent_id: identity.agent_id.clone(),
        broker_user: identity.broker_user.clone(),
        queue: identity.queue.clone(),
    };
    let key = SitePublicKey::from_hex(&identity.site_key).unwrap();
    TestAgent::spawn(server, identity.endpoints.len() as u32, |s| {
        s.amqp_url = Secret::new(url);
        s.name = NameSegment::parse(name).unwrap();
        s.site_key = Some(key);
        s.identity = Some(enrolled);
    })
}

fn heartbeat(endpoint: &str, hostname: &str) -> Heartbeat {
    Heartbeat {
        endpoint_id: endpoint.into(),
        hostname: hostname.into(),
        ip: "10.7.0.1".into(),
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

/// A heartbeat for `endpoint` on the site exchange, with `user_id` when given.
fn heartbeat_message(server: &TestServer, endpoint: &str, hostname: &str, user_id: Option<&str>) -> Outgoing {
    let message = AgentMessage::Heartbeat(heartbeat(endpoint, hostname));
    let envelope = message.to_envelope(1);
    let key = Topology::site_key(&server.options.instance, kind::HEARTBEAT);
    let mut outgoing = Outgoing::envelope(server.topology().site_exchange(), key, &envelope, None);
    if let Some(user) = user_id {
        outgoing.properties = outgoing.properties.with_user_id(user.into());
    }
    outgoing
}

/// Waits until the audit of refused messages holds one whose reason contains `needle`.
async fn wait_refused(server: &TestServer, needle: &str) -> Value {
    wait_for(&format!("a refusal saying '{needle}'"), || async {
        let page = server.get_ok("/api/refused-messages").await;
        page["messages"].as_array().unwrap().iter().find(|m| m["reason"].as_str().unwrap().contains(needle)).cloned()
    })
    .await
}

/// Publishes one raw message with confirms on `channel`.
async fn publish_raw(channel: &Channel, exchange: &str, key: &str, payload: &[u8]) -> Result<(), lapin::Error> {
    channel.confirm_select(Default::default()).await?;
    let confirm = channel
        .basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), payload, BasicProperties::default())
        .await?;
    confirm.await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enrolled_agents_speak_only_for_their_own_endpoints_until_revoked() {
    let _turn = take_turn().await;
    let broker = PrivateBroker::start_with_management().await;
    let server = site(&broker).await;
    let admin = broker.management();

    // Two agent processes enrol with their own tokens and run.
    let token_a = token(&server, 3, 600).await;
    let a = enrol(&server, token_a["token"].as_str().unwrap(), "fleet-a", 3).await.expect("fleet-a enrols");
    let token_b = token(&server, 1, 600).await;
    let b = enrol(&server, token_b["token"].as_str().unwrap(), "fleet-b", 1).await.expect("fleet-b enrols");
    assert_ne!(a.broker_user, b.broker_user);
    assert_eq!(a.site_key, server.state.site.command_key.public().to_hex(), "enrolment gives the site key");
    let user = admin.user(&a.broker_user).await.expect("a broker user per identity");
    assert!(user.tags.is_empty());
    let permissions = admin.permissions("/", &a.broker_user).await.unwrap();
    assert_eq!(permissions.configure, "^$", "an agent's user configures nothing");
    let agent_a = run(&server, &broker, &a, "fleet-a");
    let agent_b = run(&server, &broker, &b, "fleet-b");
    server.wait_for_endpoints(4).await;
    let listed = server.get_ok("/api/agents").await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let shown = server.get_ok(&format!("/api/agents/{}", a.agent_id)).await;
    assert_eq!(shown["owned_endpoints"], json!(fleet("fleet-a", 3)));

    // A broker client of the test's own, with fleet-a's enrolled credentials.
    let attacker = Arc::new(
        Broker::connect(Secret::new(url_of(&broker, &a)), "rt attacker with fleet-a's identity").await.unwrap(),
    );

    // 1. An endpoint command for fleet-b's endpoint: the broker refuses it
    //    (no write on the agents exchange), so fleet-b applies nothing.
    let channel = attacker.channel().await.unwrap();
    let (agents, command_key) =
        (server.topology().agents_exchange(), Topology::endpoint_key(&server.options.instance, "fleet-b-00001"));
    let policy =
        Envelope::new(kind::ENDPOINT_POLICY, &server.options.instance, 1, &json!({"realtime_protection": false}));
    let error = publish_raw(&channel, &agents, &command_key, &policy.to_bytes()).await.unwrap_err().to_string();
    assert!(error.contains("ACCESS_REFUSED") || error.contains("403"), "{error}");
    let _ = close_channel(&channel, "done").await;
    assert_eq!(agent_b.refusals.snapshot(), (0, 0, 0, 0), "nothing reached fleet-b to refuse or apply");
    assert_eq!(broker.queues().await.iter().find(|q| q.0 == b.queue).map(|q| q.1), Some(0));

    // 2. Fake computers: heartbeats for endpoints fleet-a does not own are
    //    refused, audited, and take no license seat.
    let publisher = Publisher::new(attacker.clone());
    for fake in ["fake-00001", "fleet-a-00004"] {
        publisher.publish(heartbeat_message(&server, fake, "ghost", Some(&a.broker_user))).await.unwrap();
    }
    let refusal = wait_refused(&server, "does not own endpoint 'fleet-a-00004'").await;
    assert_eq!(refusal["kind"], kind::HEARTBEAT);
    wait_refused(&server, "does not own endpoint 'fake-00001'").await;
    for fake in ["fake-00001", "fleet-a-00004"] {
        assert_eq!(server.get(&format!("/api/endpoints/{fake}")).await.0, 404, "{fake} was not enrolled");
    }
    let endpoints = server.get_ok("/api/endpoints").await;
    assert_eq!(endpoints["endpoints"].as_array().map(Vec::len), Some(4), "no seat for a fake: {endpoints}");

    // 3. A heartbeat in fleet-b's endpoint's name: refused, audited, its data unchanged.
    publisher.publish(heartbeat_message(&server, "fleet-b-00001", "hijacked", Some(&a.broker_user))).await.unwrap();
    wait_refused(&server, "does not own endpoint 'fleet-b-00001'").await;
    let endpoint = server.get_ok("/api/endpoints/fleet-b-00001").await;
    assert_ne!(endpoint["hostname"], "hijacked", "{endpoint}");

    // A message without user_id is refused while identities are required.
    publisher.publish(heartbeat_message(&server, "loose-00001", "loose", None)).await.unwrap();
    wait_refused(&server, "no AMQP user_id").await;
    assert_eq!(server.get("/api/endpoints/loose-00001").await.0, 404);
    let metrics = server.metrics().await;
    let refused_line = metrics
        .lines()
        .find(|l| l.starts_with("rampart_agent_messages_refused_for_identity_total "))
        .expect("the identity refusals are counted");
    assert!(!refused_line.ends_with(" 0"), "{refused_line}");
    publisher.close().await;

    // Revoking fleet-a closes its broker access at once.
    wait_for("fleet-a's connections to be listed", || async {
        (admin.connections_of(&a.broker_user).await.ok()?.len() >= 2).then_some(())
    })
    .await;
    let (status, revoked) = server.post(&format!("/api/agents/{}/revoke", a.agent_id), json!({})).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["state"], "revoked");
    assert_eq!(revoked["endpoints"], 0, "its endpoints are released");
    let probe = attacker.clone();
    wait_for("the attacker's connection to be closed", || {
        let probe = probe.clone();
        async move { tokio::time::timeout(Duration::from_secs(2), probe.channel()).await.ok()?.err() }
    })
    .await;
    let again = Broker::connect(Secret::new(url_of(&broker, &a)), "rt attacker after revocation").await;
    assert!(again.is_err(), "a revoked identity cannot log in again");
    assert!(admin.user(&a.broker_user).await.is_err(), "the broker user is gone");
    wait_for("fleet-a's queue to be deleted", || async {
        broker.queues().await.iter().all(|q| q.0 != a.queue).then_some(())
    })
    .await;

    // Enrolments and revocations are in the activity log.
    let activity = server.get_ok("/api/activity").await;
    let text = activity.to_string();
    assert!(text.contains("agent.enrol") && text.contains(&format!("agent:{}", a.agent_id)), "{text}");
    assert!(text.contains("agent.revoke"), "{text}");

    agent_a.stop().await;
    agent_b.stop().await;
    server.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enrolment_refuses_a_wrong_certificate_a_used_or_expired_token_and_more_than_allowed() {
    let _turn = take_turn().await;
    let broker = PrivateBroker::start_with_management().await;
    let server = site(&broker).await;

    // The agent refuses any certificate but the one the token names; the
    // token stays unused.
    let issued = token(&server, 2, 600).await;
    let pasted = issued["token"].as_str().unwrap();
    let (secret, _) = pasted.split_once('.').expect("a TLS site's token carries its fingerprint");
    let other = rampart_shared::tls::Fingerprint::of(b"another server");
    let error = enrol(&server, &format!("{secret}.{other}"), "fleet-x", 1).await.unwrap_err().to_string();
    assert!(error.contains("Refused to enrol") && error.contains(&other.to_string()), "{error}");

    // More endpoints than the token allows: refused, token still usable.
    let error = enrol(&server, pasted, "fleet-x", 3).await.unwrap_err().to_string();
    assert!(error.contains("allows 2 endpoint(s); the request names 3"), "{error}");
    let tokens = server.get_ok("/api/agents/enrolment-tokens").await;
    assert_eq!(tokens[0]["state"], "unused", "{tokens}");

    // Used once; a second use is refused.
    let fleet_x = enrol(&server, pasted, "fleet-x", 2).await.expect("the token works once");
    let error = enrol(&server, pasted, "fleet-y", 1).await.unwrap_err().to_string();
    assert!(error.contains("already used"), "{error}");

    // An endpoint another identity owns cannot be enrolled again.
    let second = token(&server, 1, 600).await;
    let error = enrol(&server, second["token"].as_str().unwrap(), "fleet-x", 1).await.unwrap_err().to_string();
    assert!(error.contains("already owned by agent"), "{error}");

    // An expired token is refused.
    let short = token(&server, 1, 1).await;
    let id = short["id"].as_str().unwrap().to_owned();
    wait_for("the short token to expire", || async {
        let tokens = server.get_ok("/api/agents/enrolment-tokens").await;
        tokens.as_array()?.iter().any(|t| t["id"] == id.as_str() && t["state"] == "expired").then_some(())
    })
    .await;
    let error = enrol(&server, short["token"].as_str().unwrap(), "fleet-z", 1).await.unwrap_err().to_string();
    assert!(error.contains("expired"), "{error}");

    // A restarted site still knows who owns what: fleet-x's heartbeat is taken.
    let server = TestServer::spawn(server.halt().await).await;
    let publisher = Publisher::new(Arc::new(Broker::new(Secret::new(url_of(&broker, &fleet_x)), "rt fleet-x")));
    let beat = heartbeat_message(&server, "fleet-x-00001", "after-restart", Some(&fleet_x.broker_user));
    publisher.publish(beat).await.unwrap();
    wait_for("fleet-x's heartbeat after the restart", || async {
        (server.get("/api/endpoints/fleet-x-00001").await.0 == 200).then_some(())
    })
    .await;
    publisher.close().await;

    server.stop(&[]).await;
}

#[tokio::test]
async fn a_master_has_no_agent_enrolment() {
    let server = TestServer::spawn(ServerOptions::master()).await;
    let (status, body) = server.post("/api/agents/enrolment-tokens", json!({"endpoints": 1})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Agent enrolment is not available on a master"));
    server.stop(&[]).await;
}
