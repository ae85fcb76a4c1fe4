//! Slave side, after leaving the master with a broker of its own: the
//! links retired without losing the departure (`docs/multi-site.md`,
//! "Unregistering while the links are down").
//!
//! [`retire`] deletes the `commands` and `replication` links once the
//! outbox has handed the last messages (`slave.unregistered` last) to this
//! site's broker, and keeps the `status` link until its queue is empty; if
//! the master's broker cannot be reached in time, the status link stays and
//! delivers the departure later, and [`finish`] (run by the link keeper)
//! removes it once it has. The kept link and its credentials are stored
//! (`departure_link`) before anything is deleted, so that a restart of this
//! server before the departure has crossed still removes the link once it
//! has ([`resume`]), and makes it again if the restart came half-way.

use std::{sync::atomic::Ordering, time::Duration};

use rampart_shared::{amqp::close_channel, broker_admin::without_credentials, site_link::BrokerLinkGrant};
use tokio::time::Instant;

use super::broker_links::{redeclare, remove, site_broker, BrokerLinkError, SiteBroker, POLL};
use crate::state::AppState;

/// After leaving the master: retires the links, and returns whether what
/// was queued for the master (the `slave.unregistered` last) has reached
/// the master's broker within `<LinkStartSeconds>`.
///
/// Once the outbox has handed it to this site's broker, the `commands` and
/// `replication` links are deleted. The `status` link is stopped, which puts
/// back in its queue whatever it held unconfirmed, and its queue is counted
/// (over AMQP: the management API's statistics lag by seconds): empty, the
/// departure has crossed and the queue goes; if not, the link runs again
/// for a while and the count is made again. Still not crossed at the
/// deadline (the master's broker out of reach), the status link stays
/// (`grant`: the links' credentials, read before leaving) and delivers the
/// departure once it can; the master then deletes this slave's broker user,
/// and the link keeper removes the link once its queue is empty.
pub async fn retire(state: &AppState, grant: Option<&BrokerLinkGrant>) -> Result<bool, BrokerLinkError> {
    let broker = site_broker(state)?;
    let deadline = Instant::now() + state.settings.hierarchy.link_start;
    let topo = &state.site.topology;
    let instance = &state.site.instance;
    let exchanges = vec![topo.status_exchange(), topo.replication_exchange()];
    if let Some(grant) = grant {
        remember(state, grant).await;
    }
    while Instant::now() < deadline {
        let queued: i64 = match state.pool.get().await {
            Ok(client) => client
                .query_one("SELECT count(*) FROM outbox WHERE exchange = ANY($1)", &[&exchanges])
                .await
                .map(|r| r.get(0))
                .unwrap_or(1),
            Err(_) => 1,
        };
        if queued == 0 {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    for carries in ["commands", "replication"] {
        let shovel = topo.link_shovel(instance, carries);
        if let Err(e) = broker.client.delete_shovel(&broker.vhost, &shovel).await {
            tracing::warn!(shovel, error = %e, "Could not delete a link to the master's broker; delete the shovel by hand.");
        }
    }
    let status_link = topo.link_shovel(instance, "status");
    let status_queue = topo.link_status_queue(instance);
    // How long the link runs again before the next count: longer each
    // time, so a slow WAN gets the time to reconnect and confirm.
    let mut run_for = 2 * POLL;
    let crossed = loop {
        broker.client.delete_shovel(&broker.vhost, &status_link).await?;
        state.departure_pending.store(false, Ordering::SeqCst);
        stopped(&broker, &status_link).await;
        if state.broker.queue_depth(&status_queue).await == Some(0) {
            break true;
        }
        let Some(grant) = grant else { break false };
        // Not crossed yet: the link again (also when giving up: it
        // delivers the departure once the master's broker is reachable).
        redeclare(state, grant, "status").await?;
        state.departure_pending.store(true, Ordering::SeqCst);
        if Instant::now() + run_for >= deadline {
            break false;
        }
        tokio::time::sleep(run_for).await;
        run_for *= 2;
    };
    let mut queues = vec![topo.link_replication_queue(instance)];
    if crossed || grant.is_none() {
        queues.push(status_queue);
    }
    if let Ok(channel) = state.broker.channel().await {
        for queue in queues {
            let _ = channel.queue_delete(queue.as_str().into(), Default::default()).await;
        }
        let _ = close_channel(&channel, "link queues deleted").await;
    }
    if crossed {
        forget(state).await;
    }
    match (crossed, grant) {
        (true, _) => tracing::info!("Removed the links to the master's broker."),
        (false, Some(grant)) => tracing::warn!(
            shovel = status_link,
            master_broker = %without_credentials(&grant.uri),
            "The master's broker could not be reached: removed the links but the status link, which delivers this \
             slave's departure once it can; the master then deletes this slave's broker user, and the link keeper \
             removes the link."
        ),
        (false, None) => tracing::warn!(
            "Removed the links to the master's broker before this slave's departure crossed (no stored link \
             credentials); remove the slave on the master with `rampartctl slaves remove <slave> --force`."
        ),
    }
    Ok(crossed)
}

/// Waits (at most 5 s) until `shovel` no longer runs on this site's broker.
async fn stopped(broker: &SiteBroker, shovel: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match broker.client.shovel_statuses(&broker.vhost).await {
            Ok(statuses) if !statuses.iter().any(|s| s.name == shovel) => break,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    // The queue takes back what the stopped link held unconfirmed (counted
    // next over AMQP: the management API's statistics lag by seconds).
    tokio::time::sleep(POLL).await;
}

/// On a stand-alone that left its master with the links down: once the
/// status link kept to deliver the departure has delivered everything (its
/// queue holds nothing ready and nothing consumes it: a link holding a
/// message it has not had confirmed is a consumer), removes it and its
/// queue, and forgets it. A link the master's broker refuses since (the
/// master heard, and deleted its user) consumes nothing. Until then, the
/// link is made again from the stored credentials if it is missing (this
/// server restarted while [`retire`] had it stopped to count its queue, or
/// an operator deleted it).
pub async fn finish(state: &AppState) {
    if !state.departure_pending.load(Ordering::SeqCst) {
        return;
    }
    let queue = state.site.topology.link_status_queue(&state.site.instance);
    match state.broker.queue_counts(&queue).await {
        Some((0, 0)) => {}
        Some(_) => return keep_link(state).await,
        // Unknown: this site's broker is down, or the queue is gone
        // (deleted after the departure crossed, the record not yet
        // forgotten when this server stopped): the management API says.
        None => match site_broker(state) {
            Ok(broker) if matches!(broker.client.queue_flow(&broker.vhost, &queue).await, Ok(None)) => {}
            _ => return,
        },
    }
    state.departure_pending.store(false, Ordering::SeqCst);
    remove(state).await;
    if let Ok(channel) = state.broker.channel().await {
        let _ = channel.queue_delete(queue.as_str().into(), Default::default()).await;
        let _ = close_channel(&channel, "link queue deleted").await;
    }
    forget(state).await;
    tracing::info!(queue, "The departure kept for the master's broker has crossed: removed the last link.");
}

/// Beyond `<LinkStartSeconds>`, how long [`retire`] may still be at work
/// (its last stop of the status link, management calls): until then a
/// missing status link is its doing, not to be made again behind its back.
const RETIRE_MARGIN: Duration = Duration::from_secs(60);

/// The departure has not crossed: makes the status link again if it is
/// missing on this site's broker (once [`retire`] is surely done with it).
async fn keep_link(state: &AppState) {
    let Some(grant) = stored(state, state.settings.hierarchy.link_start + RETIRE_MARGIN).await else { return };
    let Ok(broker) = site_broker(state) else { return };
    let shovel = state.site.topology.link_shovel(&state.site.instance, "status");
    match broker.client.shovel_names(&broker.vhost).await {
        Ok(names) if !names.contains(&shovel) => {}
        _ => return,
    }
    match redeclare(state, &grant, "status").await {
        Ok(()) => tracing::warn!(
            shovel,
            "The status link kept to deliver this server's departure was missing: made it again."
        ),
        Err(e) => tracing::warn!(shovel, error = %e, "Could not make again the status link kept for the departure."),
    }
}

/// After this server started: whether a departure was left waiting for the
/// master's broker (`departure_link`), which [`finish`] then looks after.
/// Returns `false` while the database cannot be read (asked again later).
pub async fn resume(state: &AppState) -> bool {
    let Ok(client) = state.pool.get().await else { return false };
    match client.query_opt("SELECT 1 FROM departure_link WHERE id = 1", &[]).await {
        Ok(row) => {
            if row.is_some() {
                state.departure_pending.store(true, Ordering::SeqCst);
                tracing::info!(
                    "A departure left waiting for the master's broker: its status link is kept until it has crossed."
                );
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "Could not read the departure kept for the master's broker.");
            false
        }
    }
}

/// Stores the status link's credentials, before any link is deleted.
async fn remember(state: &AppState, grant: &BrokerLinkGrant) {
    let grant = serde_json::to_value(grant).expect("link credentials serialize");
    let stored = async {
        state
            .pool
            .get()
            .await?
            .execute(
                "INSERT INTO departure_link (id, broker_link) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET broker_link = EXCLUDED.broker_link, left_at = now()",
                &[&grant],
            )
            .await
            .map_err(anyhow::Error::from)
    }
    .await;
    if let Err(e) = stored {
        tracing::warn!(
            error = %e,
            "Could not store the status link kept for the departure: if this server restarts before the departure \
             has crossed, delete the shovel by hand afterwards."
        );
    }
}

/// Registering anew: a departure still waiting for an earlier master's
/// broker is no longer looked after (the new links replace its status
/// link).
pub async fn abandon(state: &AppState) {
    state.departure_pending.store(false, Ordering::SeqCst);
    forget(state).await;
}

/// The stored credentials of the status link kept for the departure, if
/// this server left its master at least `ago` before.
async fn stored(state: &AppState, ago: Duration) -> Option<BrokerLinkGrant> {
    let client = state.pool.get().await.ok()?;
    let ago = ago.as_secs_f64();
    let row = client
        .query_opt(
            "SELECT broker_link FROM departure_link WHERE id = 1 AND left_at <= now() - make_interval(secs => $1)",
            &[&ago],
        )
        .await
        .ok()??;
    serde_json::from_value(row.get(0)).ok()
}

/// No departure is waiting any more (it crossed, or this server registered
/// again: the new links replace the old).
async fn forget(state: &AppState) {
    let deleted =
        async { state.pool.get().await?.execute("DELETE FROM departure_link", &[]).await.map_err(anyhow::Error::from) };
    if let Err(e) = deleted.await {
        tracing::warn!(error = %e, "Could not forget the departure kept for the master's broker.");
    }
}
