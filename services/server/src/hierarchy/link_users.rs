//! Master side of sites with brokers of their own: each such slave's broker
//! user on the master's broker, made at registration and deleted when the
//! slave leaves (or its registration is withdrawn).
//!
//! The user may do only what the slave's links need
//! ([`BrokerGrant::slave_link`]): read its command queue, publish its
//! status and replication under its own routing keys.

use rampart_shared::{
    broker_admin::{
        grants::{self, provision, BrokerGrant},
        settings::vhost_of,
        AdminError, ManagementClient,
    },
    site_link::BrokerLinkGrant,
};

use serde::Serialize;

use crate::state::AppState;

/// Why a slave's link user could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkUserError {
    #[error(
        "slave '{0}' runs a broker of its own but this master has no <Hierarchy><BrokerForSlaves>: set the address \
         of this master's broker as the slaves' brokers reach it, restart, and register again"
    )]
    NoBrokerForSlaves(String),
    #[error("could not make the broker user of slave '{slave}' on this master's broker ({cause}); register again once the broker's management API answers")]
    Broker { slave: String, cause: AdminError },
}

/// The master's management client and the vhost slaves' links reach.
fn admin(state: &AppState) -> Option<(ManagementClient, String, String)> {
    let uri = state.settings.hierarchy.broker_for_slaves.clone()?;
    let client = state.settings.service.broker_management.as_ref()?.client().ok()?;
    let vhost = vhost_of(&uri);
    Some((client, vhost, uri))
}

/// Makes (or resets) `slave`'s link user with a fresh password.
pub async fn grant(state: &AppState, slave: &str) -> Result<BrokerLinkGrant, LinkUserError> {
    let (client, vhost, uri) = admin(state).ok_or_else(|| LinkUserError::NoBrokerForSlaves(slave.to_owned()))?;
    let grant = BrokerGrant::slave_link(&state.site.topology, slave);
    let made = provision(&client, &vhost, &grant).await;
    let user = match made {
        Ok(user) => user,
        Err(cause) => {
            // Provisioning is several calls: nothing of a half-made user stays.
            revoke(state, slave).await;
            return Err(LinkUserError::Broker { slave: slave.to_owned(), cause });
        }
    };
    tracing::info!(slave_id = slave, user = %user.name, "Made the broker user of a slave's links.");
    Ok(BrokerLinkGrant { uri, user: user.name, password: user.password.expose().clone() })
}

/// Deletes `slave`'s link user (closing its connections); a user already
/// gone is fine. Failures are logged: the operator can delete it by hand.
pub async fn revoke(state: &AppState, slave: &str) {
    let Some((client, _, _)) = admin(state) else { return };
    let user = state.site.topology.link_user(slave);
    match client.delete_user(&user).await {
        Ok(()) => tracing::info!(slave_id = slave, user, "Deleted the broker user of a slave's links."),
        Err(e) => tracing::warn!(
            slave_id = slave, user, error = %e,
            "Could not delete the broker user of a slave's links; delete it on the broker by hand."
        ),
    }
    // Deleting a user leaves its connections open: its links stop here.
    if let Err(e) = client.close_connections_of(&user, "the slave left the hierarchy").await {
        tracing::warn!(slave_id = slave, user, error = %e, "Could not close the connections of a slave's link user.");
    }
}

/// A slave's footprint on this master's broker, as `slaves show` prints it.
#[derive(Debug, Serialize)]
pub struct SlaveBrokerView {
    /// Its link user.
    pub user: String,
    /// The connections its links hold open (the broker's names: peer -> us).
    pub connections: Vec<String>,
    /// Commands waiting in its queue for the commands link.
    pub command_queue_depth: Option<u64>,
    /// Why the broker could not be asked.
    pub error: Option<String>,
}

/// What this master's broker says of `slave`'s links.
pub async fn broker_view(state: &AppState, slave: &str) -> SlaveBrokerView {
    let user = state.site.topology.link_user(slave);
    let mut view =
        SlaveBrokerView { user: user.clone(), connections: Vec::new(), command_queue_depth: None, error: None };
    let Some((client, vhost, _)) = admin(state) else {
        view.error = Some("this master has no <Hierarchy><BrokerForSlaves> and <Broker><Management>".into());
        return view;
    };
    let queue = state.site.topology.slave_commands_queue(slave);
    match (client.connections_of(&user).await, client.queue_depth(&vhost, &queue).await) {
        (Ok(connections), Ok(depth)) => {
            view.connections = connections.into_iter().map(|c| c.name).collect();
            view.command_queue_depth = depth;
        }
        (Err(e), _) | (_, Err(e)) => view.error = Some(e.to_string()),
    }
    view
}

/// Whether this master makes link users at all.
pub fn enabled(state: &AppState) -> bool {
    admin(state).is_some()
}

/// Brings the link users of the slaves with brokers of their own up to
/// this version's grant (their passwords unchanged): a version that adds a
/// routing key (the live replication lane) must not leave the links of
/// slaves registered before it refused by the broker. Run at a master's
/// start; a broker that does not answer is logged and tried at the next.
pub async fn refresh_grants(state: &AppState) {
    let Some((client, vhost, _)) = admin(state) else { return };
    let slaves: Vec<String> = match state.pool.get().await {
        Ok(db) => match db.query("SELECT id FROM slaves WHERE site_broker AND state <> 'removed'", &[]).await {
            Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
            Err(e) => return tracing::warn!(error = %e, "Could not list the slaves whose link users to refresh."),
        },
        Err(e) => return tracing::warn!(error = %e, "Could not list the slaves whose link users to refresh."),
    };
    for slave in slaves {
        let grant = BrokerGrant::slave_link(&state.site.topology, &slave);
        match grants::apply(&client, &vhost, &grant).await {
            Ok(()) => {
                tracing::debug!(slave_id = slave, user = %grant.user, "Refreshed the grant of a slave's link user.")
            }
            Err(e) if e.is_not_found() => {
                tracing::warn!(slave_id = slave, user = %grant.user, "A slave's link user is missing on this master's broker.")
            }
            Err(e) => tracing::warn!(slave_id = slave, user = %grant.user, error = %e,
                                     "Could not refresh the grant of a slave's link user; it is tried again at the next start."),
        }
    }
}
