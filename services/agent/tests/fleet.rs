//! Runs a fleet against the real RabbitMQ, in a namespace of its own, with
//! the test playing the site server: it binds the site inbox, reads what
//! the agents send and publishes commands to them. Every wait is bounded.
//!
//! Needs RabbitMQ at `amqp://guest:guest@127.0.0.1:5672/%2f`
//! (`rabbitmq-server -detached`).

use std::{sync::Arc, time::Duration};

use anyhow::{bail, ensure, Context};
use futures_util::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions},
    types::FieldTable,
    Channel, Consumer,
};
use rampart_agent::AgentSettings;
use rampart_shared::{
    amqp::{
        bounded,
        publisher::{Outgoing, Publisher},
        Broker,
    },
    messages::{
        AgentMessage, DeployAgent, EndpointCommand, EndpointPolicy, EndpointTask, PolicySettings, TaskKind, TaskState,
    },
    site_key::{SiteKey, COMMAND_VALIDITY},
    topology::{self, NameSegment, Topology},
    Envelope, Secret, Shutdown,
};
use tokio::time::{timeout, Instant};
use uuid::Uuid;

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(20);

/// The test's stand-in for a site server.
struct TestSite {
    broker: Arc<Broker>,
    channel: Channel,
    /// Started by the first read, so a test that only counts messages
    /// leaves them all ready in the queue.
    consumer: Option<Consumer>,
    publisher: Publisher,
    topology: Topology,
    site: NameSegment,
    /// Messages read but not yet asked for.
    backlog: Vec<AgentMessage>,
    seq: u64,
    /// Seals the commands, as the site's command key does.
    command_key: SiteKey,
}

impl TestSite {
    /// Declares a fresh namespace and the site inbox.
    async fn start(site: &str) -> anyhow::Result<Self> {
        let site = Self::start_without_inbox(site).await?;
        site.bind_inbox().await?;
        Ok(site)
    }

    /// Declares a fresh namespace only: the site server is not up yet.
    async fn start_without_inbox(site: &str) -> anyhow::Result<Self> {
        let namespace = format!("t_agent_{}", &Uuid::new_v4().simple().to_string()[..8]);
        let topology = Topology::new(&NameSegment::parse(&namespace).unwrap());
        let site = NameSegment::parse(site).unwrap();
        let broker = Arc::new(
            timeout(WAIT, Broker::connect(Secret::new(AMQP_URL.to_owned()), "agent-test"))
                .await
                .context("connecting to RabbitMQ timed out")?
                .context("RabbitMQ is not running (start it with `rabbitmq-server -detached`)")?,
        );
        let channel = broker.channel().await?;
        bounded("exchange.declare", topology::declare_exchanges(&channel, &topology)).await?;
        Ok(Self {
            publisher: Publisher::new(broker.clone()),
            broker,
            channel,
            consumer: None,
            topology,
            site,
            backlog: Vec::new(),
            seq: 0,
            command_key: SiteKey::generate(),
        })
    }

    /// Declares the site inbox, bound to every agent message of the site.
    async fn bind_inbox(&self) -> anyhow::Result<()> {
        let inbox = self.topology.site_inbox(self.site.as_str());
        let bindings = [Topology::site_binding(self.site.as_str())];
        let exchange = self.topology.site_exchange();
        let declare = topology::declare_queue(&self.channel, &self.topology, &inbox, &exchange, &bindings);
        timeout(WAIT, declare).await.context("declaring the inbox timed out")??;
        Ok(())
    }

    fn agent_settings(&self, endpoints: u32) -> AgentSettings {
        let mut settings = AgentSettings::new(
            AMQP_URL,
            NameSegment::parse(self.topology.namespace()).unwrap(),
            self.site.clone(),
            endpoints,
        );
        settings.site_key = Some(self.command_key.public());
        settings
    }

    /// Reads the next message from the inbox, checks how it was routed and
    /// that it speaks for its sender, and acks it.
    async fn next_message(&mut self, deadline: Instant) -> anyhow::Result<AgentMessage> {
        if self.consumer.is_none() {
            let inbox = self.topology.site_inbox(self.site.as_str());
            let qos = self.channel.basic_qos(500, BasicQosOptions::default());
            bounded("basic.qos", qos).await?;
            let consume = self.channel.basic_consume(
                inbox.into(),
                "agent-test".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            );
            let consumer = bounded("basic.consume", consume).await?;
            self.consumer = Some(consumer);
        }
        let consumer = self.consumer.as_mut().expect("started above");
        let delivery = tokio::time::timeout_at(deadline, consumer.next())
            .await
            .context("no message from the agents in time")?
            .context("the inbox consumer was cancelled")??;
        delivery.acker.ack(BasicAckOptions::default()).await?;
        let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
        let envelope = Envelope::decode(&delivery.data, kind)?;
        let message = AgentMessage::from_envelope(&envelope)?;
        ensure!(
            delivery.routing_key.as_str() == Topology::site_key(self.site.as_str(), message.kind()),
            "{} arrived with routing key {}",
            message.kind(),
            delivery.routing_key
        );
        Ok(message)
    }

