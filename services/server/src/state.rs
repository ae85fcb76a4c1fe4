//! What every request handler and consumer of one server shares.

use std::sync::{atomic::AtomicBool, Arc};

use deadpool_postgres::Pool;
use rampart_shared::tls::Fingerprint;
use rampart_shared::{
    amqp::{
        consumer::{ConsumerMetrics, QueueSpec},
        Broker,
    },
    messages::EndpointCommand,
    site_key::SiteKey,
    topology::Topology,
};
use tokio::sync::watch;

use crate::{
    config::Settings,
    failpoints::Failpoints,
    hierarchy::{link_repairs::LinkRepairs, Keyring},
    outbox::{Command, Signer},
    role::Role,
    wakes::Wakes,
};

/// This server's identity on the broker.
#[derive(Clone, Debug)]
pub struct Site {
    /// Instance id: the `<Name>` of server.xml, used in routing keys.
    pub instance: String,
    pub topology: Topology,
    /// Signs every command to this site's endpoints (`crate::site_key`).
    pub command_key: Arc<SiteKey>,
}

/// A queue this server owns and consumes: its name and how it is declared
/// (at start, and again by its consumer before each consume).
pub struct OwnedQueue {
    pub name: String,
    pub spec: QueueSpec,
}

impl Site {
    fn owned(&self, name: String, exchange: String, binding: String) -> OwnedQueue {
        OwnedQueue { name, spec: QueueSpec { topology: self.topology.clone(), exchange, bindings: vec![binding] } }
    }

    /// Where a stand-alone or slave receives its agents' messages.
    pub fn inbox_queue(&self) -> OwnedQueue {
        let t = &self.topology;
        self.owned(t.site_inbox(&self.instance), t.site_exchange(), Topology::site_binding(&self.instance))
    }

    /// Where a master receives its slaves' heartbeats and receipts.
    pub fn master_status_queue(&self) -> OwnedQueue {
        let t = &self.topology;
        self.owned(t.master_status_queue(), t.status_exchange(), Topology::STATUS_BINDING.to_owned())
    }

    /// Where a master receives its slaves' bulk replication batches.
    pub fn master_replication_queue(&self) -> OwnedQueue {
        let t = &self.topology;
        self.owned(t.master_replication_queue(), t.replication_exchange(), Topology::REPLICATION_BINDING.to_owned())
    }

    /// Where a master receives its slaves' caught-up replication batches.
    pub fn master_live_replication_queue(&self) -> OwnedQueue {
        let t = &self.topology;
        let binding = Topology::LIVE_REPLICATION_BINDING.to_owned();
        self.owned(t.master_live_replication_queue(), t.replication_exchange(), binding)
    }

    /// Where a master's report service receives the aggregated events (the
    /// master declares it, so events wait for a report service that is down).
    pub fn report_events_queue(&self) -> OwnedQueue {
        let t = &self.topology;
        self.owned(t.report_events_queue(), t.events_exchange(), Topology::REPORT_BINDING.to_owned())
    }

    /// A command for one endpoint (or discovered computer), ready for the
    /// outbox, sealed with the site's command key.
    pub fn endpoint_command(&self, endpoint_id: &str, command: &EndpointCommand) -> Command {
        Command {
            exchange: self.topology.agents_exchange(),
            routing_key: Topology::endpoint_key(&self.instance, endpoint_id),
            envelope: command.to_envelope(&self.instance, 0),
            signer: Some(Signer::Site(self.command_key.clone())),
        }
    }
}

pub struct AppState {
    pub pool: Pool,
    /// The broker connection (topology changes: slave queues at registration).
    pub broker: Arc<Broker>,
    pub settings: Arc<Settings>,
    pub site: Site,
    /// Runtime role; a stand-alone turns slave by registering.
    role: watch::Sender<Role>,
    /// Keys of the hierarchy: the master's slaves, or a slave's master link.
    pub keyring: Keyring,
    /// Wake-ups of the background tasks after a commit.
    pub wakes: Wakes,
    /// Counters of the agent inbox consumer.
    pub inbox_metrics: Arc<ConsumerMetrics>,
    /// Which agent identity owns which endpoint (checked on every inbox message).
    pub agents: Arc<crate::agents::Owners>,
    /// Counters of the hierarchy consumers (commands on a slave, status on a master).
    pub hierarchy_metrics: Arc<ConsumerMetrics>,
    /// Counters of the master's replication consumers: the bulk lane's and
    /// the live lane's.
    pub replication_metrics: Arc<ConsumerMetrics>,
    pub live_replication_metrics: Arc<ConsumerMetrics>,
    /// Faults a test can arm; none in normal operation (shared with the outbox relay).
    pub failpoints: Arc<Failpoints>,
    /// SHA-256 of the API's TLS certificate; `None` when it serves plain HTTP.
    pub api_fingerprint: Option<Fingerprint>,
    /// Repairs of a slave's links to its master's broker (`/metrics`).
    pub link_repairs: Arc<LinkRepairs>,
    /// Set when this server left its master with the status link kept to
    /// deliver the departure (`hierarchy::broker_links::retire`).
    pub departure_pending: Arc<AtomicBool>,
    /// Set while this slave's replicator holds a bulk batch back because
    /// the master's bulk queue is full (`/metrics`).
    pub bulk_batch_held: AtomicBool,
    /// The heartbeats' last count of the rows this slave's master has not
    /// acknowledged.
    pub rows_behind: crate::replication::rows_behind::RowsBehind,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(
        pool: Pool,
        broker: Arc<Broker>,
        settings: Arc<Settings>,
        site: Site,
        role: Role,
        keyring: Keyring,
    ) -> Self {
        Self {
            pool,
            broker,
            settings,
            site,
            role: watch::Sender::new(role),
            keyring,
            hierarchy_metrics: Arc::new(ConsumerMetrics::default()),
            wakes: Wakes::default(),
            inbox_metrics: Arc::new(ConsumerMetrics::default()),
            agents: Arc::default(),
            replication_metrics: Arc::new(ConsumerMetrics::default()),
            live_replication_metrics: Arc::new(ConsumerMetrics::default()),
            failpoints: Arc::new(Failpoints::default()),
            api_fingerprint: None,
            link_repairs: Arc::default(),
            departure_pending: Arc::default(),
            bulk_batch_held: AtomicBool::new(false),
            rows_behind: Default::default(),
        }
    }

    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// Changes the runtime role (after the database says so).
    pub fn set_role(&self, role: Role) {
        self.role.send_replace(role);
    }

    /// Follows role changes (the slave-side services start and stop with them).
    pub fn watch_role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }
}
