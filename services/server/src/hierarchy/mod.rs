//! Master and slaves: registration, fan-out of policies and tasks, receipts.
//!
//! Master side: [`tokens`] hands out single-use registration tokens,
//! [`slaves`] registers, lists and removes slaves and consumes their reports
//! (`<ns>.master.status`), [`fanout`] sends master policies and tasks to the
//! slaves' command queues and keeps one receipt per slave.
//!
//! Slave side: [`link`] registers to a master over HTTP and unregisters,
//! [`commands`] consumes `<ns>.slave.<id>.commands` and applies what the
//! master sends, [`reporter`] sends heartbeats and the progress of master
//! policies and tasks. Replication runs beside them
//! ([`crate::replication`]).
//!
//! Every message between master and slave is signed (HMAC-SHA256) with a key
//! of that one slave; the [`Keyring`] holds the keys in memory so consumers
//! can check signatures before anything touches the database.

pub mod commands;
pub mod fanout;
pub mod link;
pub mod reporter;
pub mod slaves;
pub mod tokens;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::{
    amqp::{
        consumer::{self, ConsumerSettings},
        Broker,
    },
    hierarchy::command_key,
    signing::SigningKey,
    Shutdown,
};

use crate::{
    replication::{apply::ReplicationInbox, replicator},
    role::Role,
    state::SharedState,
};

/// How often a slave tells its master it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// A slave not heard of for this long is shown offline.
pub const OFFLINE_AFTER: Duration = Duration::from_secs(35);

/// A slave's master, as stored at registration.
#[derive(Clone, Debug)]
pub struct MasterLink {
    pub master_id: String,
    pub address: String,
    pub slave_key: SigningKey,
    pub command_key: SigningKey,
    pub registered_at: DateTime<Utc>,
}

/// What the master knows of one slave it accepts messages from.
#[derive(Clone, Debug)]
pub struct SlaveEntry {
    pub key: SigningKey,
    /// Removed by the master and waiting for the slave to confirm: only its
    /// `slave.unregistered` is accepted.
    pub removing: bool,
}

/// The hierarchy's keys, mirrored from the database after each commit.
#[derive(Debug, Default)]
pub struct Keyring {
    master_key: Option<SigningKey>,
    slaves: RwLock<HashMap<String, SlaveEntry>>,
    link: RwLock<Option<MasterLink>>,
    /// Held from the read of the database to the write of the mirror, so
    /// reloads take effect in the order they read: two registrations
    /// committing at once each reload, and the reload that read first (it
    /// saw only one of them) could otherwise write last and leave the other
    /// slave out until the next change, its messages refused meanwhile (seen
    /// with 100 slaves registering four at a time).
    reloading: tokio::sync::Mutex<()>,
}

impl Keyring {
    /// Loads the keys of this instance's role.
    pub async fn load<C: GenericClient>(client: &C, role: Role) -> Result<Self, tokio_postgres::Error> {
        let keyring = Self::default();
        match role {
            Role::Master => {
                let master_key: Option<String> =
                    client.query_one("SELECT master_key FROM instance WHERE id = 1", &[]).await?.get(0);
                let keyring = Self { master_key: master_key.as_deref().and_then(SigningKey::from_hex), ..keyring };
                keyring.reload_slaves(client).await?;
                Ok(keyring)
            }
            Role::Slave | Role::Standalone => {
                keyring.reload_link(client).await?;
                Ok(keyring)
            }
        }
    }

    /// The key the master signs commands to `slave` with.
    pub fn command_key_for(&self, slave: &str) -> Option<SigningKey> {
        self.master_key.as_ref().map(|k| command_key(k, slave))
    }

    pub fn slave(&self, id: &str) -> Option<SlaveEntry> {
        self.slaves.read().expect("keyring lock is never poisoned").get(id).cloned()
    }

    /// Re-reads the slaves the master accepts messages from.
    pub async fn reload_slaves<C: GenericClient>(&self, client: &C) -> Result<(), tokio_postgres::Error> {
        let _in_order = self.reloading.lock().await;
        let rows = client.query("SELECT id, slave_key, state FROM slaves WHERE state <> 'removed'", &[]).await?;
        let map = rows
            .iter()
            .filter_map(|r| {
                let key = SigningKey::from_hex(r.get(1))?;
                Some((r.get::<_, String>(0), SlaveEntry { key, removing: r.get::<_, &str>(2) == "removing" }))
            })
            .collect();
        *self.slaves.write().expect("keyring lock is never poisoned") = map;
        Ok(())
    }

    pub fn link(&self) -> Option<MasterLink> {
        self.link.read().expect("keyring lock is never poisoned").clone()
    }

