//! `<ns>.master.replication` and `<ns>.master.replication.live`: the
//! slaves' replication batches, applied by [`crate::replication::apply`], a
//! few at once. The two lanes ([`Lane`]) have consumers of their own, so a
//! caught-up slave's batch is applied while the bulk of slaves draining a
//! backlog still waits.

use std::sync::Arc;

use lapin::message::Delivery;
use rampart_shared::{
    amqp::{
        consumer::{self, ApplyError, BatchHandler},
        Broker,
    },
    envelope::Rejection,
    replication::{kind, Lane, ReplicationBatch, MAX_REPLICATION_BYTES},
    Shutdown,
};

use crate::{
    replication::apply::{self, Inbound, LIVE_REPLICATION_APPLIERS, REPLICATION_APPLIERS},
    state::SharedState,
};

/// Consumes the slaves' replication batches, both lanes, until shutdown.
pub(super) async fn run(state: SharedState, broker: Arc<Broker>, shutdown: Shutdown) {
    tokio::join!(
        lane(state.clone(), broker.clone(), shutdown.clone(), Lane::Bulk),
        lane(state, broker, shutdown, Lane::Live),
    );
}

async fn lane(state: SharedState, broker: Arc<Broker>, shutdown: Shutdown, lane: Lane) {
    let (queue, appliers, metrics) = match lane {
        Lane::Bulk => (state.site.master_replication_queue(), REPLICATION_APPLIERS, &state.replication_metrics),
        Lane::Live => {
            (state.site.master_live_replication_queue(), LIVE_REPLICATION_APPLIERS, &state.live_replication_metrics)
        }
    };
    let metrics = metrics.clone();
    // One batch per transaction, a few applied at once (batches of
    // different slaves, on their own connections): batches are large
    // and their apply is mostly database time.
    let mut settings = super::settings(&state, queue.name);
    settings.concurrency = appliers;
    settings.prefetch = appliers as u16 + 2;
    settings.batch_max = 1;
    settings.declare = Some(queue.spec);
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