    /// The first message (read before or now) that `pick` accepts.
    async fn wait_for<T>(&mut self, what: &str, mut pick: impl FnMut(&AgentMessage) -> Option<T>) -> anyhow::Result<T> {
        if let Some(i) = self.backlog.iter().position(|m| pick(m).is_some()) {
            return Ok(pick(&self.backlog.remove(i)).expect("matched above"));
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let message = self.next_message(deadline).await.with_context(|| format!("waiting for {what}"))?;
            match pick(&message) {
                Some(found) => return Ok(found),
                None => self.backlog.push(message),
            }
        }
    }

    /// Publishes a command to one endpoint, as the site server does.
    async fn send(&mut self, endpoint_id: &str, command: EndpointCommand) -> anyhow::Result<()> {
        self.seq += 1;
        let envelope = command.to_envelope(self.site.as_str(), self.seq);
        let key = Topology::endpoint_key(self.site.as_str(), endpoint_id);
        let expires_at = chrono::Utc::now() + COMMAND_VALIDITY;
        let outgoing =
            Outgoing::sealed_command(self.topology.agents_exchange(), key, &envelope, &self.command_key, expires_at);
        self.publisher.publish(outgoing).await.context("publishing a command")
    }

    /// Deletes everything the test and the agent declared.
    async fn teardown(self, agent_queues: &[String]) {
        // A fresh channel: the test's own may have been closed by a failure.
        let channel = match timeout(WAIT, self.broker.channel()).await {
            Ok(Ok(channel)) => channel,
            other => {
                eprintln!("Cannot clean up namespace {}: {other:?}", self.topology.namespace());
                return;
            }
        };
        let inbox = self.topology.site_inbox(self.site.as_str());
        for queue in agent_queues.iter().chain([&inbox]) {
            let deleted = timeout(WAIT, topology::delete_queue(&channel, queue)).await;
            if !matches!(deleted, Ok(Ok(()))) {
                eprintln!("Cannot delete queue {queue}: {deleted:?}");
            }
        }
        let deleted = timeout(WAIT, topology::delete_exchanges(&channel, &self.topology)).await;
        if !matches!(deleted, Ok(Ok(()))) {
            eprintln!("Cannot delete the exchanges of {}: {deleted:?}", self.topology.namespace());
        }
        self.broker.close().await;
    }
}

/// A fleet started in-process by a test.
struct RunningFleet {
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    queue: String,
}

impl RunningFleet {
    fn start(site: &TestSite, settings: AgentSettings) -> Self {
        let queue = site.topology.agent_queue(site.site.as_str(), settings.name.as_str());
        let shutdown = Shutdown::new();
        let task = tokio::spawn(rampart_agent::run(settings, shutdown.clone()));
        Self { shutdown, task, queue }
    }