    /// Re-reads this slave's master link.
    pub async fn reload_link<C: GenericClient>(&self, client: &C) -> Result<(), tokio_postgres::Error> {
        let _in_order = self.reloading.lock().await;
        let link = client
            .query_opt(
                "SELECT master_id, address, slave_key, command_key, registered_at FROM master_link WHERE id = 1",
                &[],
            )
            .await?
            .and_then(|r| {
                Some(MasterLink {
                    master_id: r.get(0),
                    address: r.get(1),
                    slave_key: SigningKey::from_hex(r.get(2))?,
                    command_key: SigningKey::from_hex(r.get(3))?,
                    registered_at: r.get(4),
                })
            });
        *self.link.write().expect("keyring lock is never poisoned") = link;
        Ok(())
    }
}

/// Makes sure a master has its key (created at its first start).
pub async fn ensure_master_key<C: GenericClient>(client: &C) -> Result<(), tokio_postgres::Error> {
    let key = SigningKey::generate().to_hex();
    client.execute("UPDATE instance SET master_key = $1 WHERE id = 1 AND master_key IS NULL", &[&key]).await?;
    Ok(())
}

/// Replication batches a master applies at once. The benchmark measured 1,
/// 3 and 5 (`bench/README.md`, change 9).
pub const REPLICATION_APPLIERS: usize = 5;

/// Runs the hierarchy services of this instance until shutdown: on a master
/// the status and replication consumers; on a stand-alone, whatever a slave needs whenever it
/// is one (registration starts them, unregistering stops them).
pub async fn run(state: SharedState, broker: Arc<Broker>, shutdown: Shutdown) {
    if state.role() == Role::Master {
        let (status_queue, replication_queue) =
            (state.site.master_status_queue(), state.site.master_replication_queue());
        let mut status = consumer_settings(&state, status_queue.name);
        status.declare = Some(status_queue.spec);
        // One batch per transaction, a few applied at once (batches of
        // different slaves, on their own connections): batches are large
        // and their apply is mostly database time.
        let mut replication = consumer_settings(&state, replication_queue.name);
        replication.concurrency = REPLICATION_APPLIERS;
        replication.prefetch = REPLICATION_APPLIERS as u16 + 2;
        replication.batch_max = 1;
        replication.declare = Some(replication_queue.spec);
        tokio::join!(
            consumer::run(
                broker.clone(),
                status,
                Arc::new(slaves::StatusInbox { state: state.clone() }),
                state.hierarchy_metrics.clone(),
                shutdown.clone(),
            ),
            consumer::run(
                broker,
                replication,
                Arc::new(ReplicationInbox { state: state.clone() }),
                state.replication_metrics.clone(),
                shutdown,
            ),
        );
        return;
    }
    let mut role = state.watch_role();
    loop {
        let current = *role.borrow_and_update();
        if current == Role::Slave {
            let stop = Shutdown::new();
            let slave_side = run_slave_side(state.clone(), broker.clone(), stop.clone());
            tokio::pin!(slave_side);
            tokio::select! {
                _ = &mut slave_side => {}
                _ = shutdown.wait() => { stop.trigger(); slave_side.await; return; }
                _ = async { role.wait_for(|r| *r != Role::Slave).await.map(|_| ()) } => { stop.trigger(); slave_side.await; }
            }
        } else {
            tokio::select! {
                _ = shutdown.wait() => return,
                changed = role.changed() => if changed.is_err() { return },
            }
        }
    }
}

/// The command consumer, the reporter and the replicator of a slave, until `stop`.
async fn run_slave_side(state: SharedState, broker: Arc<Broker>, stop: Shutdown) {
    let queue = state.site.topology.slave_commands_queue(&state.site.instance);
    let settings = consumer_settings(&state, queue);
    let handler = Arc::new(commands::CommandInbox { state: state.clone() });
    tracing::info!(instance = %state.site.instance, "Slave services started.");
    tokio::join!(
        consumer::run(broker.clone(), settings, handler, state.hierarchy_metrics.clone(), stop.clone()),
        reporter::run(state.clone(), broker.clone(), stop.clone()),
        replicator::run(state.clone(), broker, stop),
    );
    tracing::info!(instance = %state.site.instance, "Slave services stopped.");
}

fn consumer_settings(state: &SharedState, queue: String) -> ConsumerSettings {
    ConsumerSettings {
        queue,
        dead_letter_exchange: state.site.topology.dead_letter_exchange(),
        prefetch: state.settings.service.prefetch,
        batch_max: 200,
        // No waiting for more: a command or a replication batch goes on at
        // once (what arrived meanwhile still forms a batch). Every batch
        // paid 20 ms here before, most of a policy's fan-out time.
        linger: Duration::ZERO,
        concurrency: 1,
        declare: None,
    }
}
