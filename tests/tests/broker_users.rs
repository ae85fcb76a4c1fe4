//! Every process its own broker user, end to end on a private RabbitMQ node
//! with the management plugin: a site server, its agent process and a
//! report service each connect as a user made through the management
//! client with the grants of `rampart_shared::broker_admin::grants`;
//! traffic flows, and the agent's user is refused, on the broker itself,
//! what another site's or another process's traffic would need.

use lapin::{
    options::{BasicGetOptions, ExchangeDeleteOptions, QueueBindOptions},
    types::FieldTable,
};
use rampart_agent::settings::AgentIdentity;
use rampart_shared::{
    amqp::{close_channel, Broker},
    broker_admin::grants::{provision, url_with_user, BrokerGrant},
    topology::{declare_queue, NameSegment, Topology},
    Secret,
};
use rampart_tests::{
    faults::{broker::PrivateBroker, take_turn},
    namespace,
    refusals::{publish, refused},
    report::TestReport,
    ServerOptions, TestAgent, TestServer,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_process_runs_as_its_own_broker_user() {
    let _turn = take_turn().await;
    let broker = PrivateBroker::start_with_management().await;
    let admin = broker.management();
    let ns = namespace();
    let topology = Topology::new(&NameSegment::parse(&ns).unwrap());
    let own_url = |grant: BrokerGrant| {
        let admin = admin.clone();
        let url = broker.url();
        async move {
            let user = provision(&admin, "/", &grant).await.expect("provision");
            let listed = admin.user(&user.name).await.expect("the user exists");
            assert!(listed.tags.is_empty(), "no Rampart broker user has a tag: {:?}", listed.tags);
            url_with_user(&url, &user).unwrap()
        }
    };

    // The site server, with its own user.
    let server_url = own_url(BrokerGrant::server(&topology, "site-a")).await;
    assert!(!server_url.contains("guest"));
    let server =
        TestServer::spawn(ServerOptions { amqp_url: server_url, namespace: ns.clone(), ..ServerOptions::standalone() })
            .await;

    // Its agent process, with its own: its queue is declared by the site
    // (an agent's user may not; `agent_identities.rs` enrols for real, here
    // the test stands in for the site), endpoints enrol, so messages reach it.
    let grant = BrokerGrant::agent(&topology, "site-a", "a1");
    let agent_user = grant.user.clone();
    let agent_url = own_url(grant).await;
    let agent_queue = topology.agent_queue("site-a", "a1");
    let channel = server.state.broker.channel().await.unwrap();
    let bindings = [Topology::endpoints_binding("site-a")];
    declare_queue(&channel, &topology, &agent_queue, &topology.agents_exchange(), &bindings).await.unwrap();
    let _ = close_channel(&channel, "declared").await;
    let agent = TestAgent::spawn(&server, 3, |s| {
        s.amqp_url = Secret::new(agent_url.clone());
        s.name = NameSegment::parse("a1").unwrap();
        s.identity = Some(AgentIdentity { agent_id: "a1".into(), broker_user: agent_user, queue: agent_queue });
    });
    server.wait_for_endpoints(3).await;

    // A report service of the namespace, with its own: it declares and reads its queue.
    let report_url = own_url(BrokerGrant::report_service(&topology)).await;
    let report = TestReport::spawn_at(&ns, &report_url).await;

    // What the agent's user may not do, tried with a client of the test's own.
    let as_agent = Broker::connect(Secret::new(agent_url.clone()), "rt attacker with an agent's user").await.unwrap();
    let site = topology.site_exchange();
    let key = Topology::site_key("site-a", "heartbeat");
    let channel = as_agent.channel().await.unwrap();
    publish(&channel, &site, &key).await.expect("its own site's keys are allowed");
    let _ = close_channel(&channel, "done").await;
    let other_key = Topology::site_key("site-b", "heartbeat");
    refused(&as_agent, "publishing to another site's key", |c| async move { publish(&c, &site, &other_key).await })
        .await;
    let agents = topology.agents_exchange();
    let command = Topology::endpoint_key("site-a", "site-a-00001");
    refused(&as_agent, "publishing an endpoint command", |c| async move { publish(&c, &agents, &command).await }).await;
    let inbox = topology.site_inbox("site-a");
    refused(&as_agent, "reading the site's inbox", |c| async move {
        c.basic_get(inbox.as_str().into(), BasicGetOptions::default()).await
    })
    .await;
    let other_agent = topology.agent_queue("site-a", "a2");
    refused(&as_agent, "reading another agent's queue", |c| async move {
        c.basic_get(other_agent.as_str().into(), BasicGetOptions::default()).await
    })
    .await;
    let (own_queue, agents) = (topology.agent_queue("site-a", "a1"), topology.agents_exchange());
    refused(&as_agent, "binding its queue to another site's commands", |c| async move {
        let key = Topology::endpoints_binding("site-b");
        c.queue_bind(
            own_queue.as_str().into(),
            agents.as_str().into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
    })
    .await;
    let site = topology.site_exchange();
    refused(&as_agent, "deleting the site exchange", |c| async move {
        c.exchange_delete(site.as_str().into(), ExchangeDeleteOptions::default()).await
    })
    .await;
    as_agent.close().await;

    // Nor may the report service's user read the site's traffic.
    let as_report = Broker::connect(Secret::new(report_url), "rt attacker with the report user").await.unwrap();
    let inbox = topology.site_inbox("site-a");
    refused(&as_report, "the report user reading the site inbox", |c| async move {
        c.basic_get(inbox.as_str().into(), BasicGetOptions::default()).await
    })
    .await;
    as_report.close().await;

    report.stop().await;
    let queue = agent.stop().await;
    server.stop(&[queue]).await;
}
