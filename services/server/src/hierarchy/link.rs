//! Slave side: joining a master and leaving it.
//!
//! `register` calls the master's `POST /api/slaves/register` on its :7073
//! API with the operator's token and stores the keys it gets back; only then
//! is this server a slave. The call goes over TLS to the one certificate
//! whose fingerprint the token carries (plain HTTP only when the token has
//! none and `<Api><PlainRegistration>` allows it), so a man in the middle
//! sees neither the token nor the keys. `leave` turns a slave back into a stand-alone in
//! one transaction: master policies go (endpoints fall back to local ones),
//! open master tasks are cancelled on the endpoints and reported cancelled,
//! and a signed `slave.unregistered` is queued for the master.
//!
//! A site with a broker of its own (`<Hierarchy><SiteBroker>`) asks the
//! master for link credentials and makes its [`broker_links`] before it
//! records anything; links that do not come up are removed and the
//! registration withdrawn on the master, so nothing is left on either side.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::{
    db::CachedStatements,
    hierarchy::{RegisterRequest, RegisterResponse, SlaveReport, Unregistered, REGISTER_PATH},
    signing::SigningKey,
    site_link::{cancel_proof, BrokerLinkGrant, CancelRegistration, CANCEL_REGISTRATION_PATH},
    tls::Fingerprint,
};
use serde::Serialize;
use uuid::Uuid;

use super::{
    broker_links,
    master_call::{call_master, CallError},
    reporter, tokens, MasterLink,
};
use crate::{
    operators::{activity, Actor},
    outbox, policies,
    role::Role,
    state::AppState,
    tasks,
};

/// Why registering to a master, or leaving it, did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("a master cannot register to another master")]
    IsMaster,
    #[error("this server is already a slave of master '{master_id}' at {address}; unregister first")]
    AlreadySlave { master_id: String, address: String },
    #[error("this server is a {0}, not registered to a master")]
    NotRegistered(Role),
    /// The operator's input (address, token) is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The master was reached and said no, with this HTTP status (403: the
    /// token; another 4xx: the request as it stands; 5xx: its own trouble).
    #[error("the master at {address} refused the registration: {message}")]
    Refused { address: String, message: String, status: u16 },
    /// The master could not be reached, or did not answer as a master.
    #[error("{0}")]
    MasterUnusable(String),
    /// The master registered us but this server could not record it.
    #[error(
        "master '{master_id}' accepted the registration but this server could not record it ({cause}); \
         remove slave '{slave_id}' on the master (`rampartctl slaves remove {slave_id}`) and register again"
    )]
    AcceptedNotRecorded { master_id: String, slave_id: String, cause: tokio_postgres::Error },
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("the database is unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("the registration could not be sent: {0}")]
    Client(String),
    /// The master accepted, but the links between the brokers did not come
    /// up; they were removed and the registration withdrawn.
    #[error("{cause}; the registration was withdrawn on master '{master_id}' ({withdrawn})")]
    LinksDown { master_id: String, cause: broker_links::BrokerLinkError, withdrawn: String },
}

impl From<CallError> for LinkError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Refused { address, message, status } => Self::Refused { address, message, status },
            CallError::MasterUnusable(message) => Self::MasterUnusable(message),
            CallError::Client(message) => Self::Client(message),
        }
    }
}

/// The master's API port unless the operator gives one.
pub const DEFAULT_MASTER_PORT: u16 = 7073;

/// `host[:port]` with the default port added; `Err` says what is wrong.
pub fn master_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    let bad = |why: &str| {
        format!("master address '{text}' {why}; expected HOST or HOST:PORT, e.g. hq.example:{DEFAULT_MASTER_PORT}")
    };
    if text.is_empty() {
        return Err(bad("is empty"));
    }
    if text.contains("://") || text.contains('/') || text.chars().any(char::is_whitespace) {
        return Err(bad("is not a host and port"));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => {
            (host, port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("has an invalid port"))?)
        }
        None => (text, DEFAULT_MASTER_PORT),
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    Ok(format!("{host}:{port}"))
}

