//! What a run measures and at which sizes: the full run of the issue's
//! figures, or a quick one that exercises every path in about a minute.

use serde::Serialize;

/// A part of the run that `--only` can pick. The limits are measured
/// whenever the main fleet runs (every part but the multi-site path), and
/// the main fleet always loads its computers first (the throughput), since
/// every later part reads or changes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    MultiSite,
    Throughput,
    Report,
    Console,
    Fanout,
    Lag,
    Drain,
    Agent,
    /// The master holding millions of computers (`--scale-sizes`).
    Scale,
    /// The fan-out to 1,000 slaves, many to a database: a fleet and a
    /// master of its own.
    #[serde(rename = "fanout-1000")]
    #[value(name = "fanout-1000")]
    Fanout1000,
}

impl Part {
    pub const ALL: [Part; 10] = [
        Part::MultiSite,
        Part::Throughput,
        Part::Report,
        Part::Console,
        Part::Fanout,
        Part::Lag,
        Part::Drain,
        Part::Agent,
        Part::Scale,
        Part::Fanout1000,
    ];
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// `full` or `quick`.
    pub mode: &'static str,
    pub slaves: usize,
    /// Computers each slave enrolls for the replication throughput.
    pub computers_per_slave: u64,
    /// `ReplicationBatchSize` of every slave.
    pub batch_size: usize,
    /// Rows of each raw database measurement.
    pub raw_rows: u64,
    /// Messages of the raw publish measurement, and their size.
    pub messages: u64,
    pub message_bytes: usize,
    /// Raw publish -> consume round trips.
    pub round_trips: u64,
    /// Slaves whose computers change during the lag measurement (all of
    /// their computers change, each at `update_rate` per second).
    pub lag_slaves: usize,
    pub update_rate: f64,
    pub lag_seconds: u64,
    /// Rows queued for the backlog drain, over the slaves that do not take
    /// the live traffic (`lag_slaves..`): those stay caught up meanwhile.
    pub backlog_rows: u64,
    /// Fan-out to the first N slaves, for each N.
    pub fanout_slaves: Vec<usize>,
    pub fanout_rounds: usize,
    pub report_requests: usize,
    pub agent_computers: u64,
    /// Seconds the agent keeps sending heartbeats after enrolling.
    pub agent_linger_seconds: u64,
    pub slave_pool_size: usize,
    pub master_pool_size: usize,
    /// The multi-site path: slaves (each on a broker node of its own, and
    /// again all on one broker), computers each, fan-out rounds.
    pub multi_site_slaves: usize,
    pub multi_site_computers: u64,
    pub multi_site_rounds: usize,
    /// Throughput samples of each layout, taken in turns.
    pub multi_site_samples: usize,
    /// Requests to each console page on the loaded master.
    pub console_requests: usize,
    /// The scale part: its sizes and their layout (see [`ScalePlan`]).
    pub scale: ScalePlan,
    /// The fan-out to a large fleet laid out many to a database: its
    /// slaves and rounds.
    pub large_fanout_slaves: usize,
    pub large_fanout_rounds: usize,
    /// The parts that run (all of them unless `--only` says otherwise).
    pub parts: Vec<Part>,
}

/// The scale part: a master whose copy holds each of `sizes` computers
/// over `slaves` slaves, `sample_slaves` of them real servers replicating
/// `sample_computers` each, the rest written into its database in bulk.
#[derive(Clone, Debug, Serialize)]
pub struct ScalePlan {
    pub sizes: Vec<u64>,
    pub slaves: usize,
    pub sample_slaves: usize,
    pub sample_computers: u64,
    /// Requests to each timed query.
    pub requests: usize,
    /// Hash partitions of the partitioned copy measured at the largest size.
    pub partitions: usize,
}

impl ScalePlan {
    /// The issue's: 1M, 3M and 10M computers over 1,000 slaves.
    pub fn full() -> Self {
        Self {
            sizes: vec![1_000_000, 3_000_000, 10_000_000],
            slaves: 1_000,
            sample_slaves: 10,
            sample_computers: 10_000,
            requests: 50,
            partitions: 16,
        }
    }

    /// A small pair over 20 slaves.
    pub fn quick() -> Self {
        Self {
            sizes: vec![20_000, 60_000],
            slaves: 20,
            sample_slaves: 2,
            sample_computers: 1_000,
            requests: 5,
            partitions: 4,
        }
    }

