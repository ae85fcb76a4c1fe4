//! Everything the fleet sends, on its way to the site exchange.
//!
//! Two lanes. *Events* (detections, task results, deployments, discovery)
//! are wrapped in their envelope when queued, so a retry resends the very
//! same message (same id and seq) and the server can drop the duplicate.
//! *Heartbeats* are state snapshots: the fleet keeps a de-duplicated list of
//! endpoints that owe one and the outbox builds them only when a batch has
//! room, so a broker outage never piles up stale heartbeats in memory.
//!
//! Each batch (up to [`BATCH_MAX`] messages, events first so a detection
//! precedes the heartbeat that reflects it) goes through
//! [`Publisher::publish_batch`]: all published, then all confirms awaited.
//! An unroutable message (no site inbox is bound yet) is logged, not fatal:
//! its heartbeat goes again next round, an event is parked and retried
//! later. A broker failure keeps everything for a retry after a back-off.

use std::{collections::VecDeque, time::Duration};

use rampart_shared::{
    amqp::publisher::{Delivered, Outgoing, Publisher},
    messages::AgentMessage,
    topology::{NameSegment, Topology},
    Shutdown,
};
use tokio::time::Instant;

use crate::fleet::Fleet;

/// Most messages published before waiting for their confirms.
pub const BATCH_MAX: usize = 500;
/// Most events held while the broker is unreachable; the oldest go first.
const MAX_EVENTS: usize = 100_000;
/// Most unroutable events held for a retry.
const MAX_PARKED: usize = 10_000;
/// Least time between two warnings about unroutable messages.
const UNROUTABLE_WARNING_EVERY: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Running totals for the periodic summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Confirmed and routed to a queue.
    pub published: u64,
    /// Confirmed but routed nowhere (no site inbox bound).
    pub unroutable: u64,
    /// Events thrown away because too many were waiting.
    pub dropped: u64,
    pub broker_errors: u64,
}

/// The messages waiting for the broker, and how to send them.
#[derive(Debug)]
pub struct Outbox {
    publisher: Publisher,
    exchange: String,
    site: String,
    /// The enrolled identity's broker user, set as the AMQP `user_id` of
    /// every message (the broker checks it; the site requires it).
    user_id: Option<String>,
    next_seq: u64,
    events: VecDeque<Outgoing>,
    /// Unroutable events, waiting for [`Outbox::release_parked`].
    parked: VecDeque<Outgoing>,
    backoff: Duration,
    retry_at: Option<Instant>,
    /// Unroutable messages not yet mentioned in a warning.
    unroutable_unreported: u64,
    last_unroutable_warning: Option<Instant>,
    stats: OutboxStats,
}

impl Outbox {
    /// `first_seq` starts the process-wide sequence numbers; taking it from
    /// the clock keeps them increasing across restarts too.
    pub fn new(
        publisher: Publisher,
        topology: &Topology,
        site: &NameSegment,
        first_seq: u64,
        user_id: Option<String>,
    ) -> Self {
        Self {
            publisher,
            exchange: topology.site_exchange(),
            site: site.as_str().to_owned(),
            user_id,
            next_seq: first_seq,
            events: VecDeque::new(),
            parked: VecDeque::new(),
            backoff: FIRST_BACKOFF,
            retry_at: None,
            unroutable_unreported: 0,
            last_unroutable_warning: None,
            stats: OutboxStats::default(),
        }
    }

    pub fn stats(&self) -> OutboxStats {
        self.stats
    }

    /// Events waiting (queued or parked).
    pub fn waiting(&self) -> usize {
        self.events.len() + self.parked.len()
    }

    /// True while a broker failure is being waited out.
    pub fn is_backing_off(&self) -> bool {
        self.retry_at.is_some_and(|at| Instant::now() < at)
    }

    /// Queues events (never heartbeats: those are owed by the fleet).
    pub fn extend(&mut self, messages: impl IntoIterator<Item = AgentMessage>) {
        for message in messages {
            let outgoing = self.outgoing(&message);
            push_bounded(&mut self.events, outgoing, MAX_EVENTS, &mut self.stats.dropped);
        }
    }

    /// Gives parked (unroutable) events another chance.
    pub fn release_parked(&mut self) {
        while let Some(outgoing) = self.parked.pop_front() {
            push_bounded(&mut self.events, outgoing, MAX_EVENTS, &mut self.stats.dropped);
        }
    }

    /// Publishes queued events and owed heartbeats in batches until none is
    /// left, the broker fails (then backs off) or `shutdown` is triggered.
    pub async fn flush(&mut self, fleet: &mut Fleet, shutdown: Option<&Shutdown>) {
        if self.is_backing_off() {
            return;
        }
        while !shutdown.is_some_and(Shutdown::is_triggered) {
            let events = self.events.len().min(BATCH_MAX);
            let mut batch: Vec<Outgoing> = self.events.iter().take(events).cloned().collect();
            let heartbeats = fleet.take_heartbeats(BATCH_MAX - events);
            let heartbeat_senders: Vec<String> = heartbeats.iter().map(|h| h.endpoint_id.clone()).collect();
            batch.extend(heartbeats.into_iter().map(|h| self.outgoing(&AgentMessage::Heartbeat(h))));
            if batch.is_empty() {
                return;
            }
            match self.publisher.publish_batch(batch).await {
                Ok(outcomes) => {
                    self.events.drain(..events);
                    self.backoff = FIRST_BACKOFF;
                    self.retry_at = None;
                    self.record(outcomes, events);
                }
                Err(error) => {
                    for endpoint_id in &heartbeat_senders {
                        fleet.requeue_heartbeat(endpoint_id);
                    }
                    self.stats.broker_errors += 1;
                    tracing::warn!(%error, retry_in = ?self.backoff, waiting = self.waiting(), "Cannot publish to the broker; keeping the messages for a retry.");
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    return;
                }
            }
        }
    }

