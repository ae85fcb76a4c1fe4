//! Where messages come in: every queue this server consumes, with its
//! handler, all started from [`run`].
//!
//! * a stand-alone or slave consumes its agents' inbox ([`agents`]);
//! * a slave also consumes its master's commands ([`commands`]) and runs,
//!   beside them, the reporter and the replicator that answer the master
//!   (started when the server registers, stopped when it leaves);
//! * a master consumes its slaves' reports ([`status`]) and replication
//!   batches ([`replication`]).
//!
//! A handler decodes and verifies each delivery (who sent it, its
//! signature, its shape) and hands what passed to the domain, which
//! applies a batch in one transaction; the delivery is acked only after
//! that commit (`rampart_shared::amqp::consumer`). What can never apply is
//! dead-lettered and recorded in the audit ([`crate::refused`]).

mod agents;
mod commands;
mod replication;
mod status;

use std::{sync::Arc, time::Duration};

use lapin::message::Delivery;
use rampart_shared::{
    amqp::{consumer::ConsumerSettings, Broker},
    envelope::{self, header_str, Rejection, SIGNATURE_HEADER},
    replication::Lane,
    topology::Topology,
    Envelope, Shutdown,
};

use crate::{
    hierarchy::{reporter, SlaveEntry},
    refused,
    replication::replicator,
    role::Role,
    state::{AppState, SharedState},
};

/// Runs every consumer of this server until shutdown: on a master the
/// status and replication consumers; on a stand-alone or slave the agent
/// inbox, and whatever a slave needs whenever it is one (registration
/// starts it, unregistering stops it).
pub async fn run(state: SharedState, broker: Arc<Broker>, shutdown: Shutdown) {
    if state.role() == Role::Master {
        tokio::join!(
            status::run(state.clone(), broker.clone(), shutdown.clone()),
            replication::run(state.clone(), broker, shutdown),
        );
    } else {
        tokio::join!(
            agents::run(state.clone(), broker.clone(), shutdown.clone()),
            follow_role(state, broker, shutdown),
        );
    }
}

/// Runs the slave side while this site is a slave.
async fn follow_role(state: SharedState, broker: Arc<Broker>, shutdown: Shutdown) {
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
    tracing::info!(instance = %state.site.instance, "Slave services started.");
    tokio::join!(
        commands::run(state.clone(), broker.clone(), stop.clone()),
        reporter::run(state.clone(), broker.clone(), stop.clone()),
        replicator::run(state.clone(), broker, stop),
    );
    tracing::info!(instance = %state.site.instance, "Slave services stopped.");
}

/// The settings every consumer of this server starts from.
fn settings(state: &AppState, queue: String) -> ConsumerSettings {
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

/// Decodes a message from a slave and checks that the routing key names the
/// sender, that the sender is a slave of this master, and its signature.
fn authenticate_slave(
    state: &AppState,
    delivery: &Delivery,
    limit: usize,
) -> Result<(Envelope, SlaveEntry), Rejection> {
    let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
    let encoding = envelope::content_encoding(&delivery.properties);
    let envelope = Envelope::decode_wire(&delivery.data, encoding, kind, limit)?;
    let claimed = Topology::slave_of_key(delivery.routing_key.as_str()).unwrap_or_default();
    if envelope.from != claimed {
        return Err(Rejection::UnknownSender(format!("{} (published as slave '{claimed}')", envelope.from)));
    }
    let entry = state.keyring.slave(&envelope.from).ok_or_else(|| {
        Rejection::UnknownSender(format!("{} (not a registered slave of this master)", envelope.from))
    })?;
    let signature = header_str(&delivery.properties, SIGNATURE_HEADER).ok_or(Rejection::BadSignature)?;
    if !entry.key.verify(&delivery.data, signature) {
        return Err(Rejection::BadSignature);
    }
    Ok((envelope, entry))
}

/// Records a message refused on `<ns>.master.status` or one of the
/// replication queues in the audit, with the slave its routing key names.
async fn record_refused_from_slave(state: &AppState, delivery: &Delivery, reason: &str) {
    let topology = &state.site.topology;
    let key = delivery.routing_key.as_str();
    let queue = match delivery.exchange.as_str() {
        "" => key.to_owned(),
        exchange if exchange == topology.replication_exchange() => match Topology::replication_lane_of_key(key) {
            Lane::Live => topology.master_live_replication_queue(),
            Lane::Bulk => topology.master_replication_queue(),
        },
        _ => topology.master_status_queue(),
    };
    let slave = Topology::slave_of_key(delivery.routing_key.as_str());
    refused::record(state, refused::Refusal::of_delivery(&queue, delivery, slave, reason)).await;
}
