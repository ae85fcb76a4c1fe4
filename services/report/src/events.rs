//! The consumer of `<ns>.report.events`: the master's signed events into
//! the read model.
//!
//! An event is trusted only if it carries a valid signature by the event
//! key; anything else (unsigned, forged, malformed, unknown kind, oversized)
//! is dead-lettered with the reason and the consumer carries on. A batch of
//! events is applied in one transaction, acked after it commits.

use deadpool_postgres::Pool;
use lapin::message::Delivery;
use rampart_shared::{
    amqp::consumer::{ApplyError, BatchHandler},
    envelope::{header_str, Rejection, SIGNATURE_HEADER},
    report::events::{kind, HealthRoster, SlaveSummary, MAX_EVENT_BYTES},
    signing::SigningKey,
    topology::NameSegment,
    Envelope,
};

/// A verified event.
pub enum Event {
    Summary(Box<SlaveSummary>),
    Roster(HealthRoster),
}

impl Event {
    fn seq(&self) -> i64 {
        match self {
            Event::Summary(s) => s.seq,
            Event::Roster(r) => r.seq,
        }
    }
}

pub struct EventInbox {
    pub pool: Pool,
    pub key: SigningKey,
}

impl BatchHandler for EventInbox {
    type Message = Event;

    fn decode(&self, delivery: &Delivery) -> Result<Event, Rejection> {
        let amqp_type = delivery.properties.kind().as_ref().map(|k| k.as_str());
        let envelope = Envelope::decode_limited(&delivery.data, amqp_type, MAX_EVENT_BYTES)?;
        let signature = header_str(&delivery.properties, SIGNATURE_HEADER).ok_or(Rejection::BadSignature)?;
        if !self.key.verify(&delivery.data, signature) {
            return Err(Rejection::BadSignature);
        }
        let invalid = |detail: String| Rejection::InvalidBody { kind: envelope.kind.clone(), detail };
        match envelope.kind.as_str() {
            kind::SLAVE_SUMMARY => {
                let summary: SlaveSummary = envelope.body()?;
                NameSegment::parse(&summary.slave).map_err(|e| invalid(format!("slave: {e}")))?;
                if summary.health.slave != summary.slave {
                    return Err(invalid(format!(
                        "health is of '{}', not of '{}'",
                        summary.health.slave, summary.slave
                    )));
                }
                Ok(Event::Summary(Box::new(summary)))
            }
            kind::HEALTH_ROSTER => {
                let roster: HealthRoster = envelope.body()?;
                for h in &roster.slaves {
                    NameSegment::parse(&h.slave).map_err(|e| invalid(format!("slave: {e}")))?;
                }
                Ok(Event::Roster(roster))
            }
            other => Err(Rejection::UnknownKind(other.to_owned())),
        }
    }

    async fn apply(&self, batch: &[Event]) -> Result<(), ApplyError> {
        apply(&self.pool, batch).await.map_err(ApplyError::classify)
    }
}

async fn apply(pool: &Pool, batch: &[Event]) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let mut events: Vec<&Event> = batch.iter().collect();
    events.sort_by_key(|e| e.seq());
    for event in events {
        match event {
            Event::Summary(s) => {
                crate::read_model::apply_summary(&tx, s).await?;
                tracing::debug!(slave_id = %s.slave, seq = s.seq, site = s.site.is_some(), tasks = s.tasks.len(), "Applied a slave summary.");
            }
            Event::Roster(r) => {
                let applied = crate::read_model::apply_roster(&tx, r).await?;
                tracing::debug!(seq = r.seq, slaves = r.slaves.len(), applied, "Applied a slave roster.");
            }
        }
    }
    tx.commit().await?;
    Ok(())
}
