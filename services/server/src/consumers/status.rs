//! `<ns>.master.status`: the slaves' signed reports (heartbeats, receipts,
//! leaving), applied by [`crate::hierarchy::status`].

use std::sync::Arc;

use lapin::message::Delivery;
use rampart_shared::{
    amqp::{
        consumer::{self, ApplyError, BatchHandler},
        Broker,
    },
    envelope::{self, Rejection},
    hierarchy::SlaveReport,
    Shutdown,
};

use crate::{
    hierarchy::status::{self, Inbound},
    state::SharedState,
};

/// Consumes the slaves' reports until shutdown.
pub(super) async fn run(state: SharedState, broker: Arc<Broker>, shutdown: Shutdown) {
    let queue = state.site.master_status_queue();
    let mut settings = super::settings(&state, queue.name);
    settings.declare = Some(queue.spec);
    let metrics = state.hierarchy_metrics.clone();
    consumer::run(broker, settings, Arc::new(StatusInbox { state }), metrics, shutdown).await
}

struct StatusInbox {
    state: SharedState,
}

impl BatchHandler for StatusInbox {
    type Message = Inbound;

    fn decode(&self, delivery: &Delivery) -> Result<Inbound, Rejection> {
        let (envelope, entry) = super::authenticate_slave(&self.state, delivery, envelope::MAX_MESSAGE_BYTES)?;
        let report = SlaveReport::from_envelope(&envelope)?;
        if entry.removing && !matches!(report, SlaveReport::Unregistered(_)) {
            return Err(Rejection::UnknownSender(format!("{} (removed from this master)", envelope.from)));
        }
        Ok(Inbound {
            slave: envelope.from,
            seq: i64::try_from(envelope.seq).unwrap_or(i64::MAX),
            sent_at: envelope.sent_at,
            report,
        })
    }

    async fn apply(&self, batch: &[Inbound]) -> Result<(), ApplyError> {
        status::apply(&self.state, batch).await.map_err(ApplyError::classify)
    }

    async fn refused(&self, delivery: &Delivery, reason: &str) {
        super::record_refused_from_slave(&self.state, delivery, reason).await;
    }
}
