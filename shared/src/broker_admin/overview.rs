//! What the broker is: its version and enabled plugins, and its vhosts.

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
