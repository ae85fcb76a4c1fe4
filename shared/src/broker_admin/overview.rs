//! What the broker is: its version and enabled plugins, its vhosts, and
//! what it uses (memory, file descriptors, queues).

use serde::Deserialize;

use super::{client::segment, ManagementClient, Result};

/// The broker as the management API describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overview {
    pub rabbitmq_version: String,
    pub management_version: String,
    /// The node answering, e.g. `rabbit@localhost`.
    pub node: String,
    /// Plugins running on that node (`rabbitmq_management`, ...).
    pub plugins: Vec<String>,
}

#[derive(Deserialize)]
struct OverviewBody {
    rabbitmq_version: String,
    #[serde(default)]
    management_version: String,
    node: String,
    #[serde(default)]
    object_totals: ObjectTotals,
}

#[derive(Default, Deserialize)]
struct ObjectTotals {
    #[serde(default)]
    queues: u64,
    #[serde(default)]
    connections: u64,
}

/// What the answering node uses, as the management API last sampled it
/// (its statistics are refreshed every few seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeUse {
    pub node: String,
    /// Bytes of memory the node uses.
    pub mem_used: u64,
    /// File descriptors open, and the most the node may open.
    pub fd_used: u64,
    pub fd_total: u64,
    /// Queues and client connections on the broker.
    pub queues: u64,
    pub connections: u64,
}

#[derive(Deserialize)]
struct NodeUseBody {
    #[serde(default)]
    mem_used: u64,
    #[serde(default)]
    fd_used: u64,
    #[serde(default)]
    fd_total: u64,
}

#[derive(Deserialize)]
struct NodeBody {
    /// Plugins enabled explicitly (empty on some nodes: see `applications`).
    #[serde(default)]
    enabled_plugins: Vec<String>,
    /// Every running Erlang application; plugins are the `rabbitmq_*` ones.
    #[serde(default)]
    applications: Vec<Application>,
}

#[derive(Deserialize)]
struct Application {
    name: String,
}

impl NodeBody {
    /// Enabled and running plugins, sorted, without the broker's own boot step.
    fn plugins(self) -> Vec<String> {
        let running = self.applications.into_iter().map(|a| a.name).filter(|n| n.starts_with("rabbitmq_"));
        let mut plugins: Vec<String> =
            self.enabled_plugins.into_iter().chain(running).filter(|n| n != "rabbitmq_prelaunch").collect();
        plugins.sort();
        plugins.dedup();
        plugins
    }
}

impl ManagementClient {
    /// Version, node and enabled plugins: also the cheapest check that the
    /// URL and the administrator's credentials work.
    pub async fn overview(&self) -> Result<Overview> {
        let body: OverviewBody = self.get("overview", "/api/overview").await?;
        let node: NodeBody = self.get("read node", &format!("/api/nodes/{}", segment(&body.node))).await?;
        Ok(Overview {
            rabbitmq_version: body.rabbitmq_version,
            management_version: body.management_version,
            node: body.node,
            plugins: node.plugins(),
        })
    }

    /// The node's memory and file descriptors, and the broker's queues.
    pub async fn node_use(&self) -> Result<NodeUse> {
        let body: OverviewBody = self.get("overview", "/api/overview").await?;
        let node: NodeUseBody = self.get("read node", &format!("/api/nodes/{}", segment(&body.node))).await?;
        Ok(NodeUse {
            node: body.node,
            mem_used: node.mem_used,
            fd_used: node.fd_used,
            fd_total: node.fd_total,
            queues: body.object_totals.queues,
            connections: body.object_totals.connections,
        })
    }

    /// Whether `vhost` exists.
    pub async fn vhost_exists(&self, vhost: &str) -> Result<bool> {
        #[derive(Deserialize)]
        struct VhostBody {}
        match self.get::<VhostBody>("read vhost", &format!("/api/vhosts/{}", segment(vhost))).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}
