//! Endpoint commands sealed by the site (issue 20, item 4), end to end on
//! the real broker: an attacker with a broker client of its own publishes
//! `endpoint.policy` commands that switch real-time protection off on an
//! endpoint of a running agent — unsigned, signed with another key, a replay
//! of a real command captured from the broker, and one sealed by the site
//! but expired. The agent applies none of them (its heartbeats keep
//! reporting the policy the site sent), counts each by reason and parks each
//! with the reason; what the site itself sends is applied.

use std::{sync::atomic::Ordering, time::Duration};

use chrono::{DateTime, Utc};
use lapin::{
    options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions},
    types::{FieldTable, ShortString},
    Channel,
};
use rampart_shared::{
    amqp::{publisher::Outgoing, Broker},
    messages::{EndpointCommand, EndpointPolicy, PolicySettings},
    site_key::{SiteKey, COMMAND_VALIDITY},
    topology::Topology,
    Secret,
};
use rampart_tests::{
    abuse::{assert_reasons, parked},
    wait_for, ServerOptions, TestAgent, TestServer, AMQP_URL,
};
use serde_json::{json, Value};
use uuid::Uuid;

const TARGET: &str = "sim1-00001";

/// A queue of the test's own that receives a copy of every command to `TARGET`.
async fn tap(channel: &Channel, site: &TestServer) -> String {
    let queue = format!("{}.tap", site.topology().namespace());
    let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    channel.queue_declare(ShortString::from(queue.clone()), options, FieldTable::default()).await.expect("tap");
    let key = Topology::endpoint_key(&site.options.instance, TARGET);
    channel
        .queue_bind(
            ShortString::from(queue.clone()),
            ShortString::from(site.topology().agents_exchange()),
            ShortString::from(key),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("binding the tap");
    queue
}

/// The copy of the site's `endpoint.policy` for `policy_id`, as it travelled.
async fn captured(channel: &Channel, tap: &str, policy_id: &str) -> Outgoing {
    wait_for("the site's policy command on the tap", || async {
        while let Some(got) = channel.basic_get(tap.into(), BasicGetOptions { no_ack: true }).await.expect("basic.get")
        {
            let d = got.delivery;
            if String::from_utf8_lossy(&d.data).contains(policy_id) {
                return Some(Outgoing {
                    exchange: d.exchange.to_string(),
                    routing_key: d.routing_key.to_string(),
                    payload: d.data,
                    properties: d.properties,
                });
            }
        }
        None
    })
    .await
}

async fn create_policy(site: &TestServer, name: &str, realtime_protection: bool) -> String {
    let (status, policy) = site
        .post("/api/policies", json!({"name": name, "settings": {"realtime_protection": realtime_protection}}))
        .await;
    assert_eq!(status, 201, "{policy}");
    let id = policy["id"].as_str().unwrap().to_owned();
    let (status, body) =
        site.post(&format!("/api/policies/{id}/assignments"), json!({"target": "endpoint", "id": TARGET})).await;
    assert_eq!(status, 200, "{body}");
    id
}

/// Waits until a heartbeat received after `since` shows `policy_id` applied.
async fn reported(site: &TestServer, policy_id: &str, since: DateTime<Utc>) -> Value {
    wait_for(&format!("a heartbeat of {TARGET} reporting policy {policy_id}"), || async {
        let endpoint = site.get_ok(&format!("/api/endpoints/{TARGET}")).await;
        let seen: DateTime<Utc> = endpoint["last_seen"].as_str()?.parse().ok()?;
        (seen > since && endpoint["applied_policy"]["id"] == policy_id).then_some(endpoint)
    })
    .await
}

/// What an attacker would send: protection off, under a policy of its own.
fn attack(instance: &str) -> rampart_shared::Envelope {
    EndpointCommand::Policy(EndpointPolicy {
        policy_id: Some(Uuid::new_v4()),
        version: 99,
        name: "Maintenance".into(),
        settings: PolicySettings { realtime_protection: false, ..PolicySettings::default() },
    })
    .to_envelope(instance, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_applies_only_what_its_site_sealed_once_and_in_time() {
    let site = TestServer::spawn(ServerOptions::standalone()).await;
    let broker = Broker::new(Secret::new(AMQP_URL.to_owned()), "rampart-tests attacker");
    let channel = broker.channel().await.expect("a broker channel");
    let tap = tap(&channel, &site).await;
    let agent = TestAgent::spawn(&site, 2, |s| s.heartbeat_interval = Duration::from_secs(1));
    site.wait_for_endpoints(2).await;

    // The site's own commands are applied: protection off, then on again.
    let off = create_policy(&site, "No real-time", false).await;
    let endpoint = reported(&site, &off, Utc::now()).await;
    assert_eq!(endpoint["realtime_protection"], false, "{endpoint}");
    let replay = captured(&channel, &tap, &off).await;
    let on = create_policy(&site, "Protected", true).await;
    let endpoint = reported(&site, &on, Utc::now()).await;
    assert_eq!(endpoint["realtime_protection"], true, "{endpoint}");

    // The attacks, on the same exchange and routing key as the site's.
    let (exchange, key) = (site.topology().agents_exchange(), Topology::endpoint_key(&site.options.instance, TARGET));
    let instance = site.options.instance.as_str();
    let unsigned = Outgoing::envelope(exchange.clone(), key.clone(), &attack(instance), None);
    let other_key = SiteKey::generate();
    let in_time = Utc::now() + COMMAND_VALIDITY;
    let forged = Outgoing::sealed_command(exchange.clone(), key.clone(), &attack(instance), &other_key, in_time);
    let site_key = &site.state.site.command_key;
    let gone = Utc::now() - chrono::Duration::minutes(1);
    let expired = Outgoing::sealed_command(exchange, key, &attack(instance), site_key, gone);
    rampart_tests::inject(vec![unsigned, forged, replay, expired]).await;

    let refusals = wait_for("the agent to refuse the four attacks", || async {
        let counted = agent.refusals.snapshot();
        (counted == (1, 1, 1, 1)).then_some(counted)
    })
    .await;
    assert_eq!(refusals, (1, 1, 1, 1), "unsigned, bad signature, replayed, stale");
    let parked = parked(&agent.queue, 4).await;
    assert_reasons(&parked, &["not signed by the site", "does not verify with the site key", "(replayed)", "(stale)"]);

    // None was applied: the next heartbeat still reports the site's policy.
    let endpoint = reported(&site, &on, Utc::now()).await;
    assert_eq!(endpoint["realtime_protection"], true, "{endpoint}");
    assert_eq!(agent.refusals.bad_signature.load(Ordering::Relaxed), 1);

    // And the site's commands still go through after the attacks.
    let off_again = create_policy(&site, "Off again", false).await;
    let endpoint = reported(&site, &off_again, Utc::now()).await;
    assert_eq!(endpoint["realtime_protection"], false, "{endpoint}");

    broker.close().await;
    let queue = agent.stop().await;
    site.stop(&[queue]).await;
}
