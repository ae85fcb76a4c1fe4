//! A small hierarchy of its own for the multi-site path: a master and its
//! slaves, real servers in this process, laid out one of two ways.
//!
//! * [`Layout::SharedBroker`]: every server on the machine's broker, as the
//!   rest of the benchmark runs (the reference).
//! * [`Layout::SiteBrokers`]: the master on a private RabbitMQ node of its
//!   own and each slave on another, linked by registration as an operator's
//!   sites are (`<Hierarchy><BrokerForSlaves>` on the master,
//!   `<SiteBroker>true</SiteBroker>` on each slave: the master makes the
//!   slave's link user on its broker, the slave opens the shovels from its
//!   own; `docs/multi-site.md`).
//!
//! The private nodes are the fault suite's (`rampart_tests::faults::broker`),
//! started with `+sbwt none` so that idle nodes do not busy-wait on the
//! cores the servers need. Everything is removed by [`Hierarchy::stop`]
//! (the nodes are killed when dropped).

use std::time::Duration;

use anyhow::Context;
use futures_util::{stream, StreamExt};
use rampart_shared::{amqp::Broker, Secret};
use rampart_tests::{faults::broker::PrivateBroker, ServerOptions, TestServer, AMQP_URL, TOKEN};
use serde::Serialize;
use tokio::time::Instant;

use crate::{
    broker_fanout,
    fleet::{Fleet, FleetConfig, SiteBroker},
    master::Api,
    plan::Plan,
    stats::Percentiles,
};

/// Private nodes started at once (each boot is a few seconds of a core).
const PARALLEL_NODES: usize = 4;

/// Where the master and the slaves find their brokers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    SharedBroker,
    SiteBrokers,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Self::SharedBroker => "one broker for the master and every slave",
            Self::SiteBrokers => "the master and each slave on a broker node of its own, linked by registration",
        }
    }
}

/// A running hierarchy.
pub struct Hierarchy {
    pub layout: Layout,
    pub master: TestServer,
    pub api: Api,
    pub fleet: Fleet,
    /// The private nodes, the master's first; none for a shared broker.
    brokers: Vec<PrivateBroker>,
    /// How long the private nodes took to start, all of them.
    pub brokers_started_in: Duration,
}

impl Hierarchy {
    /// Starts the brokers (for [`Layout::SiteBrokers`]), the master and
    /// `slaves` slaves in `namespace`, and registers the slaves; returns
    /// once each slave is registered (its links running, for site brokers).
    pub async fn start(layout: Layout, namespace: &str, slaves: usize, plan: &Plan) -> anyhow::Result<Self> {
        let started = Instant::now();
        let brokers: Vec<PrivateBroker> = match layout {
            Layout::SharedBroker => Vec::new(),
            Layout::SiteBrokers => {
                stream::iter(0..=slaves)
                    .map(|_| PrivateBroker::start_with_links())
                    .buffered(PARALLEL_NODES)
                    .collect()
                    .await
            }
        };
        let brokers_started_in = started.elapsed();
        if layout == Layout::SiteBrokers {
            tracing::info!(nodes = brokers.len(), seconds = brokers_started_in.as_secs_f64(), "Broker nodes started.");
        }
        let mut options = ServerOptions {
            namespace: namespace.to_owned(),
            database: format!("{namespace}_hq"),
            pool_size: plan.master_pool_size,
            ..ServerOptions::master()
        };
        if let Some(hq) = brokers.first() {
            options.amqp_url = hq.url();
            options.broker_xml = hq.management_xml();
            options.extra_xml =
                format!("<Hierarchy><BrokerForSlaves>amqp://127.0.0.1:{}/%2f</BrokerForSlaves></Hierarchy>", hq.port);
        }
        let master = TestServer::spawn(options).await;
        let api = Api::new(&master.base, TOKEN, master.http.clone());
        let site_brokers = brokers
            .iter()
            .skip(1)
            .map(|b| SiteBroker { amqp_url: b.url(), management_xml: b.management_xml() })
            .collect();
        let fleet = Fleet::start(&FleetConfig {
            namespace: namespace.to_owned(),
            site_brokers,
            slaves,
            pool_size: plan.slave_pool_size,
            interval: 3600,
            fast: 0,
            batch_size: plan.batch_size,
        })
        .await?;
        let hierarchy = Self { layout, master, api, fleet, brokers, brokers_started_in };
        crate::scenarios::fanout::prepare(&hierarchy.fleet).await?;
        hierarchy.fleet.register(&hierarchy.api).await.with_context(|| format!("registering ({layout:?})"))?;
        Ok(hierarchy)
    }

    /// The master's database.
    pub fn master_database_url(&self) -> String {
        self.master.options.database_url()
    }

    /// The broker's own fan-out to every slave with a commit per message
    /// (into the master's database) on this layout's brokers: on the
    /// machine's broker ([`crate::broker_fanout`]), or from the master's
    /// node through a shovel to each slave's ([`crate::site_floor`]).
    pub async fn floor(&self, rounds: usize, body: &[u8]) -> anyhow::Result<Percentiles> {
        let database_url = self.master_database_url();
        let namespace = &self.master.options.namespace;
        let slaves = self.fleet.slaves.len();
        match self.brokers.split_first() {
            Some((master, nodes)) => {
                let nodes: Vec<&PrivateBroker> = nodes.iter().collect();
                crate::site_floor::measure(master, &nodes, namespace, rounds, body, &database_url).await
            }
            None => {
                let broker = Broker::connect(Secret::new(AMQP_URL.to_owned()), "rampart-bench-floor").await?;
                let measured =
                    broker_fanout::measure(&broker, namespace, slaves, rounds, body, AMQP_URL, &database_url).await;
                broker.close().await;
                Ok(measured?.with_commit)
            }
        }
    }

    /// The private nodes' resident memory and CPU time so far (user +
    /// system, seconds), summed; zeros for a shared broker.
    pub fn brokers_usage(&self) -> BrokerUsage {
        let mut usage = BrokerUsage { nodes: self.brokers.len(), ..BrokerUsage::default() };
        for broker in &self.brokers {
            let pid = broker.pid();
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                usage.rss_bytes += crate::master::parse_kib(&status, "VmRSS:").unwrap_or(0);
            }
            usage.cpu_seconds += cpu_seconds(pid).unwrap_or(0.0);
        }
        usage
    }

    /// Stops the slaves and the master (removing their databases and
    /// queues), then the private nodes.
    pub async fn stop(self) {
        self.fleet.stop().await;
        self.master.stop(&[]).await;
        drop(self.brokers);
    }
}

/// What the private nodes use.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct BrokerUsage {
    pub nodes: usize,
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
}

/// User and system CPU time of a process so far, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is the 14th
    // field of the line, the 12th after the name.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// `getconf CLK_TCK`: 100 on Linux for every architecture the project runs on.
fn clock_ticks() -> f64 {
    100.0
}
