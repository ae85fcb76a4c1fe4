//! Slave side of sites with brokers of their own: the three shovels on this
//! site's broker that link it to the master's (`docs/multi-site.md`).
//!
//! | link          | source                                   | destination                       |
//! |---------------|------------------------------------------|-----------------------------------|
//! | `commands`    | master's broker, `<ns>.slave.<id>.commands` | this broker, `<ns>.commands`   |
//! | `status`      | this broker, `<ns>.link.<id>.status`     | master's broker, `<ns>.status`    |
//! | `replication` | this broker, `<ns>.link.<id>.replication`| master's broker, `<ns>.replication` |
//!
//! Every shovel runs on this site's broker, so every connection across the
//! WAN is opened from this side; each confirms both legs (`on-confirm`)
//! and keeps the routing key, properties and headers (signatures verify on
//! the master as if the slave had published there). The local side is a
//! direct connection of the node (`amqp://`), so no local password is
//! stored in a shovel.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use rampart_shared::{
    amqp::close_channel,
    broker_admin::{
        grants::url_with_user, settings::vhost_of, without_credentials, AdminError, ManagementClient, NewUser,
        ShovelDefinition,
    },
    replication::Lane,
    site_link::{BrokerLinkGrant, LinkState},
    topology::{self, Topology},
    Secret,
};
use serde::Serialize;
use tokio::time::Instant;

use crate::state::AppState;

/// What each link carries, in the order they are shown.
pub const LINKS: [&str; 3] = ["commands", "status", "replication"];
/// Unconfirmed messages in flight on one link.
pub const PREFETCH: u32 = 200;
/// Seconds between a shovel's reconnection attempts.
pub const RECONNECT_DELAY: u32 = 2;
/// Bound of each call to this site's management API.
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Between two looks at the links' state.
pub(super) const POLL: Duration = Duration::from_millis(500);

/// Why the links could not be made, checked or removed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerLinkError {
    #[error("this server has no <Broker><Management>: it cannot make links on its broker")]
    NoManagement,
    #[error("this site's broker: {0}")]
    Admin(#[from] AdminError),
    #[error("declaring the link queues on this site's broker: {0}")]
    Broker(String),
    #[error("the master's broker URI '{0}' is not usable")]
    BadUri(String),
    #[error(
        "the master's broker at {0} is this site's own broker (the master's user for this slave exists here): links \
         would carry every command back to where it came from; with one shared broker, remove \
         <Hierarchy><SiteBroker> from this server's configuration and register again"
    )]
    SameBroker(String),
    #[error(
        "the links from this site's broker to the master's broker at {uri} did not reach 'running' within {seconds} s \
         ({reasons}); they were removed: check that this site's broker reaches {uri} (firewall, DNS, TLS CA file) \
         and register again"
    )]
    NotRunning { uri: String, seconds: u64, reasons: String },
}

/// One link as `rampartctl status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct LinkView {
    /// `commands`, `status` or `replication`.
    pub carries: &'static str,
    /// The shovel's name on this site's broker.
    pub shovel: String,
    /// `running`, `starting`, `terminated`, or `missing` (not defined).
    pub state: String,
    /// The broker's reason for a link that is not running.
    pub reason: Option<String>,
    /// Messages on this site's broker waiting for the link (outbound links).
    pub waiting: Option<u64>,
    /// Messages the link has taken from its queue on this side so far
    /// (outbound links; the broker's statistics), for the link keeper.
    #[serde(skip)]
    pub moved: Option<u64>,
}

/// This site's broker, through its management API.
pub(super) struct SiteBroker {
    pub(super) client: ManagementClient,
    pub(super) vhost: String,
}

pub(super) fn site_broker(state: &AppState) -> Result<SiteBroker, BrokerLinkError> {
    let management = state.settings.service.broker_management.as_ref().ok_or(BrokerLinkError::NoManagement)?;
    let vhost = vhost_of(state.settings.service.amqp_url.expose());
    // Short: `status`, `/metrics` and the link keeper ask often, and a
    // management API that does not answer must not hold them long.
    Ok(SiteBroker { client: management.client()?.with_timeout(MANAGEMENT_TIMEOUT), vhost })
}