    /// Computers of the real slaves.
    pub fn sample_rows(&self) -> u64 {
        self.sample_slaves as u64 * self.sample_computers
    }

    /// The sizes must hold the real slaves' computers and at least one
    /// computer in each bulk slave.
    pub fn check(&self) -> Result<(), String> {
        if self.sample_slaves == 0 || self.sample_slaves >= self.slaves || self.sample_computers == 0 {
            return Err(format!(
                "the scale part needs 1 to {} real slaves with computers, of its {} slaves",
                self.slaves.saturating_sub(1),
                self.slaves
            ));
        }
        let bulk = (self.slaves - self.sample_slaves) as u64;
        if let Some(size) = self.sizes.iter().find(|s| **s < self.sample_rows() + bulk) {
            return Err(format!(
                "--scale-sizes {size} is too small: the {} real slaves hold {} computers and each of the other {bulk} slaves at least one",
                self.sample_slaves,
                self.sample_rows()
            ));
        }
        if self.sizes.is_empty() || self.requests == 0 || self.partitions == 0 {
            return Err("the scale part needs a size (--scale-sizes), requests and partitions".into());
        }
        Ok(())
    }
}

impl Plan {
    /// The issue's sizes: 1M computers over 100 slaves, 100k changing at
    /// 0.015 updates/s, an hour of those changes (5.4M rows) as backlog.
    pub fn full() -> Self {
        Self {
            mode: "full",
            slaves: 100,
            computers_per_slave: 10_000,
            batch_size: 5_000,
            raw_rows: 1_000_000,
            messages: 50_000,
            message_bytes: 1024,
            round_trips: 1_000,
            lag_slaves: 10,
            update_rate: 0.015,
            lag_seconds: 120,
            backlog_rows: 5_400_000,
            fanout_slaves: vec![10, 100],
            fanout_rounds: 50,
            report_requests: 50,
            agent_computers: 10_000,
            agent_linger_seconds: 30,
            slave_pool_size: 3,
            master_pool_size: 16,
            multi_site_slaves: 10,
            multi_site_computers: 50_000,
            multi_site_rounds: 50,
            multi_site_samples: 3,
            console_requests: 100,
            scale: ScalePlan::full(),
            large_fanout_slaves: 1000,
            large_fanout_rounds: 20,
            parts: Part::ALL.to_vec(),
        }
    }

    /// Small sizes: every path, no meaningful speed.
    pub fn quick() -> Self {
        Self {
            mode: "quick",
            slaves: 4,
            computers_per_slave: 1_000,
            batch_size: 500,
            raw_rows: 20_000,
            messages: 2_000,
            round_trips: 100,
            lag_slaves: 2,
            lag_seconds: 5,
            backlog_rows: 8_000,
            fanout_slaves: vec![2, 4],
            fanout_rounds: 5,
            report_requests: 5,
            agent_computers: 500,
            agent_linger_seconds: 2,
            master_pool_size: 8,
            multi_site_slaves: 2,
            multi_site_computers: 1_000,
            multi_site_rounds: 5,
            multi_site_samples: 2,
            console_requests: 5,
            scale: ScalePlan::quick(),
            large_fanout_slaves: 20,
            large_fanout_rounds: 2,
            ..Self::full()
        }
    }

    /// Whether `part` runs.
    pub fn runs(&self, part: Part) -> bool {
        self.parts.contains(&part)
    }

