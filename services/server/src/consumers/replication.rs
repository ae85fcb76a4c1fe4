//! `<ns>.master.replication`: the slaves' replication batches, applied by
//! [`crate::replication::apply`], a few at once.

use std::sync::Arc;

use lapin::message::Delivery;
use rampart_shared::{
    amqp::{
        consumer::{self, ApplyError, BatchHandler},
        Broker,
    },
    envelope::Rejection,
    replication::{kind, ReplicationBatch, MAX_REPLICATION_BYTES},
    Shutdown,
};

use super::REPLICATION_APPLIERS;
use crate::{
    replication::apply::{self, Inbound},
    state::SharedState,
};

/// Consumes the slaves' replication batches until shutdown.
pub(super) async fn run(state: SharedState, broker: Arc<Broker>, shutdown: Shutdown) {
    let queue = state.site.master_replication_queue();
    // One batch per transaction, a few applied at once (batches of
    // different slaves, on their own connections): batches are large
    // and their apply is mostly database time.
    let mut settings = super::settings(&state, queue.name);
    settings.concurrency = REPLICATION_APPLIERS;
    settings.prefetch = REPLICATION_APPLIERS as u16 + 2;
    settings.batch_max = 1;
    settings.declare = Some(queue.spec);
    let metrics = state.replication_metrics.clone();
    consumer::run(broker, settings, Arc::new(ReplicationInbox { state }), metrics, shutdown).await
}

struct ReplicationInbox {
    state: SharedState,
}

impl BatchHandler for ReplicationInbox {
    type Message = Inbound;

    fn decode(&self, delivery: &Delivery) -> Result<Inbound, Rejection> {
        let (envelope, entry) = super::authenticate_slave(&self.state, delivery, MAX_REPLICATION_BYTES)?;
        if entry.removing {
            return Err(Rejection::UnknownSender(format!("{} (removed from this master)", envelope.from)));
        }
        if envelope.kind != kind::BATCH {
            return Err(Rejection::UnknownKind(envelope.kind));
        }
        let batch: ReplicationBatch = envelope.body()?;
        apply::check_shape(&batch).map_err(|detail| Rejection::InvalidBody { kind: envelope.kind.clone(), detail })?;
        Ok(Inbound { slave: envelope.from, batch })
    }

    async fn apply(&self, batch: &[Inbound]) -> Result<(), ApplyError> {
        for inbound in batch {
            apply::apply_one(&self.state, inbound).await.map_err(ApplyError::classify)?;
        }
        Ok(())
    }

    async fn refused(&self, delivery: &Delivery, reason: &str) {
        super::record_refused_from_slave(&self.state, delivery, reason).await;
    }
}