/// Registers this stand-alone to the master at `master` (HOST[:PORT]).
pub async fn register(state: &AppState, actor: &Actor, master: &str, token: &str) -> Result<MasterLink, LinkError> {
    match state.role() {
        Role::Master => return Err(LinkError::IsMaster),
        Role::Slave => {
            let link = state.keyring.link();
            let (master_id, address) = link.map(|l| (l.master_id, l.address)).unwrap_or_default();
            return Err(LinkError::AlreadySlave { master_id, address });
        }
        Role::Standalone => {}
    }
    let address = master_address(master).map_err(LinkError::Invalid)?;
    if token.trim().is_empty() {
        return Err(LinkError::Invalid(
            "token is required (create one on the master with `rampartctl token create`)".into(),
        ));
    }
    let presented = tokens::split(token).map_err(LinkError::Invalid)?;
    let pin = match presented.fingerprint {
        Some(fingerprint) => Some(fingerprint),
        None if state.settings.tls.plain_registration => None,
        None => return Err(LinkError::Invalid(UNPINNED_TOKEN.into())),
    };
    let heartbeat = reporter::heartbeat(state, &state.pool.get().await?).await?;
    let request = RegisterRequest {
        token: presented.secret.to_owned(),
        slave_id: state.site.instance.clone(),
        namespace: state.site.topology.namespace().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        heartbeat,
        site_broker: state.settings.hierarchy.site_broker,
    };
    let answer = call_master(&address, pin, REGISTER_PATH, &request).await?;
    let answer: RegisterResponse = serde_json::from_value(answer).map_err(|e| {
        LinkError::MasterUnusable(format!("the master at {address} answered something else than a registration: {e}"))
    })?;
    let (Some(slave_key), Some(command_key)) =
        (SigningKey::from_hex(&answer.slave_key), SigningKey::from_hex(&answer.command_key))
    else {
        return Err(LinkError::MasterUnusable(format!("the master at {address} answered with unusable keys")));
    };
    if request.site_broker {
        // A departure still waiting for an earlier master's broker goes
        // with the new links (its signature no longer verifies there:
        // refused).
        super::departure::abandon(state).await;
        let linked = match &answer.broker_link {
            Some(grant) => broker_links::establish(state, grant).await,
            None => Err(broker_links::BrokerLinkError::BadUri("(the master sent no link credentials)".into())),
        };
        if let Err(cause) = linked {
            let withdrawn = withdraw(&address, pin, state, &slave_key, &cause.to_string()).await;
            return Err(LinkError::LinksDown { master_id: answer.master_id, cause, withdrawn });
        }
    }
    let recorded = record(state, actor, &answer, &address, &slave_key, &command_key).await;
    if recorded.is_err() && request.site_broker {
        broker_links::remove(state).await;
    }
    let stored = recorded?;
    state.keyring.reload_link(&state.pool.get().await?).await?;
    state.set_role(Role::Slave);
    tracing::info!(master_id = %answer.master_id, master = %address, "Registered to a master; this server is now a slave.");
    Ok(MasterLink { master_id: answer.master_id, address, slave_key, command_key, registered_at: stored })
}

/// Tells the master to forget a registration this server could not
/// complete; says how that went, for the operator's error.
async fn withdraw(address: &str, pin: Option<Fingerprint>, state: &AppState, key: &SigningKey, reason: &str) -> String {
    let me = &state.site.instance;
    let body = CancelRegistration { slave_id: me.clone(), reason: reason.to_owned(), proof: cancel_proof(key, me) };
    match call_master(address, pin, CANCEL_REGISTRATION_PATH, &body).await {
        Ok(_) => "its broker user and command queue were deleted".to_owned(),
        Err(e) => {
            tracing::warn!(master = address, error = %e, "Could not withdraw a registration on the master.");
            format!("that failed: {e}; remove slave '{me}' there with `rampartctl slaves remove {me}`")
        }
    }
}

/// Stores the master's answer: this server is a slave from the commit on.
async fn record(
    state: &AppState,
    actor: &Actor,
    answer: &RegisterResponse,
    address: &str,
    slave_key: &SigningKey,
    command_key: &SigningKey,
) -> Result<DateTime<Utc>, LinkError> {
    let broker_link = answer.broker_link.as_ref().map(|g| serde_json::to_value(g).expect("a grant serializes"));
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let stored: DateTime<Utc> = tx
        .query_one_cached(
            "INSERT INTO master_link (id, master_id, address, slave_key, command_key, broker_link)
             VALUES (1, $1, $2, $3, $4, $5) RETURNING registered_at",
            &[&answer.master_id, &address, &slave_key.to_hex(), &command_key.to_hex(), &broker_link],
        )
        .await
        .map_err(|cause| accepted_but(&answer.master_id, &state.site.instance, cause))?
        .get(0);
    tx.execute_cached("UPDATE instance SET role = 'slave' WHERE id = 1", &[]).await?;
    let object = format!("master:{}", answer.master_id);
    let (before, after) =
        (serde_json::json!({"role": state.role()}), serde_json::json!({"role": Role::Slave, "address": address}));
    activity::record(&tx, actor, "hierarchy.register", &object, Some(before), Some(after))
        .await
        .map_err(|cause| accepted_but(&answer.master_id, &state.site.instance, cause))?;
    tx.commit().await.map_err(|cause| accepted_but(&answer.master_id, &state.site.instance, cause))?;
    Ok(stored)
}

/// The master registered us but we could not record it: say how to undo.
fn accepted_but(master: &str, me: &str, cause: tokio_postgres::Error) -> LinkError {
    LinkError::AcceptedNotRecorded { master_id: master.to_owned(), slave_id: me.to_owned(), cause }
}

/// Why a token without a fingerprint is refused where plain registration is not allowed.
const UNPINNED_TOKEN: &str = "this registration token carries no fingerprint of the master's certificate (it was \
     made by an older version or by a master serving plain HTTP), so the master could not be verified: make a new \
     token on the master with `rampartctl token create`; registering over plain HTTP needs \
     <Api><PlainRegistration>true</PlainRegistration> on both servers";