    /// Stops the fleet and cleans the broker up whatever the scenario's
    /// `outcome`; then reports the first failure.
    async fn stop(self, site: TestSite, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
        self.shutdown.trigger();
        let stopped = timeout(WAIT, self.task).await;
        site.teardown(&[self.queue]).await;
        outcome?;
        match stopped {
            Ok(Ok(result)) => result.context("the fleet failed"),
            Ok(Err(panic)) => bail!("the fleet panicked: {panic}"),
            Err(_) => bail!("the fleet did not stop within {WAIT:?} of shutdown"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_reports_runs_tasks_applies_policies_and_deploys() -> anyhow::Result<()> {
    let mut site = TestSite::start("paris").await?;
    let mut settings = site.agent_settings(200);
    settings.heartbeat_interval = Duration::from_secs(3600);
    settings.scan_duration = Duration::from_millis(500);
    settings.detections_per_hour = 0.0;
    settings.unmanaged = 3;
    let fleet = RunningFleet::start(&site, settings);
    let outcome = reports_and_obeys(&mut site).await;
    fleet.stop(site, outcome).await
}

async fn reports_and_obeys(site: &mut TestSite) -> anyhow::Result<()> {
    // The whole fleet reports at once.
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 200 {
        let heartbeat = site
            .wait_for("200 distinct heartbeats", |m| match m {
                AgentMessage::Heartbeat(h) => Some(h.clone()),
                _ => None,
            })
            .await?;
        ensure!(heartbeat.agent_version == "7.2.0", "{heartbeat:?}");
        seen.insert(heartbeat.endpoint_id);
    }
    ensure!(seen.contains("sim1-00001") && seen.contains("sim1-00200"), "{seen:?}");

    let discovery = site
        .wait_for("the discovery", |m| match m {
            AgentMessage::Discovery(d) => Some(d.clone()),
            _ => None,
        })
        .await?;
    ensure!(discovery.reported_by == "sim1-00001" && discovery.computers.len() == 3, "{discovery:?}");

    // A quick scan reports running, then succeeded.
    let task_id = Uuid::new_v4();
    let scan = EndpointCommand::Task(EndpointTask { task_id, kind: TaskKind::QuickScan });
    site.send("sim1-00007", scan).await?;
    for state in [TaskState::Running, TaskState::Succeeded] {
        let result = site
            .wait_for(&format!("the scan {}", state.as_str()), |m| match m {
                AgentMessage::TaskResult(r) if r.task_id == task_id && r.state == state => Some(r.clone()),
                _ => None,
            })
            .await?;
        ensure!(result.endpoint_id == "sim1-00007", "{result:?}");
        ensure!(state == TaskState::Running || result.scanned_files >= 5_000, "{result:?}");
    }

    // A policy turning real-time protection off shows in the next heartbeat.
    let policy_id = Uuid::new_v4();
    let policy = EndpointCommand::Policy(EndpointPolicy {
        policy_id: Some(policy_id),
        version: 3,
        name: "Servers".into(),
        settings: PolicySettings { realtime_protection: false, ..PolicySettings::default() },
    });
    site.send("sim1-00009", policy).await?;
    let heartbeat = site
        .wait_for("the heartbeat with the policy", |m| match m {
            AgentMessage::Heartbeat(h) if h.policy_id == Some(policy_id) => Some(h.clone()),
            _ => None,
        })
        .await?;
    ensure!(heartbeat.endpoint_id == "sim1-00009", "{heartbeat:?}");
    ensure!(!heartbeat.realtime_protection && heartbeat.policy_version == Some(3), "{heartbeat:?}");

    // Deploying on a discovered computer makes it an endpoint.
    let deployment_id = Uuid::new_v4();
    let deploy = EndpointCommand::Deploy(DeployAgent { deployment_id, computer_id: "sim1-u0002".into() });
    site.send("sim1-u0002", deploy).await?;
    let result = site
        .wait_for("the deploy result", |m| match m {
            AgentMessage::DeployResult(r) if r.deployment_id == deployment_id => Some(r.clone()),
            _ => None,
        })
        .await?;
    ensure!(result.succeeded && result.computer_id == "sim1-u0002", "{result:?}");
    let heartbeat = site
        .wait_for("the new endpoint's heartbeat", |m| match m {
            AgentMessage::Heartbeat(h) if h.endpoint_id == "sim1-u0002" => Some(h.clone()),
            _ => None,
        })
        .await?;
    ensure!(heartbeat.hostname == "lab-0002", "{heartbeat:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_started_before_its_server_catches_up() -> anyhow::Result<()> {
    let mut site = TestSite::start_without_inbox("lyon").await?;
    let mut settings = site.agent_settings(50);
    settings.heartbeat_interval = Duration::from_secs(2);
    settings.detections_per_hour = 0.0;
    settings.unmanaged = 2;
    let fleet = RunningFleet::start(&site, settings);
    let outcome = catches_up(&mut site).await;
    fleet.stop(site, outcome).await
}

async fn catches_up(site: &mut TestSite) -> anyhow::Result<()> {
    // Let the first heartbeats and the discovery go nowhere.
    tokio::time::sleep(Duration::from_secs(1)).await;
    site.bind_inbox().await?;
    // Heartbeats come again with the next round...
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 50 {
        let id = site
            .wait_for("every endpoint's heartbeat", |m| match m {
                AgentMessage::Heartbeat(h) => Some(h.endpoint_id.clone()),
                _ => None,
            })
            .await?;
        seen.insert(id);
    }
    // ...and the unroutable discovery is retried (every 10 s).
    let discovery = site
        .wait_for("the retried discovery", |m| match m {
            AgentMessage::Discovery(d) => Some(d.computers.len()),
            _ => None,
        })
        .await?;
    ensure!(discovery == 2, "{discovery} computers discovered");
    Ok(())
}

/// The measurement behind the "10,000 endpoints on one process" claim:
/// time from start until the site inbox holds every endpoint's first
/// heartbeat. Run with `cargo test -p rampart-agent --test fleet -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check; takes a few seconds"]
async fn ten_thousand_endpoints_report_within_seconds() -> anyhow::Result<()> {
    const ENDPOINTS: u32 = 10_000;
    let site = TestSite::start("bench").await?;
    let settings = AgentSettings { unmanaged: 0, ..site.agent_settings(ENDPOINTS) };
    let fleet = RunningFleet::start(&site, settings);
    let outcome = count_first_heartbeats(&site, ENDPOINTS).await;
    fleet.stop(site, outcome).await
}

async fn count_first_heartbeats(site: &TestSite, endpoints: u32) -> anyhow::Result<()> {
    let inbox = site.topology.site_inbox(site.site.as_str());
    let started = Instant::now();
    loop {
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        let declare = site.channel.queue_declare(inbox.as_str().into(), passive, FieldTable::default());
        let queue = bounded("queue.declare", declare).await?;
        if queue.message_count() >= endpoints {
            println!("{endpoints} first heartbeats in the site inbox after {:?}", started.elapsed());
            return Ok(());
        }
        ensure!(started.elapsed() < Duration::from_secs(60), "only {} heartbeats after 60 s", queue.message_count());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
