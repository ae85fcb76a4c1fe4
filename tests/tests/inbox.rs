//! The site inbox: malformed and forged agent messages are dead-lettered
//! with a reason while good ones keep being applied.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use lapin::{options::*, types::FieldTable, BasicProperties};
use rampart_shared::{
    amqp::{
        publisher::{Outgoing, Publisher},
        Broker,
    },
    envelope::{header_str, REASON_HEADER},
    messages::{kind, Heartbeat},
    topology::Topology,
    Envelope, Secret,
};
use rampart_tests::{wait_for, ServerOptions, TestServer, AMQP_URL};

fn heartbeat(id: &str) -> Heartbeat {
    Heartbeat {
        endpoint_id: id.into(),
        hostname: format!("host-{id}"),
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

#[tokio::test]
async fn malformed_messages_are_parked_with_a_reason_and_good_ones_still_apply() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let topo = server.topology();
    let site = server.options.instance.clone();
    let broker = std::sync::Arc::new(Broker::connect(Secret::new(AMQP_URL.into()), "test publisher").await.unwrap());
    let publisher = Publisher::new(broker.clone());
    let raw = |key: &str, payload: Vec<u8>, kind: &str| Outgoing {
        exchange: topo.site_exchange(),
        routing_key: Topology::site_key(&site, key),
        payload,
        properties: BasicProperties::default().with_type(kind.into()).with_delivery_mode(2),
    };

    let mut unknown_version =
        serde_json::to_value(Envelope::new(kind::HEARTBEAT, "ep-2", 1, &heartbeat("ep-2"))).unwrap();
    unknown_version["v"] = 9.into();
    let bad = vec![
        (raw(kind::HEARTBEAT, b"{this is not json".to_vec(), kind::HEARTBEAT), "not a valid envelope"),
        (raw(kind::HEARTBEAT, serde_json::to_vec(&unknown_version).unwrap(), kind::HEARTBEAT), "version 9"),
        (
            Outgoing::envelope(
                topo.site_exchange(),
                Topology::site_key(&site, "agent.reboot"),
                &Envelope::new("agent.reboot", "ep-3", 1, &heartbeat("ep-3")),
                None,
            ),
            "unknown message kind",
        ),
        (
            // ep-4 speaking for ep-5.
            Outgoing::envelope(
                topo.site_exchange(),
                Topology::site_key(&site, kind::HEARTBEAT),
                &Envelope::new(kind::HEARTBEAT, "ep-4", 1, &heartbeat("ep-5")),
                None,
            ),
            "not allowed",
        ),
        (
            Outgoing::envelope(
                topo.site_exchange(),
                Topology::site_key(&site, kind::HEARTBEAT),
                &Envelope::new(kind::HEARTBEAT, "ep-6", 1, &Heartbeat { ip: "999.1.1.1".into(), ..heartbeat("ep-6") }),
                None,
            ),
            "not an IP address",
        ),
    ];
    let reasons: Vec<&str> = bad.iter().map(|(_, r)| *r).collect();
    for (message, _) in bad {
        publisher.publish(message).await.unwrap();
    }
    let good = Envelope::new(kind::HEARTBEAT, "ep-ok", 1, &heartbeat("ep-ok"));
    publisher
        .publish(Outgoing::envelope(topo.site_exchange(), Topology::site_key(&site, kind::HEARTBEAT), &good, None))
        .await
        .unwrap();

    // The good message after the bad ones is applied: the consumer kept going.
    wait_for("the good heartbeat to be applied", || async {
        let (status, _) = server.get("/api/endpoints/ep-ok").await;
        status.is_success().then_some(())
    })
    .await;
    let (_, list) = server.get("/api/endpoints").await;
    assert_eq!(list["total"], 1, "only the good endpoint exists: {list}");

    // Every bad one is parked with its reason.
    let channel = broker.channel().await.unwrap();
    let parking = Topology::parking_queue(&topo.site_inbox(&site));
    let mut consumer = channel
        .basic_consume(parking.as_str().into(), "test".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut parked = Vec::new();
    while parked.len() < reasons.len() {
        let delivery = tokio::time::timeout(Duration::from_secs(20), consumer.next())
            .await
            .expect("parked message arrives")
            .unwrap()
            .unwrap();
        parked.push(header_str(&delivery.properties, REASON_HEADER).unwrap_or_default().to_owned());
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    for reason in reasons {
        assert!(parked.iter().any(|p| p.contains(reason)), "no parked message says '{reason}': {parked:?}");
    }
    let status = server.get_ok("/api/status").await;
    assert_eq!(status["messages"]["dead_lettered"], 5, "{status}");
    broker.close().await;
    server.stop(&[]).await;
}

#[tokio::test]
async fn an_inbox_deleted_under_a_running_server_comes_back() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let inbox = server.topology().site_inbox(&server.options.instance);
    assert!(rampart_tests::queue_exists(&inbox).await);
    rampart_tests::delete_queues(std::slice::from_ref(&inbox)).await;
    rampart_tests::wait_for("the consumer to declare its queue again", || async {
        rampart_tests::queue_exists(&inbox).await.then_some(())
    })
    .await;
    let agent = rampart_tests::TestAgent::spawn(&server, 20, |_| {});
    server.wait_for_endpoints(20).await;
    let queue = agent.stop().await;
    server.stop(&[queue]).await;
}