    /// Counts a batch's outcomes; the first `events` of it were events.
    fn record(&mut self, outcomes: Vec<(Outgoing, Delivered)>, events: usize) {
        let mut unroutable = 0;
        for (i, (outgoing, delivered)) in outcomes.into_iter().enumerate() {
            match delivered {
                Delivered::Confirmed => self.stats.published += 1,
                Delivered::Unroutable => {
                    unroutable += 1;
                    if i < events {
                        push_bounded(&mut self.parked, outgoing, MAX_PARKED, &mut self.stats.dropped);
                    }
                }
            }
        }
        if unroutable == 0 {
            return;
        }
        self.stats.unroutable += unroutable;
        self.unroutable_unreported += unroutable;
        let quiet = self.last_unroutable_warning.is_some_and(|at| at.elapsed() < UNROUTABLE_WARNING_EVERY);
        if !quiet {
            tracing::warn!(
                unroutable = self.unroutable_unreported,
                exchange = %self.exchange,
                site = %self.site,
                "No site inbox is bound for these messages; heartbeats go again next round, other messages are retried."
            );
            self.unroutable_unreported = 0;
            self.last_unroutable_warning = Some(Instant::now());
        }
    }

    fn outgoing(&mut self, message: &AgentMessage) -> Outgoing {
        let seq = self.next_seq;
        self.next_seq += 1;
        let envelope = message.to_envelope(seq);
        let key = Topology::site_key(&self.site, message.kind());
        let mut outgoing = Outgoing::envelope(self.exchange.clone(), key, &envelope, None);
        if let Some(user) = &self.user_id {
            outgoing.properties = outgoing.properties.with_user_id(user.as_str().into());
        }
        outgoing
    }
}

fn push_bounded(queue: &mut VecDeque<Outgoing>, outgoing: Outgoing, max: usize, dropped: &mut u64) {
    if queue.len() >= max {
        queue.pop_front();
        *dropped += 1;
    }
    queue.push_back(outgoing);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::{FleetConfig, Moment};
    use rampart_shared::{
        amqp::Broker,
        messages::{DeployResult, Discovery},
        Secret,
    };
    use uuid::Uuid;

    #[test]
    fn envelopes_speak_for_the_right_sender() {
        let messages = [
            AgentMessage::Discovery(Discovery { reported_by: "sim1-00001".into(), computers: vec![] }),
            AgentMessage::DeployResult(DeployResult {
                deployment_id: Uuid::new_v4(),
                computer_id: "sim1-u0001".into(),
                succeeded: true,
                message: None,
            }),
        ];
        for (seq, message) in messages.into_iter().enumerate() {
            let e = message.to_envelope(seq as u64 + 10);
            assert_eq!(e.seq, seq as u64 + 10);
            assert_eq!(e.kind, message.kind());
            assert_eq!(AgentMessage::from_envelope(&e).unwrap(), message);
        }
    }

    #[tokio::test]
    async fn a_broker_failure_keeps_everything_for_a_retry() {
        // Nothing listens on port 1: every publish fails at once.
        let url = Secret::new("amqp://guest:guest@127.0.0.1:1/%2f".to_owned());
        let publisher = Publisher::new(std::sync::Arc::new(Broker::new(url, "outbox-test")));
        let topology = Topology::new(&NameSegment::parse("t_outbox").unwrap());
        let site = NameSegment::parse("paris").unwrap();
        let mut outbox = Outbox::new(publisher, &topology, &site, 1, None);
        let config = FleetConfig {
            name: "sim1".into(),
            seed: 1,
            endpoints: 20,
            unmanaged: 2,
            heartbeat_interval: Duration::from_secs(30),
            detections_per_hour: 0.0,
            scan_duration: Duration::from_secs(2),
            discovery_interval: Duration::from_secs(300),
        };
        let wall = chrono::Utc::now();
        let mut fleet = Fleet::new(config, wall.date_naive());
        outbox.extend(fleet.tick(Moment { elapsed: Duration::ZERO, wall }));
        let queued = outbox.events[0].clone();

        outbox.flush(&mut fleet, None).await;
        assert_eq!(outbox.stats().broker_errors, 1);
        assert_eq!((outbox.waiting(), fleet.heartbeats_owed()), (1, 20));
        assert_eq!(outbox.events[0].payload, queued.payload, "a retry resends the same envelope");
        assert!(outbox.is_backing_off());
        outbox.flush(&mut fleet, None).await;
        assert_eq!(outbox.stats().broker_errors, 1, "no attempt while backing off");
    }
}