/// Makes the links for `grant` and waits until all run; if they do not
/// within `<LinkStartSeconds>`, removes them and says why.
pub async fn establish(state: &AppState, grant: &BrokerLinkGrant) -> Result<(), BrokerLinkError> {
    let broker = site_broker(state)?;
    // The master has just made this user on its broker: seen here, the two
    // brokers are one, and shovels would loop commands back into their queue.
    match broker.client.user(&grant.user).await {
        Ok(_) => return Err(BrokerLinkError::SameBroker(grant.uri.clone())),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    declare_local_queues(state).await?;
    let remote = remote_uri(grant, state.settings.hierarchy.master_broker_ca_file.as_deref())?;
    for definition in definitions(state, &broker.vhost, remote) {
        if let Err(e) = broker.client.put_shovel(&broker.vhost, &definition).await {
            remove(state).await;
            return Err(e.into());
        }
    }
    let limit = state.settings.hierarchy.link_start;
    let deadline = Instant::now() + limit;
    // A failing shovel goes `terminated` (with the broker's reason) and
    // back to `starting` between attempts: the last reason seen is kept.
    let mut seen: Vec<Option<String>> = vec![None; LINKS.len()];
    loop {
        let links = views_of(state, &broker).await?;
        if links.iter().all(|l| l.state == "running") {
            tracing::info!(master_broker = %grant.uri, "The links to the master's broker are running.");
            return Ok(());
        }
        for (reason, link) in seen.iter_mut().zip(&links) {
            if link.reason.is_some() {
                reason.clone_from(&link.reason);
            }
        }
        if Instant::now() >= deadline {
            let reasons = links
                .iter()
                .zip(&seen)
                .filter(|(l, _)| l.state != "running")
                .map(|(l, reason)| {
                    format!("{}: {} {}", l.carries, l.state, reason.as_deref().unwrap_or("")).trim().to_owned()
                })
                .collect::<Vec<_>>()
                .join("; ");
            remove(state).await;
            tracing::warn!(master_broker = %grant.uri, reasons, "The links to the master's broker did not come up.");
            return Err(BrokerLinkError::NotRunning { uri: grant.uri.clone(), seconds: limit.as_secs(), reasons });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The links' credentials stored at registration (`master_link`), if this
/// slave has a broker of its own.
pub async fn stored_grant<C: GenericClient>(client: &C) -> Option<BrokerLinkGrant> {
    let row = client.query_opt("SELECT broker_link FROM master_link WHERE id = 1", &[]).await.ok()??;
    serde_json::from_value(row.get::<_, Option<serde_json::Value>>(0)?).ok()
}

/// Makes the shovel carrying `carries` again from the stored `grant`
/// (deleting what is left of it first).
pub(super) async fn redeclare(state: &AppState, grant: &BrokerLinkGrant, carries: &str) -> Result<(), BrokerLinkError> {
    let broker = site_broker(state)?;
    let remote = remote_uri(grant, state.settings.hierarchy.master_broker_ca_file.as_deref())?;
    let name = state.site.topology.link_shovel(&state.site.instance, carries);
    let Some(definition) = definitions(state, &broker.vhost, remote).into_iter().find(|d| d.name == name) else {
        return Ok(());
    };
    broker.client.delete_shovel(&broker.vhost, &name).await?;
    broker.client.put_shovel(&broker.vhost, &definition).await?;
    Ok(())
}

/// Deletes the three shovels (each one already gone is fine); failures
/// are logged with what to delete by hand.
pub async fn remove(state: &AppState) {
    let Ok(broker) = site_broker(state) else { return };
    for carries in LINKS {
        let shovel = state.site.topology.link_shovel(&state.site.instance, carries);
        if let Err(e) = broker.client.delete_shovel(&broker.vhost, &shovel).await {
            tracing::warn!(shovel, error = %e, "Could not delete a link to the master's broker; delete the shovel by hand.");
        }
    }
}

/// The links' state and the messages waiting on this side.
pub async fn views(state: &AppState) -> Result<Vec<LinkView>, BrokerLinkError> {
    views_of(state, &site_broker(state)?).await
}

/// What the API and `/metrics` show of the links.
#[derive(Debug, Serialize)]
pub struct LinkReport {
    pub links: Vec<LinkView>,
    /// Why the links could not be read (this site's management API down).
    pub error: Option<String>,
}

impl LinkReport {
    /// The links as a heartbeat carries them (each `unknown` when they
    /// could not be read).
    pub fn states(&self) -> Vec<LinkState> {
        if let Some(error) = &self.error {
            return LINKS
                .iter()
                .map(|c| LinkState {
                    carries: (*c).into(),
                    state: "unknown".into(),
                    reason: Some(error.clone()),
                    waiting: None,
                })
                .collect();
        }
        self.links
            .iter()
            .map(|l| LinkState {
                carries: l.carries.into(),
                state: l.state.clone(),
                reason: l.reason.clone(),
                waiting: l.waiting,
            })
            .collect()
    }
}

/// The links of a slave on a broker of its own; `None` for any other server.
pub async fn report(state: &AppState) -> Option<LinkReport> {
    if !state.settings.hierarchy.site_broker || state.role() != crate::role::Role::Slave {
        return None;
    }
    Some(match views(state).await {
        Ok(links) => LinkReport { links, error: None },
        Err(e) => LinkReport { links: Vec::new(), error: Some(e.to_string()) },
    })
}

async fn views_of(state: &AppState, broker: &SiteBroker) -> Result<Vec<LinkView>, BrokerLinkError> {
    let (topo, me) = (&state.site.topology, state.site.instance.as_str());
    let statuses = broker.client.shovel_statuses(&broker.vhost).await?;
    let defined = broker.client.shovel_names(&broker.vhost).await?;
    let mut views = Vec::with_capacity(LINKS.len());
    for carries in LINKS {
        let shovel = topo.link_shovel(me, carries);
        let status = statuses.iter().find(|s| s.name == shovel);
        let (state, reason) = match status {
            Some(s) => (s.state.clone(), s.reason.clone()),
            None if defined.contains(&shovel) => ("starting".to_owned(), None),
            None => ("missing".to_owned(), None),
        };
        let flow = match outbound_queue(topo, me, carries) {
            Some(queue) => broker.client.queue_flow(&broker.vhost, &queue).await?,
            None => None,
        };
        let (waiting, moved) = (flow.map(|f| f.messages), flow.and_then(|f| f.acknowledged));
        views.push(LinkView { carries, shovel, state, reason, waiting, moved });
    }
    Ok(views)
}

/// The local queue an outbound link reads.
fn outbound_queue(topo: &Topology, me: &str, carries: &str) -> Option<String> {
    match carries {
        "status" => Some(topo.link_status_queue(me)),
        "replication" => Some(topo.link_replication_queue(me)),
        _ => None,
    }
}

/// This slave's command queue (the commands link delivers into it through
/// the local commands exchange) and the outbound link queues.
pub async fn declare_local_queues(state: &AppState) -> Result<(), BrokerLinkError> {
    let (topo, me) = (&state.site.topology, state.site.instance.as_str());
    let failed = |e: &dyn std::fmt::Display| BrokerLinkError::Broker(e.to_string());
    let channel = state.broker.channel().await.map_err(|e| failed(&e))?;
    let commands = [Topology::slave_key(me), Topology::ALL_SLAVES_KEY.to_owned()];
    let declared = async {
        topology::declare_queue(&channel, topo, &topo.slave_commands_queue(me), &topo.commands_exchange(), &commands)
            .await?;
        let status = [format!("{}.#", Topology::slave_key(me))];
        topology::declare_link_queue(&channel, &topo.link_status_queue(me), &topo.status_exchange(), &status).await?;
        let replication = [Topology::replication_key(me, Lane::Bulk), Topology::replication_key(me, Lane::Live)];
        topology::declare_link_queue(
            &channel,
            &topo.link_replication_queue(me),
            &topo.replication_exchange(),
            &replication,
        )
        .await
    }
    .await;
    let _ = close_channel(&channel, "link queues declared").await;
    declared.map_err(|e| failed(&e))
}

/// The master's broker URI with the link user's credentials, and for
/// `amqps` the CA file that verifies the master broker's certificate.
fn remote_uri(grant: &BrokerLinkGrant, ca_file: Option<&str>) -> Result<Secret<String>, BrokerLinkError> {
    let user = NewUser { name: grant.user.clone(), password: Secret::new(grant.password.clone()) };
    let mut uri = url_with_user(&grant.uri, &user).map_err(|_| BrokerLinkError::BadUri(grant.uri.clone()))?;
    if let (true, Some(ca)) = (grant.uri.starts_with("amqps://"), ca_file) {
        let host = without_credentials(&grant.uri);
        let host = host.trim_start_matches("amqps://").split(['/', ':']).next().unwrap_or_default().to_owned();
        uri.push_str(&format!("?cacertfile={ca}&verify=verify_peer&server_name_indication={host}"));
    }
    Ok(Secret::new(uri))
}

/// The three shovels of this slave.
fn definitions(state: &AppState, vhost: &str, remote: Secret<String>) -> [ShovelDefinition; 3] {
    let (topo, me) = (&state.site.topology, state.site.instance.as_str());
    let local = Secret::new(ShovelDefinition::local_uri(vhost));
    let shovel =
        |carries: &str, src_uri: &Secret<String>, src_queue: String, dest_uri: &Secret<String>, dest_exchange| {
            ShovelDefinition {
                name: topo.link_shovel(me, carries),
                src_uri: src_uri.clone(),
                src_queue,
                dest_uri: dest_uri.clone(),
                dest_exchange,
                prefetch: PREFETCH,
                reconnect_delay: RECONNECT_DELAY,
            }
        };
    [
        shovel("commands", &remote, topo.slave_commands_queue(me), &local, topo.commands_exchange()),
        shovel("status", &local, topo.link_status_queue(me), &remote, topo.status_exchange()),
        shovel("replication", &local, topo.link_replication_queue(me), &remote, topo.replication_exchange()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amqps_link_verifies_the_master_broker() {
        let grant = BrokerLinkGrant {
            uri: "amqps://hq.example:5671/%2f".into(),
            user: "rt.link.p".into(),
            password: "pw".into(),
        };
        let uri = remote_uri(&grant, Some("/etc/rabbitmq/hq-ca.pem")).unwrap();
        assert_eq!(
            uri.expose(),
            "amqps://rt.link.p:pw@hq.example:5671/%2f?cacertfile=/etc/rabbitmq/hq-ca.pem&verify=verify_peer&server_name_indication=hq.example"
        );
        let plain = BrokerLinkGrant { uri: "amqp://hq:5672".into(), ..grant };
        assert_eq!(remote_uri(&plain, Some("/ca.pem")).unwrap().expose(), "amqp://rt.link.p:pw@hq:5672");
    }
}
