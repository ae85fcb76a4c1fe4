//! The simulated fleet: every computer's state and what happens to it as
//! time passes and commands arrive. Pure logic: no broker, no clock of its
//! own, no tokio. The runner calls [`Fleet::tick`] with the current
//! [`Moment`] and [`Fleet::apply`] with each command; both return the agent
//! messages to send. Heartbeats are not returned: they are a snapshot of the
//! current state, so the fleet keeps a de-duplicated queue of endpoints that
//! owe one and builds them when the outbox has room ([`Fleet::take_heartbeats`]).
//!
//! Real-time detections live in `detections.rs`, tasks in `tasks.rs` (with
//! the scan timers in `scans.rs`), policies and deployments in
//! `management.rs`.

mod detections;
mod management;
mod scans;
mod tasks;

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use chrono::{DateTime, NaiveDate, Utc};
use rampart_shared::messages::{AgentMessage, DiscoveredComputer, Discovery, EndpointCommand, Heartbeat};
use rand::{rngs::SmallRng, SeedableRng};

use crate::computer::{self, Endpoint};
use crate::settings::AgentSettings;
use scans::Scans;

/// What the fleet simulates; a subset of the settings.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub name: String,
    pub seed: u64,
    pub endpoints: u32,
    pub unmanaged: u32,
    pub heartbeat_interval: Duration,
    pub detections_per_hour: f64,
    pub scan_duration: Duration,
    pub discovery_interval: Duration,
}

impl FleetConfig {
    pub fn from_settings(s: &AgentSettings) -> Self {
        Self {
            name: s.name.as_str().to_owned(),
            seed: s.seed,
            endpoints: s.endpoints,
            unmanaged: s.unmanaged,
            heartbeat_interval: s.heartbeat_interval,
            detections_per_hour: s.detections_per_hour,
            scan_duration: s.scan_duration,
            discovery_interval: s.discovery_interval,
        }
    }
}

/// When a step happens: `elapsed` since the fleet started drives timers,
/// `wall` dates what the messages report.
#[derive(Clone, Copy, Debug)]
pub struct Moment {
    pub elapsed: Duration,
    pub wall: DateTime<Utc>,
}

impl Moment {
    pub fn today(&self) -> NaiveDate {
        self.wall.date_naive()
    }
}

/// Running totals for the periodic summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FleetStats {
    pub detections: u64,
    pub tasks_started: u64,
    pub tasks_finished: u64,
    pub tasks_cancelled: u64,
    pub policies_applied: u64,
    pub deployments: u64,
    /// Commands for computers this process does not simulate.
    pub commands_ignored: u64,
}

/// Every computer of one fleet process.
#[derive(Debug)]
pub struct Fleet {
    config: FleetConfig,
    /// Seeded: the same config and inputs give the same events.
    rng: SmallRng,
    /// Managed endpoints; index 0 is endpoint 1. Deployed computers append.
    endpoints: Vec<Endpoint>,
    /// Endpoint id -> position in `endpoints`.
    positions: HashMap<String, usize>,
    /// Computers without an agent, in discovery order.
    unmanaged: Vec<DiscoveredComputer>,
    /// Endpoints owing a heartbeat, each at most once (`owes_heartbeat`).
    heartbeat_queue: VecDeque<usize>,
    owes_heartbeat: Vec<bool>,
    /// The periodic round walks the endpoints in order; `ring_credit` holds
    /// the fraction of a heartbeat earned but not yet due.
    ring_cursor: usize,
    ring_credit: f64,
    last_tick: Duration,
    next_discovery: Duration,
    scans: Scans,
    stats: FleetStats,
}

