//! What every request handler and consumer of one server shares.

use std::sync::{Arc, RwLock};

use deadpool_postgres::Pool;
use rampart_shared::{
    amqp::consumer::ConsumerMetrics,
    messages::EndpointCommand,
    topology::Topology,
};
use tokio::sync::Notify;

use crate::{config::Settings, outbox::Command, role::Role};

/// This server's identity on the broker.
#[derive(Clone, Debug)]
pub struct Site {
    /// Instance id: the `<Name>` of server.xml, used in routing keys.
    pub instance: String,
    pub topology: Topology,
}

impl Site {
    /// A command for one endpoint (or discovered computer), ready for the outbox.
    pub fn endpoint_command(&self, endpoint_id: &str, command: &EndpointCommand) -> Command {
        Command {
            exchange: self.topology.agents_exchange(),
            routing_key: Topology::endpoint_key(&self.instance, endpoint_id),
            envelope: command.to_envelope(&self.instance, 0),
        }
    }
}

pub struct AppState {
    pub pool: Pool,
    pub settings: Arc<Settings>,
    pub site: Site,
    /// Runtime role; a stand-alone turns slave by registering.
    role: RwLock<Role>,
    /// Wakes the outbox relay after a commit that enqueued commands.
    pub outbox_wake: Arc<Notify>,
    /// Counters of the agent inbox consumer.
    pub inbox_metrics: Arc<ConsumerMetrics>,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(pool: Pool, settings: Arc<Settings>, site: Site, role: Role) -> Self {
        Self {
            pool,
            settings,
            site,
            role: RwLock::new(role),
            outbox_wake: Arc::new(Notify::new()),
            inbox_metrics: Arc::new(ConsumerMetrics::default()),
        }
    }

    pub fn role(&self) -> Role {
        *self.role.read().expect("role lock is never poisoned")
    }

    pub fn set_role(&self, role: Role) {
        *self.role.write().expect("role lock is never poisoned") = role;
    }
}