    /// Whether the main fleet (100 slaves in a full run) starts: every part
    /// but the multi-site path, the 1,000-slave fan-out and the scale part
    /// needs it, and each of them the throughput's computers.
    pub fn runs_fleet(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::MultiSite | Part::Fanout1000 | Part::Scale))
    }

    /// Rows each backlogged slave (every slave but the first `lag_slaves`)
    /// queues for the backlog drain.
    pub fn backlog_per_slave(&self) -> u64 {
        self.backlog_rows / self.slaves.saturating_sub(self.lag_slaves).max(1) as u64
    }

    /// The plan's sizes must fit together.
    pub fn check(&self) -> Result<(), String> {
        if self.slaves == 0 || self.computers_per_slave == 0 {
            return Err("--slaves and --computers must be positive".into());
        }
        if self.lag_slaves >= self.slaves {
            return Err(format!(
                "the lag runs on {} slaves and the backlog on the others, but there are only {}",
                self.lag_slaves, self.slaves
            ));
        }
        if let Some(n) = self.fanout_slaves.iter().find(|n| **n > self.slaves || **n == 0) {
            return Err(format!("fan-out to {n} slaves needs 1 to {} slaves", self.slaves));
        }
        if self.multi_site_slaves == 0
            || self.multi_site_computers == 0
            || self.multi_site_rounds == 0
            || self.multi_site_samples == 0
        {
            return Err("the multi-site path needs at least one slave, computer and round".into());
        }
        if self.runs(Part::Fanout1000) && (self.large_fanout_slaves == 0 || self.large_fanout_rounds == 0) {
            return Err("the large fan-out needs at least one slave and one round".into());
        }
        if self.parts.is_empty() {
            return Err("--only names no part to run".into());
        }
        if self.runs(Part::Scale) {
            self.scale.check()?;
        }
        if self.backlog_per_slave() == 0 {
            return Err(format!("--backlog-rows {} is less than one row per backlogged slave", self.backlog_rows));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_plan_has_the_issue_sizes() {
        let full = Plan::full();
        assert_eq!(full.slaves as u64 * full.computers_per_slave, 1_000_000);
        assert_eq!(full.lag_slaves as u64 * full.computers_per_slave, 100_000);
        // An hour of 100k computers changing at 0.015/s.
        assert_eq!((100_000.0 * full.update_rate * 3600.0) as u64, full.backlog_rows);
        assert_eq!(full.check(), Ok(()));
        assert_eq!(Plan::quick().check(), Ok(()));
    }

    #[test]
    fn plans_that_do_not_fit_are_refused() {
        let plan = Plan { lag_slaves: 5, ..Plan::quick() };
        assert!(plan.check().unwrap_err().contains("only 4"));
        let plan = Plan { fanout_slaves: vec![9], ..Plan::quick() };
        assert!(plan.check().unwrap_err().contains("fan-out to 9"));
        let plan = Plan { lag_slaves: 4, ..Plan::quick() };
        assert!(plan.check().unwrap_err().contains("the backlog on the others"));
        // Two backlogged slaves of the quick plan's four.
        let plan = Plan { backlog_rows: 1, ..Plan::quick() };
        assert!(plan.check().unwrap_err().contains("backlog"));
        let plan = Plan { parts: Vec::new(), ..Plan::quick() };
        assert!(plan.check().unwrap_err().contains("--only"));
    }

    #[test]
    fn the_fleet_starts_for_any_part_but_the_multi_site_path() {
        assert!(Plan::full().runs_fleet());
        let only_sites = Plan { parts: vec![Part::MultiSite], ..Plan::quick() };
        assert!(!only_sites.runs_fleet());
        assert!(only_sites.runs(Part::MultiSite) && !only_sites.runs(Part::Drain));
        let drain = Plan { parts: vec![Part::Drain], ..Plan::quick() };
        assert!(drain.runs_fleet() && !drain.runs(Part::MultiSite));
        let scale = Plan { parts: vec![Part::Scale], ..Plan::quick() };
        assert!(!scale.runs_fleet());
        let large = Plan { parts: vec![Part::Fanout1000], ..Plan::full() };
        assert!(!large.runs_fleet() && large.large_fanout_slaves == 1000);
        let none = Plan { large_fanout_slaves: 0, ..large };
        assert!(none.check().unwrap_err().contains("large fan-out"));
    }

    #[test]
    fn scale_sizes_must_hold_the_real_slaves() {
        assert_eq!(ScalePlan::full().check(), Ok(()));
        let plan = Plan { scale: ScalePlan { sizes: vec![1_000], ..ScalePlan::quick() }, ..Plan::quick() };
        assert!(plan.check().unwrap_err().contains("--scale-sizes 1000 is too small"));
        let plan = Plan { scale: ScalePlan { sample_slaves: 20, ..ScalePlan::quick() }, ..Plan::quick() };
        assert!(plan.check().unwrap_err().contains("real slaves"));
        // A plan without the scale part does not check its sizes.
        let plan = Plan {
            scale: ScalePlan { sizes: vec![1], ..ScalePlan::quick() },
            parts: vec![Part::Throughput],
            ..Plan::quick()
        };
        assert_eq!(plan.check(), Ok(()));
    }
}