impl Fleet {
    /// Generates the fleet as it is on `today`. Every endpoint owes its first
    /// heartbeat, so a server sees the whole fleet at once.
    pub fn new(config: FleetConfig, today: NaiveDate) -> Self {
        let endpoints: Vec<_> =
            (1..=config.endpoints).map(|i| Endpoint::generate(&config.name, config.seed, i, today)).collect();
        let unmanaged = (1..=config.unmanaged).map(|i| computer::discovered(&config.name, config.seed, i)).collect();
        let positions = endpoints.iter().enumerate().map(|(i, e)| (e.id.clone(), i)).collect();
        let count = endpoints.len();
        Self {
            rng: SmallRng::seed_from_u64(computer::fleet_seed(&config.name, config.seed)),
            config,
            endpoints,
            positions,
            unmanaged,
            heartbeat_queue: (0..count).collect(),
            owes_heartbeat: vec![true; count],
            ring_cursor: 0,
            ring_credit: 0.0,
            last_tick: Duration::ZERO,
            next_discovery: Duration::ZERO,
            scans: Scans::default(),
            stats: FleetStats::default(),
        }
    }

    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.positions.get(id).map(|&i| &self.endpoints[i])
    }

    /// Computers still without an agent.
    pub fn unmanaged(&self) -> &[DiscoveredComputer] {
        &self.unmanaged
    }

    pub fn stats(&self) -> FleetStats {
        self.stats
    }

    pub fn scans_running(&self) -> usize {
        self.scans.running()
    }

    /// Endpoints that owe a heartbeat.
    pub fn heartbeats_owed(&self) -> usize {
        self.heartbeat_queue.len()
    }

    /// Advances time to `now`: periodic heartbeats, real-time detections,
    /// finished scans and the periodic discovery.
    pub fn tick(&mut self, now: Moment) -> Vec<AgentMessage> {
        let step = now.elapsed.saturating_sub(self.last_tick);
        self.last_tick = self.last_tick.max(now.elapsed);
        let mut out = Vec::new();
        self.advance_heartbeat_round(step);
        self.realtime_detections(step, now, &mut out);
        for scan in self.scans.due(now.elapsed) {
            self.finish_scan(scan.endpoint, scan.task_id, scan.kind, now, &mut out);
        }
        if now.elapsed >= self.next_discovery {
            out.extend(self.discovery());
            self.next_discovery = now.elapsed + self.config.discovery_interval;
        }
        out
    }

    /// Applies a command addressed to `endpoint_id` (from the routing key).
    /// Commands for computers this process does not simulate change nothing.
    pub fn apply(&mut self, endpoint_id: &str, command: EndpointCommand, now: Moment) -> Vec<AgentMessage> {
        if let EndpointCommand::Deploy(deploy) = command {
            return self.deploy(deploy, now);
        }
        let Some(&pos) = self.positions.get(endpoint_id) else {
            self.stats.commands_ignored += 1;
            return Vec::new();
        };
        match command {
            EndpointCommand::Task(task) => self.start_task(pos, task, now),
            EndpointCommand::Policy(policy) => self.apply_policy(pos, policy),
            EndpointCommand::Cancel(cancel) => self.cancel(pos, cancel.task_id),
            EndpointCommand::Deploy(_) => Vec::new(),
        }
    }

    /// Endpoint 1's report of the computers without an agent.
    pub fn discovery(&self) -> Option<AgentMessage> {
        let reporter = self.endpoints.first().filter(|_| self.config.unmanaged > 0)?;
        Some(AgentMessage::Discovery(Discovery { reported_by: reporter.id.clone(), computers: self.unmanaged.clone() }))
    }

    /// Up to `max` heartbeats owed, oldest debt first, built from the
    /// current state.
    pub fn take_heartbeats(&mut self, max: usize) -> Vec<Heartbeat> {
        let count = max.min(self.heartbeat_queue.len());
        self.heartbeat_queue
            .drain(..count)
            .map(|pos| {
                self.owes_heartbeat[pos] = false;
                self.endpoints[pos].heartbeat()
            })
            .collect()
    }

    /// Owes a heartbeat again (its publish failed).
    pub fn requeue_heartbeat(&mut self, endpoint_id: &str) {
        if let Some(&pos) = self.positions.get(endpoint_id) {
            self.owe_heartbeat(pos, false);
        }
    }

    /// `urgent` heartbeats report a change and go before the periodic ones.
    fn owe_heartbeat(&mut self, pos: usize, urgent: bool) {
        if std::mem::replace(&mut self.owes_heartbeat[pos], true) {
            return;
        }
        if urgent {
            self.heartbeat_queue.push_front(pos);
        } else {
            self.heartbeat_queue.push_back(pos);
        }
    }

    /// Spreads one heartbeat per endpoint evenly over the interval.
    fn advance_heartbeat_round(&mut self, step: Duration) {
        let count = self.endpoints.len();
        if count == 0 {
            return;
        }
        self.ring_credit += step.as_secs_f64() * count as f64 / self.config.heartbeat_interval.as_secs_f64();
        let whole = self.ring_credit.floor();
        self.ring_credit -= whole;
        // After a long stall one full round is enough.
        for _ in 0..(whole as usize).min(count) {
            let pos = self.ring_cursor % count;
            self.ring_cursor = (pos + 1) % count;
            self.owe_heartbeat(pos, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rampart_shared::messages::{EndpointTask, TaskKind};
    use std::collections::HashSet;
    use uuid::Uuid;

    /// 10 s heartbeats, no real-time detections, 2 s quick scans, 3 unmanaged.
    pub(super) fn config(endpoints: u32) -> FleetConfig {
        FleetConfig {
            name: "sim1".into(),
            seed: 1,
            endpoints,
            unmanaged: 3,
            heartbeat_interval: Duration::from_secs(10),
            detections_per_hour: 0.0,
            scan_duration: Duration::from_secs(2),
            discovery_interval: Duration::from_secs(300),
        }
    }

    pub(super) fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
    }

    /// `secs` after the fleet started, on [`today`].
    pub(super) fn at(secs: f64) -> Moment {
        let elapsed = Duration::from_secs_f64(secs);
        let start = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
        Moment { elapsed, wall: start + elapsed }
    }

    /// A fleet past its start: first heartbeats and discovery sent.
    pub(super) fn started(config: FleetConfig) -> Fleet {
        let mut fleet = Fleet::new(config, today());
        fleet.take_heartbeats(usize::MAX);
        fleet.tick(at(0.0));
        fleet
    }

    fn ids(heartbeats: &[Heartbeat]) -> Vec<&str> {
        heartbeats.iter().map(|h| h.endpoint_id.as_str()).collect()
    }

    #[test]
    fn every_endpoint_owes_its_first_heartbeat_at_once() {
        let mut fleet = Fleet::new(config(50), today());
        assert_eq!(fleet.heartbeats_owed(), 50);
        let first = fleet.take_heartbeats(20);
        assert_eq!(ids(&first)[..2], ["sim1-00001", "sim1-00002"]);
        assert_eq!(fleet.take_heartbeats(100).len(), 30);
        assert!(fleet.take_heartbeats(100).is_empty());
    }

    #[test]
    fn heartbeats_are_spread_evenly_over_the_interval() {
        let mut fleet = started(config(100));
        let mut seen = Vec::new();
        for step in 1..=20 {
            fleet.tick(at(step as f64 * 0.5));
            let due = fleet.take_heartbeats(usize::MAX);
            assert!((4..=6).contains(&due.len()), "{} heartbeats at step {step}", due.len());
            seen.extend(due.into_iter().map(|h| h.endpoint_id));
        }
        let distinct: HashSet<_> = seen.iter().collect();
        assert_eq!((seen.len(), distinct.len()), (100, 100));
    }

    #[test]
    fn an_endpoint_owes_one_heartbeat_at_most() {
        let mut fleet = started(config(10));
        fleet.requeue_heartbeat("sim1-00003");
        fleet.requeue_heartbeat("sim1-00003");
        fleet.requeue_heartbeat("not-ours");
        assert_eq!(ids(&fleet.take_heartbeats(10)), ["sim1-00003"]);
    }

    #[test]
    fn the_same_name_and_seed_give_the_same_events() {
        let run = || {
            let mut fleet = started(FleetConfig { detections_per_hour: 60.0, ..config(500) });
            (1..=60).flat_map(|s| fleet.tick(at(f64::from(s)))).collect::<Vec<_>>()
        };
        let events = run();
        assert!(events.len() > 100, "{} events", events.len());
        assert_eq!(events, run());
    }

    #[test]
    fn discovery_comes_at_start_and_every_interval() {
        let mut fleet = Fleet::new(config(5), today());
        let first = fleet.tick(at(0.0));
        let [AgentMessage::Discovery(d)] = first.as_slice() else { panic!("{first:?}") };
        assert_eq!(d.reported_by, "sim1-00001");
        let computers: Vec<_> = d.computers.iter().map(|c| c.computer_id.as_str()).collect();
        assert_eq!(computers, ["sim1-u0001", "sim1-u0002", "sim1-u0003"]);
        assert!(fleet.tick(at(299.0)).is_empty());
        assert_eq!(fleet.tick(at(300.0)).len(), 1);
        let mut quiet = Fleet::new(FleetConfig { unmanaged: 0, ..config(5) }, today());
        assert!(quiet.tick(at(0.0)).is_empty());
    }

    #[test]
    fn commands_for_other_computers_are_ignored() {
        let mut fleet = started(config(5));
        let task = EndpointCommand::Task(EndpointTask { task_id: Uuid::new_v4(), kind: TaskKind::QuickScan });
        assert!(fleet.apply("sim2-00001", task.clone(), at(1.0)).is_empty());
        assert!(fleet.apply("sim1-00006", task, at(1.0)).is_empty());
        assert_eq!(fleet.stats().commands_ignored, 2);
        assert_eq!(fleet.heartbeats_owed(), 0);
    }
}
