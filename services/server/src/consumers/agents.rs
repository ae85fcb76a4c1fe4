//! `<ns>.site.<instance>.inbox`: what the agents of this site report
//! (heartbeats, detections, discovery, task and deployment results),
//! applied by [`crate::inbox`]. Each message must come from the agent
//! identity that owns its endpoint ([`crate::agents::owners`]).

use std::{sync::Arc, time::Duration};

use lapin::message::Delivery;
use rampart_shared::{
    amqp::{
        consumer::{self, ApplyError, BatchHandler},
        Broker,
    },
    envelope::Rejection,
    messages::AgentMessage,
    Envelope, Shutdown,
};

use crate::{
    inbox::{self, Inbound},
    refused,
    state::{AppState, SharedState},
};

/// Consumes the agent inbox until shutdown.
pub(super) async fn run(state: SharedState, broker: Arc<Broker>, shutdown: Shutdown) {
    let inbox = state.site.inbox_queue();
    let mut settings = super::settings(&state, inbox.name);
    // Agents send many small messages: a batch waits a little to grow.
    settings.batch_max = 500;
    settings.linger = Duration::from_millis(20);
    settings.declare = Some(inbox.spec);
    let metrics = state.inbox_metrics.clone();
    consumer::run(broker, settings, Arc::new(AgentInbox { state }), metrics, shutdown).await
}

struct AgentInbox {
    state: SharedState,
}

impl BatchHandler for AgentInbox {
    type Message = Inbound;

    fn decode(&self, delivery: &Delivery) -> Result<Inbound, Rejection> {
        let kind = delivery.properties.kind().as_ref().map(|k| k.as_str());
        let envelope = Envelope::decode(&delivery.data, kind)?;
        let message = AgentMessage::from_envelope(&envelope)?;
        inbox::validate(&message)?;
        // The broker refuses a publish whose user_id is not its connection's
        // user, so this is the identity that sent it.
        let user_id = delivery.properties.user_id().as_ref().map(|u| u.as_str());
        self.state.agents.check(user_id, &message, self.state.settings.require_agent_identity)?;
        Ok(Inbound { sent_at: envelope.sent_at, message })
    }

    async fn apply(&self, batch: &[Inbound]) -> Result<(), ApplyError> {
        inbox::apply_batch(&self.state, batch).await.map_err(ApplyError::classify)
    }

    async fn refused(&self, delivery: &Delivery, reason: &str) {
        record_refused(&self.state, delivery, reason).await
    }
}

async fn record_refused(state: &AppState, delivery: &Delivery, reason: &str) {
    let queue = state.site.topology.site_inbox(&state.site.instance);
    refused::record(state, refused::Refusal::of_delivery(&queue, delivery, None, reason)).await;
}
