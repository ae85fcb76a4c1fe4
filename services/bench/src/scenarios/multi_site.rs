//! The multi-site path: replication throughput and a policy's fan-out with
//! every site on a broker node of its own, against the same hierarchy on
//! one broker, both hierarchies running and measured in turns.
//!
//! Both layouts (`sites::Layout`) start a fresh hierarchy of `slaves`
//! slaves and register them. Then, `samples` times, each layout in turn
//! (the order swapped every sample, so that neither always goes first on a
//! machine that warms or tires): `computers` new computers in every slave,
//! replicated on one *replicate now* (timed from the call until every slave
//! has its acknowledgement for a position past its load). The throughput
//! of a layout is the median of its samples. Then `rounds` policies to
//! every slave on each layout (the fan-out scenario's rounds, until the
//! last slave's commit), and each layout's floor: the broker's own fan-out
//! with a commit per message, on the machine's broker for the one, through
//! a shovel per slave between the linked nodes for the other
//! ([`crate::site_floor`]). The machine's CPU use during each measurement
//! says how much of the two cores the layout left idle.

use std::time::Duration;

use anyhow::{ensure, Context};
use reqwest::Method;
use serde::Serialize;
use tokio::time::Instant;

use super::fanout::{self, Fanout};
use crate::{
    sites::{BrokerUsage, Hierarchy, Layout},
    stats::{per_second, CpuTimes, Percentiles},
    table::{figure, mb, ms, rate, thousands, Figure},
};

/// Longest the first snapshots or the load may take to replicate.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(900);
/// The size of each floor message: about a policy command's.
const FLOOR_MESSAGE_BYTES: usize = 1024;

/// One throughput sample of one layout.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// Share of the machine's CPU busy meanwhile (0 to 1).
    pub machine_busy: f64,
}

/// What one layout measured.
#[derive(Clone, Debug, Serialize)]
pub struct PathFigures {
    pub layout: Layout,
    pub samples: Vec<Sample>,
    /// The median sample's rate.
    pub rows_per_s: f64,
    pub fanout: Fanout,
    pub fanout_machine_busy: f64,
    /// The broker's own fan-out with a commit per message on this layout.
    pub floor: Percentiles,
    /// The private nodes after the measurement (CPU time: during it).
    pub brokers: BrokerUsage,
    /// How long the private nodes took to start.
    pub brokers_start_seconds: f64,
}

/// The path's figures: both layouts and the ratios.
#[derive(Clone, Debug, Serialize)]
pub struct MultiSite {
    pub slaves: usize,
    pub computers_per_slave: u64,
    pub shared: PathFigures,
    pub linked: PathFigures,
    /// Linked median throughput / shared median throughput (target >= 0.8).
    pub throughput_ratio: f64,
    /// Linked fan-out p99 / shared fan-out p99 (target <= 2).
    pub fanout_p99_ratio: f64,
    /// Linked floor p99 / shared floor p99: what the links and the nodes
    /// cost this machine before any server works.
    pub floor_p99_ratio: f64,
}

/// Runs both layouts; `namespace` is the run's (each layout takes its own
/// beneath it).
pub async fn run(namespace: &str, plan: &crate::plan::Plan) -> anyhow::Result<MultiSite> {
    let slaves = plan.multi_site_slaves;
    let shared = Hierarchy::start(Layout::SharedBroker, &format!("{namespace}_sb"), slaves, plan).await?;
    let linked = match Hierarchy::start(Layout::SiteBrokers, &format!("{namespace}_ms"), slaves, plan).await {
        Ok(linked) => linked,
        Err(e) => {
            shared.stop().await;
            return Err(e);
        }
    };
    let outcome = on_both(&shared, &linked, plan).await;
    linked.stop().await;
    shared.stop().await;
    let (shared, linked) = outcome?;
    let path = MultiSite {
        slaves,
        computers_per_slave: plan.multi_site_computers,
        throughput_ratio: linked.rows_per_s / shared.rows_per_s,
        fanout_p99_ratio: linked.fanout.latency.p99_ms / shared.fanout.latency.p99_ms,
        floor_p99_ratio: linked.floor.p99_ms / shared.floor.p99_ms,
        shared,
        linked,
    };
    tracing::info!(?path, "Multi-site path measured.");
    Ok(path)
}

/// The samples in turns, then each layout's fan-out and floor.
async fn on_both(
    shared: &Hierarchy,
    linked: &Hierarchy,
    plan: &crate::plan::Plan,
) -> anyhow::Result<(PathFigures, PathFigures)> {
    let computers = plan.multi_site_computers;
    for h in [shared, linked] {
        catch_up(h).await?;
    }
    let before = linked.brokers_usage();
    let mut samples: [Vec<Sample>; 2] = Default::default();
    for k in 0..plan.multi_site_samples {
        let order = if k % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let h = [shared, linked][i];
            samples[i].push(sample(h, k as u64 * computers, computers).await?);
        }
    }
    let body = vec![b'x'; FLOOR_MESSAGE_BYTES];
    let mut figures = Vec::new();
    for (h, samples) in [shared, linked].into_iter().zip(samples) {
        let cpu = CpuTimes::now();
        let fanout = fanout::run(&h.fleet, &h.api, h.fleet.slaves.len(), plan.multi_site_rounds).await?;
        let fanout_machine_busy = cpu.busy_since();
        let floor = h.floor(plan.multi_site_rounds, &body).await?;
        let after = h.brokers_usage();
        let rows_per_s = median(samples.iter().map(|s| s.rows_per_s).collect());
        figures.push(PathFigures {
            layout: h.layout,
            samples,
            rows_per_s,
            fanout,
            fanout_machine_busy,
            floor,
            brokers: BrokerUsage { cpu_seconds: after.cpu_seconds - before.cpu_seconds, ..after },
            brokers_start_seconds: h.brokers_started_in.as_secs_f64(),
        });
    }
    let linked = figures.pop().context("the linked layout's figures")?;
    let shared = figures.pop().context("the shared layout's figures")?;
    Ok((shared, linked))
}