/// What leaving the master did.
#[derive(Debug, Default, Serialize)]
pub struct Departure {
    pub removed_policies: u64,
    pub cancelled_tasks: usize,
    /// The master's broker was out of reach: the departure waits on this
    /// site's broker for the status link, which delivers it and goes
    /// (`docs/multi-site.md`, "Unregistering while the links are down").
    pub departure_waiting: bool,
}

/// The operator unregisters this slave.
pub async fn unregister(state: &AppState, actor: &Actor) -> Result<Departure, LinkError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let Some(link) = locked_link(&tx, state).await? else {
        return Err(LinkError::NotRegistered(state.role()));
    };
    let grant = broker_links::stored_grant(&tx).await;
    let mut departure = leave(&tx, state, &link, "unregistered by the slave's operator").await?;
    let before = serde_json::json!({"role": Role::Slave, "address": link.address});
    let after = serde_json::json!({
        "role": Role::Standalone,
        "removed_policies": departure.removed_policies,
        "cancelled_tasks": departure.cancelled_tasks,
    });
    let object = format!("master:{}", link.master_id);
    activity::record(&tx, actor, "hierarchy.unregister", &object, Some(before), Some(after)).await?;
    tx.commit().await?;
    departure.departure_waiting = !finish_leaving(state, &link, grant.as_ref()).await?;
    Ok(departure)
}

/// Locks and returns the stored master link, serializing with command apply.
pub async fn locked_link<C: GenericClient>(
    tx: &C,
    state: &AppState,
) -> Result<Option<MasterLink>, tokio_postgres::Error> {
    let row = tx.query_opt_cached("SELECT master_id FROM master_link WHERE id = 1 FOR UPDATE", &[]).await?;
    Ok(row.and_then(|r| state.keyring.link().filter(|l| l.master_id == r.get::<_, &str>(0))))
}

/// Everything of leaving the master, in the caller's transaction.
pub async fn leave<C: GenericClient>(
    tx: &C,
    state: &AppState,
    link: &MasterLink,
    reason: &str,
) -> Result<Departure, tokio_postgres::Error> {
    let master_tasks: Vec<Uuid> =
        tx.query_cached("SELECT id FROM tasks WHERE owner = 'master'", &[]).await?.iter().map(|r| r.get(0)).collect();
    let tasks::Cancelled { tasks: cancelled, mut commands } =
        tasks::cancel_open(tx, &state.site, &master_tasks, "cancelled: this server left its master").await?;
    tx.execute_cached(
        "UPDATE tasks SET cancelled_at = now() WHERE id = ANY($1) AND cancelled_at IS NULL",
        &[&cancelled],
    )
    .await?;
    // Final receipts of the cancelled tasks, then the departure itself.
    for (_, _, receipt) in reporter::task_receipts(tx, Some(&cancelled)).await? {
        commands.push(reporter::report_command(state, link, &SlaveReport::Receipt(receipt)));
    }
    commands.push(reporter::report_command(
        state,
        link,
        &SlaveReport::Unregistered(Unregistered { reason: reason.to_owned() }),
    ));
    tx.execute_cached("DELETE FROM tasks WHERE owner = 'master'", &[]).await?;
    let removed_policies = tx.execute_cached("DELETE FROM policies WHERE owner = 'master'", &[]).await?;
    outbox::enqueue(tx, &commands).await?;
    policies::refresh(tx, &state.site, None, false).await?;
    tx.execute_cached("DELETE FROM master_link", &[]).await?;
    tx.execute_cached("UPDATE instance SET role = 'standalone' WHERE id = 1", &[]).await?;
    tracing::info!(master_id = %link.master_id, reason, removed_policies, cancelled_tasks = cancelled.len(), "Left the master.");
    Ok(Departure { removed_policies, cancelled_tasks: cancelled.len(), departure_waiting: false })
}

/// After the leaving transaction committed: memory follows the database,
/// and a site with a broker of its own retires its links (`grant`: their
/// credentials, read before leaving). Returns whether the departure has
/// reached the master's broker (always, with one shared broker).
pub async fn finish_leaving(
    state: &AppState,
    link: &MasterLink,
    grant: Option<&BrokerLinkGrant>,
) -> Result<bool, LinkError> {
    state.keyring.reload_link(&state.pool.get().await?).await?;
    state.set_role(Role::Standalone);
    state.wakes.outbox_relay.wake();
    tracing::info!(master_id = %link.master_id, "This server is a stand-alone again.");
    if !state.settings.hierarchy.site_broker {
        return Ok(true);
    }
    match super::departure::retire(state, grant).await {
        Ok(crossed) => Ok(crossed),
        Err(e) => {
            tracing::warn!(master_id = %link.master_id, error = %e, "Could not remove the links to the master's broker.");
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_addresses_get_the_default_port() {
        assert_eq!(master_address("hq.example").unwrap(), "hq.example:7073");
        assert_eq!(master_address(" 10.0.0.1:8000 ").unwrap(), "10.0.0.1:8000");
        for bad in ["", "http://hq", "hq:0", "hq:port", ":7073", "h q"] {
            assert!(master_address(bad).is_err(), "{bad}");
        }
    }
}
