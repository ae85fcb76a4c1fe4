//! `<ns>.slave.<id>.commands`: what this slave's master sends (policies,
//! tasks, replication answers and requests, unregistering), applied by
//! [`crate::hierarchy::commands`].
//!
//! A command is trusted only if it is signed with this slave's command key
//! and comes from the master it registered to.

use std::sync::Arc;

use lapin::message::Delivery;
use rampart_shared::{
    amqp::{
        consumer::{self, ApplyError, BatchHandler},
        Broker,
    },
    envelope::{header_str, Rejection, SIGNATURE_HEADER},
    hierarchy::MasterCommand,
    Envelope, Shutdown,
};

use crate::{hierarchy::commands, refused, state::SharedState};

/// Consumes this slave's command queue until `stop`.
pub(super) async fn run(state: SharedState, broker: Arc<Broker>, stop: Shutdown) {
    let queue = state.site.topology.slave_commands_queue(&state.site.instance);
    let settings = super::settings(&state, queue);
    let metrics = state.hierarchy_metrics.clone();
    consumer::run(broker, settings, Arc::new(CommandInbox { state }), metrics, stop).await
}

struct CommandInbox {
    state: SharedState,
}

impl BatchHandler for CommandInbox {
    type Message = MasterCommand;

    fn decode(&self, delivery: &Delivery) -> Result<MasterCommand, Rejection> {
        let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
        let envelope = Envelope::decode(&delivery.data, kind)?;
        let link = self
            .state
            .keyring
            .link()
            .ok_or_else(|| Rejection::UnknownSender(format!("{} (this server has no master)", envelope.from)))?;
        if envelope.from != link.master_id {
            return Err(Rejection::UnknownSender(format!(
                "{} (this server's master is '{}')",
                envelope.from, link.master_id
            )));
        }
        let signature = header_str(&delivery.properties, SIGNATURE_HEADER).ok_or(Rejection::BadSignature)?;
        if !link.command_key.verify(&delivery.data, signature) {
            return Err(Rejection::BadSignature);
        }
        MasterCommand::from_envelope(&envelope)
    }

    async fn apply(&self, batch: &[MasterCommand]) -> Result<(), ApplyError> {
        commands::apply_batch(&self.state, batch).await.map_err(ApplyError::classify)
    }

    async fn refused(&self, delivery: &Delivery, reason: &str) {
        let queue = self.state.site.topology.slave_commands_queue(&self.state.site.instance);
        refused::record(&self.state, refused::Refusal::of_delivery(&queue, delivery, None, reason)).await;
    }
}