/// Asks for a pass and waits for the first snapshots.
async fn catch_up(h: &Hierarchy) -> anyhow::Result<()> {
    let fleet = &h.fleet;
    h.api.call_ok(Method::POST, "/api/replication/now", Some(serde_json::json!({}))).await?;
    let mut heads = Vec::new();
    for i in 0..fleet.slaves.len() {
        heads.push((i, fleet.written_head(i).await?));
    }
    fleet.wait_acked(&heads, CATCH_UP_TIMEOUT).await.context("waiting for the first snapshots")?;
    Ok(())
}

/// `computers` new computers (numbered from `first`) in every slave, written
/// while nothing replicates, then one *replicate now*, timed until every
/// slave is acknowledged past its load; checks the master holds them all.
async fn sample(h: &Hierarchy, first: u64, computers: u64) -> anyhow::Result<Sample> {
    let fleet = &h.fleet;
    let heads = fleet.load_endpoints_from(first, computers).await?;
    let cpu = CpuTimes::now();
    let started = Instant::now();
    h.api.call_ok(Method::POST, "/api/replication/now", Some(serde_json::json!({}))).await?;
    let reached = fleet.wait_acked(&heads, CATCH_UP_TIMEOUT).await.context("replicating the load")?;
    let elapsed = reached.into_iter().max().unwrap_or(started) - started;
    let machine_busy = cpu.busy_since();
    let rows = fleet.slaves.len() as u64 * computers;
    let held = fleet.slaves.len() as u64 * (first + computers);
    let master_db = crate::stats::connect(&h.master_database_url(), "the multi-site master's database").await?;
    let copied: i64 = master_db
        .query_one("SELECT count(*) FROM replica_rows WHERE table_name = 'endpoints' AND row IS NOT NULL", &[])
        .await?
        .get(0);
    ensure!(
        copied as u64 == held,
        "the master holds {copied} computers, not the {held} its slaves have ({:?})",
        h.layout
    );
    let sample = Sample { rows, seconds: elapsed.as_secs_f64(), rows_per_s: per_second(rows, elapsed), machine_busy };
    tracing::info!(layout = ?h.layout, ?sample, "Multi-site path: a sample replicated.");
    Ok(sample)
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl MultiSite {
    /// The table's lines for this path.
    pub fn figures(&self) -> Vec<Figure> {
        let (s, l) = (&self.shared, &self.linked);
        let sites = format!("{} slaves, each on its own broker node", self.slaves);
        let rows = l.samples.first().map_or(0, |x| x.rows);
        let rates = |p: &PathFigures| {
            let each: Vec<String> = p.samples.iter().map(|x| thousands(x.rows_per_s.round() as u64)).collect();
            format!("{} (median of {}: {})", rate(p.rows_per_s, "rows"), p.samples.len(), each.join(", "))
        };
        let busy = |p: &PathFigures| {
            let each: Vec<String> = p.samples.iter().map(|x| format!("{:.0} %", x.machine_busy * 100.0)).collect();
            each.join(", ")
        };
        vec![
            figure(
                format!("multi-site: replication throughput, {} rows per sample / {sites}, samples in turns", thousands(rows)),
                format!("{}; CPU busy {}", rates(l), busy(l)),
                format!("one broker {}; CPU busy {}", rates(s), busy(s)),
                Some(self.throughput_ratio),
                ">= 0.8 x one broker",
                Some(self.throughput_ratio >= 0.8),
            ),
            figure(
                format!("multi-site: fan-out, a policy to {sites}, {} rounds", l.fanout.rounds),
                format!(
                    "{} (first slave p50 {:.1} ms), CPU busy {:.0} %",
                    ms(&l.fanout.latency),
                    l.fanout.first.p50_ms,
                    l.fanout_machine_busy * 100.0
                ),
                format!("one broker {}, CPU busy {:.0} %", ms(&s.fanout.latency), s.fanout_machine_busy * 100.0),
                Some(self.fanout_p99_ratio),
                "p99 <= 2 x one broker",
                Some(self.fanout_p99_ratio <= 2.0),
            ),
            figure(
                format!(
                    "multi-site floor: the broker's own fan-out with a commit each, through a shovel to each of {sites}, {} rounds",
                    l.fanout.rounds
                ),
                ms(&l.floor),
                format!("one broker {}", ms(&s.floor)),
                Some(self.floor_p99_ratio),
                "(shown)",
                None,
            ),
            figure(
                format!("multi-site: the {} broker nodes (master's and slaves')", l.brokers.nodes),
                format!(
                    "{} resident in all, {:.1} s of CPU during the measurement, started in {:.1} s",
                    mb(l.brokers.rss_bytes),
                    l.brokers.cpu_seconds,
                    l.brokers_start_seconds
                ),
                "-",
                None,
                "(shown)",
                None,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_middle_sample() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![7.0]), 7.0);
    }
}
