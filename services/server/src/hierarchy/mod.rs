//! Master and slaves: registration, fan-out of policies and tasks, receipts.
//!
//! Master side: [`tokens`] hands out single-use registration tokens,
//! [`registration`] accepts a stand-alone as a slave, [`slaves`] lists and
//! removes slaves, [`status`] applies their reports (heartbeats, receipts,
//! leaving), [`fanout`] sends master policies and tasks to the slaves and
//! keeps one receipt per slave; [`to_slaves`] is the way every command
//! reaches a slave's queue; [`link_users`] makes the broker users of slaves
//! whose sites run brokers of their own.
//!
//! Slave side: [`link`] registers to a master over HTTP and unregisters,
//! [`broker_links`] links this site's own broker to the master's (shovels)
//! and [`link_keeper`] repairs those links, [`departure`] retires them
//! after leaving without losing the departure,
//! [`commands`] applies what the master sends, [`reporter`] sends
//! heartbeats and the progress of master policies and tasks. Replication
//! runs beside them ([`crate::replication`]); the queues are consumed in
//! [`crate::consumers`].
//!
//! Every message between master and slave is signed (HMAC-SHA256) with a key
//! of that one slave; the [`Keyring`] holds the keys in memory so consumers
//! can check signatures before anything touches the database.

pub mod broker_links;
pub mod commands;
pub mod departure;
pub mod fanout;
pub mod link;
pub mod link_keeper;
pub mod link_repairs;
pub mod link_users;
mod master_call;
pub mod registration;
pub mod reporter;
pub mod slaves;
pub mod status;
pub mod to_slaves;
pub mod tokens;

use std::{collections::HashMap, sync::RwLock, time::Duration};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::{hierarchy::command_key, signing::SigningKey};

use serde::Serialize;

use crate::role::Role;

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

/// A slave's master as the API shows it (never its keys).
#[derive(Debug, Serialize)]
pub struct MasterLinkView {
    pub address: String,
    pub id: String,
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

    /// This slave's master, if it has one, as the API shows it.
    pub fn master_view(&self) -> Option<MasterLinkView> {
        self.link().map(|l| MasterLinkView { address: l.address, id: l.master_id, registered_at: l.registered_at })
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
