//! Master side: accepting a stand-alone as a slave.
//!
//! The stand-alone calls `POST /api/slaves/register` with a registration
//! token; the master checks the request and the token, records the slave,
//! declares its command queue, queues every policy that targets all slaves
//! and answers with the slave's keys, all in one transaction. A slave whose
//! site runs a broker of its own also gets a broker user on this master's
//! broker for its links ([`link_users`]), deleted again if the transaction
//! does not commit, or when the slave withdraws a registration whose links
//! did not come up ([`cancel`]).

use chrono::{DateTime, Utc};
use rampart_shared::{
    amqp::close_channel,
    db::CachedStatements,
    hierarchy::{RegisterRequest, RegisterResponse},
    signing::SigningKey,
    site_link::{cancel_proof_holds, CancelRegistration},
    topology::{self, NameSegment, Topology},
};

use super::{fanout, link_users, slaves::reload_keyring, tokens};
use crate::{
    reports::{self, events::Touched},
    role::Role,
    state::AppState,
};

/// Why a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("this server ('{instance}') is a {role} server, not a master: register to a master")]
    NotAMaster { instance: String, role: Role },
    /// The request itself is malformed (ids, versions, counts).
    #[error("{0}")]
    Invalid(String),
    #[error("'{0}' is this master's own name; a slave needs another instance name")]
    OwnName(String),
    #[error(
        "the slave uses AMQP namespace '{theirs}' but this master uses '{ours}'; set the same <Broker><Namespace> on both"
    )]
    OtherNamespace { theirs: String, ours: String },
    #[error("slave '{slave}' is already registered to this master (since {since}); unregister it first")]
    AlreadyRegistered { slave: String, since: DateTime<Utc> },
    #[error(transparent)]
    Token(#[from] tokens::TokenError),
    #[error("the broker is unavailable: {0}")]
    Broker(String),
    #[error(
        "this master serves plain HTTP and does not take registrations over it (the slave's keys would cross the \
         network in clear): serve TLS, or set <Api><PlainRegistration>true</PlainRegistration> on both servers"
    )]
    PlainRefused,
    #[error(transparent)]
    LinkUser(#[from] link_users::LinkUserError),
    #[error("this master has no key (instance.master_key is empty)")]
    NoMasterKey,
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("the database is unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Registers a slave: checks the token, records the slave, declares its
/// command queue and issues its keys, all or nothing.
pub async fn register(state: &AppState, request: RegisterRequest) -> Result<RegisterResponse, RegistrationError> {
    let role = state.role();
    if role != Role::Master {
        return Err(RegistrationError::NotAMaster { instance: state.site.instance.clone(), role });
    }
    if state.api_fingerprint.is_none() && !state.settings.tls.plain_registration {
        return Err(RegistrationError::PlainRefused);
    }
    let slave = NameSegment::parse(request.slave_id.trim())
        .map_err(|e| RegistrationError::Invalid(format!("slave_id {e}")))?
        .to_string();
    check_request(&request).map_err(RegistrationError::Invalid)?;
    if slave == state.site.instance {
        return Err(RegistrationError::OwnName(slave));
    }
    let namespace = state.site.topology.namespace();
    if request.namespace != namespace {
        return Err(RegistrationError::OtherNamespace {
            theirs: request.namespace.clone(),
            ours: namespace.to_owned(),
        });
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if let Some(row) =
        tx.query_opt_cached("SELECT state, registered_at FROM slaves WHERE id = $1 FOR UPDATE", &[&slave]).await?
    {
        if row.get::<_, &str>(0) != "removed" {
            return Err(RegistrationError::AlreadyRegistered { slave, since: row.get(1) });
        }
    }
    tokens::consume(&tx, &request.token, &slave).await?;
    let slave_key = SigningKey::generate();
    let heartbeat = &request.heartbeat;
    let license = heartbeat.license.as_ref().map(|l| serde_json::to_value(l).expect("license usage serializes"));
    tx.execute_cached(
        "INSERT INTO slaves (id, state, slave_key, version, endpoints, license, registered_at, last_seen, site_broker)
         VALUES ($1, 'active', $2, $3, $4, $5, now(), now(), $6)
         ON CONFLICT (id) DO UPDATE SET state = 'active', slave_key = excluded.slave_key, version = excluded.version,
             site_broker = excluded.site_broker,
             endpoints = excluded.endpoints, license = excluded.license, registered_at = now(), last_seen = now(),
             removed_at = NULL, removed_reason = NULL, heartbeat_sent_at = NULL,
             repl_epoch = 0, repl_xid = 0, repl_seq = 0, synced_as_of = NULL, rows_behind = NULL",
        &[&slave, &slave_key.to_hex(), &request.version, &heartbeat.endpoints, &license, &request.site_broker],
    )
    .await?;
    // A re-registered slave may come back with a fresh database whose
    // message numbers start again: receipts compare against this registration only.
    tx.execute_cached("UPDATE receipts SET seq = 0 WHERE slave_id = $1", &[&slave]).await?;
    declare_command_queue(state, &slave).await?;
    let command_key = state.keyring.command_key_for(&slave).ok_or(RegistrationError::NoMasterKey)?;
    let policies = fanout::welcome(&tx, state, &slave).await?;
    reports::events::queue_summary(&tx, state, &slave, Touched::health()).await?;
    // Last before the commit, so only a failed commit has a user to undo.
    let broker_link = match request.site_broker {
        true => Some(link_users::grant(state, &slave).await?),
        false => None,
    };
    if let Err(e) = tx.commit().await {
        if broker_link.is_some() {
            link_users::revoke(state, &slave).await;
        }
        return Err(e.into());
    }
    reload_keyring(state).await;
    state.wakes.outbox_relay.wake();
    let site_broker = request.site_broker;
    tracing::info!(slave_id = %slave, version = %request.version, policies, site_broker, "Registered a slave.");
    Ok(RegisterResponse {
        master_id: state.site.instance.clone(),
        slave_key: slave_key.to_hex(),
        command_key: command_key.to_hex(),
        broker_link,
    })
}

/// What the types of a registration do not say: versions that are short
/// text, counts that are not negative (it is checked before the token is
/// used, so a refused request leaves it unused).
fn check_request(request: &RegisterRequest) -> Result<(), String> {
    for (field, version) in [("version", &request.version), ("heartbeat.version", &request.heartbeat.version)] {
        if version.trim().is_empty() || version.len() > 64 {
            return Err(format!("{field} must be 1 to 64 characters"));
        }
    }
    let heartbeat = &request.heartbeat;
    if heartbeat.endpoints < 0 {
        return Err(format!("heartbeat.endpoints is {}: a count cannot be negative", heartbeat.endpoints));
    }
    if heartbeat.license.as_ref().is_some_and(|l| l.seats < 0 || l.used < 0) {
        return Err("heartbeat.license: seats and used cannot be negative".into());
    }
    Ok(())
}

/// Attempts at declaring a new slave's command queue. RabbitMQ may refuse a
/// quorum queue for a moment: on a busy node its Raft group may not form in
/// time (`INTERNAL_ERROR ... cluster_not_formed`, seen after about 460
/// registrations in a row on a loaded machine). Declaring is idempotent,
/// so the declaration is made again on a fresh channel (a refusal closes
/// the channel) after a pause that doubles.
const DECLARE_ATTEMPTS: u32 = 3;
const DECLARE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

async fn declare_command_queue(state: &AppState, slave: &str) -> Result<(), RegistrationError> {
    let (mut attempt, mut pause) = (1, DECLARE_RETRY_AFTER);
    loop {
        match declare_command_queue_once(state, slave).await {
            Err(e) if attempt < DECLARE_ATTEMPTS => {
                tracing::warn!(slave_id = %slave, attempt, error = %e, retry_in = ?pause,
                               "The broker refused the new slave's command queue; declaring it again.");
                tokio::time::sleep(pause).await;
                (attempt, pause) = (attempt + 1, pause * 2);
            }
            done => return done,
        }
    }
}

async fn declare_command_queue_once(state: &AppState, slave: &str) -> Result<(), RegistrationError> {
    let unavailable = |e: &dyn std::fmt::Display| RegistrationError::Broker(e.to_string());
    let channel = state.broker.channel().await.map_err(|e| unavailable(&e))?;
    let topo = &state.site.topology;
    let bindings = [Topology::slave_key(slave), Topology::ALL_SLAVES_KEY.to_owned()];
    let declared = topology::declare_queue(
        &channel,
        topo,
        &topo.slave_commands_queue(slave),
        &topo.commands_exchange(),
        &bindings,
    )
    .await;
    let _ = close_channel(&channel, "declared").await;
    declared.map_err(|e| unavailable(&e))
}

/// Why withdrawing a registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    #[error("no registration of slave '{0}' to withdraw")]
    Unknown(String),
    #[error("the proof does not match the key issued to slave '{0}'")]
    BadProof(String),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("the database is unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// A slave withdraws its registration (its links to this master's broker
/// did not come up): it is removed at once, its command queue and its
/// broker user deleted. Only the holder of the slave key issued at that
/// registration can do it.
pub async fn cancel(state: &AppState, request: CancelRegistration) -> Result<(), CancelError> {
    let slave = request.slave_id.trim().to_owned();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt_cached("SELECT slave_key FROM slaves WHERE id = $1 AND state = 'active' FOR UPDATE", &[&slave])
        .await?
        .ok_or_else(|| CancelError::Unknown(slave.clone()))?;
    let key = SigningKey::from_hex(row.get(0)).ok_or_else(|| CancelError::BadProof(slave.clone()))?;
    if !cancel_proof_holds(&key, &slave, &request.proof) {
        return Err(CancelError::BadProof(slave));
    }
    let reason: String = format!("registration withdrawn by the slave: {}", request.reason).chars().take(500).collect();
    tx.execute_cached(
        "UPDATE slaves SET state = 'removed', removed_at = now(), removed_reason = $2 WHERE id = $1",
        &[&slave, &reason],
    )
    .await?;
    super::slaves::cancel_open_receipts(&tx, &slave).await?;
    tx.commit().await?;
    reload_keyring(state).await;
    super::slaves::delete_command_queue(state, &slave).await;
    link_users::revoke(state, &slave).await;
    tracing::warn!(slave_id = %slave, reason, "A slave withdrew its registration.");
    Ok(())
}
