//! The multi-site path: replication throughput and a policy's fan-out with
//! every site on a broker node of its own, against the same hierarchy on
//! one broker, measured one after the other in the same run.
//!
//! Each layout (`sites::Layout`) runs the same steps on a fresh hierarchy
//! of `slaves` slaves: registration and the first snapshots; then
//! `computers` new computers in every slave, replicated on one *replicate
//! now* (timed from the call until every slave has its acknowledgement for
//! a position past its load); then `rounds` policies to every slave (the
//! fan-out scenario's rounds, until the last slave's commit). The linked
//! figures are reported as ratios to the shared broker's.

use std::time::Duration;

use anyhow::{ensure, Context};
use reqwest::Method;
use serde::Serialize;
use tokio::time::Instant;

use super::fanout::{self, Fanout};
use crate::{
    sites::{BrokerUsage, Hierarchy, Layout},
    stats::per_second,
    table::{figure, mb, ms, rate, thousands, Figure},
};

/// Longest the first snapshots or the load may take to replicate.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(900);

/// What one layout measured.
#[derive(Clone, Debug, Serialize)]
pub struct PathFigures {
    pub layout: Layout,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    pub fanout: Fanout,
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
    /// Linked throughput / shared throughput (target >= 0.8).
    pub throughput_ratio: f64,
    /// Linked fan-out p99 / shared fan-out p99 (target <= 2).
    pub fanout_p99_ratio: f64,
}

/// Runs both layouts; `namespace` is the run's (each layout takes its own
/// beneath it).
pub async fn run(
    namespace: &str,
    plan: &crate::plan::Plan,
    slaves: usize,
    computers: u64,
    rounds: usize,
) -> anyhow::Result<MultiSite> {
    let shared = measure(Layout::SharedBroker, &format!("{namespace}_sb"), plan, slaves, computers, rounds).await?;
    let linked = measure(Layout::SiteBrokers, &format!("{namespace}_ms"), plan, slaves, computers, rounds).await?;
    let path = MultiSite {
        slaves,
        computers_per_slave: computers,
        throughput_ratio: linked.rows_per_s / shared.rows_per_s,
        fanout_p99_ratio: linked.fanout.latency.p99_ms / shared.fanout.latency.p99_ms,
        shared,
        linked,
    };
    tracing::info!(?path, "Multi-site path measured.");
    Ok(path)
}

/// One layout, from start to teardown.
async fn measure(
    layout: Layout,
    namespace: &str,
    plan: &crate::plan::Plan,
    slaves: usize,
    computers: u64,
    rounds: usize,
) -> anyhow::Result<PathFigures> {
    tracing::info!(?layout, slaves, computers, "Multi-site path: starting the hierarchy.");
    let hierarchy = Hierarchy::start(layout, namespace, slaves, plan).await?;
    let outcome = on(&hierarchy, computers, rounds).await;
    hierarchy.stop().await;
    outcome
}

async fn on(h: &Hierarchy, computers: u64, rounds: usize) -> anyhow::Result<PathFigures> {
    let fleet = &h.fleet;
    let now = || h.api.call_ok(Method::POST, "/api/replication/now", Some(serde_json::json!({})));
    now().await?;
    let mut heads = Vec::new();
    for i in 0..fleet.slaves.len() {
        heads.push((i, fleet.written_head(i).await?));
    }
    fleet.wait_acked(&heads, CATCH_UP_TIMEOUT).await.context("waiting for the first snapshots")?;
    let before = h.brokers_usage();

    let heads = fleet.load_endpoints(computers).await?;
    let started = Instant::now();
    now().await?;
    let reached = fleet.wait_acked(&heads, CATCH_UP_TIMEOUT).await.context("replicating the load")?;
    let elapsed = reached.into_iter().max().unwrap_or(started) - started;
    let rows = fleet.slaves.len() as u64 * computers;
    let master_db = crate::stats::connect(&h.master_database_url(), "the multi-site master's database").await?;
    let copied: i64 = master_db
        .query_one("SELECT count(*) FROM replica_rows WHERE table_name = 'endpoints' AND row IS NOT NULL", &[])
        .await?
        .get(0);
    ensure!(
        copied as u64 == rows,
        "the master holds {copied} computers, not the {rows} its slaves have ({:?})",
        h.layout
    );
    tracing::info!(layout = ?h.layout, rows, seconds = elapsed.as_secs_f64(), "Multi-site path: replicated.");

    let fanout = fanout::run(fleet, &h.api, fleet.slaves.len(), rounds).await?;
    let after = h.brokers_usage();
    Ok(PathFigures {
        layout: h.layout,
        rows,
        seconds: elapsed.as_secs_f64(),
        rows_per_s: per_second(rows, elapsed),
        fanout,
        brokers: BrokerUsage { cpu_seconds: after.cpu_seconds - before.cpu_seconds, ..after },
        brokers_start_seconds: h.brokers_started_in.as_secs_f64(),
    })
}

impl MultiSite {
    /// The table's lines for this path.
    pub fn figures(&self) -> Vec<Figure> {
        let (s, l) = (&self.shared, &self.linked);
        let sites = format!("{} slaves, each on its own broker node", self.slaves);
        vec![
            figure(
                format!("multi-site: replication throughput, {} rows / {sites}", thousands(l.rows),),
                format!("{} ({:.1} s)", rate(l.rows_per_s, "rows"), l.seconds),
                format!("one broker {} ({:.1} s)", rate(s.rows_per_s, "rows"), s.seconds),
                Some(self.throughput_ratio),
                ">= 0.8 x one broker",
                Some(self.throughput_ratio >= 0.8),
            ),
            figure(
                format!("multi-site: fan-out, a policy to {sites}, {} rounds", l.fanout.rounds),
                format!("{} (first slave p50 {:.1} ms)", ms(&l.fanout.latency), l.fanout.first.p50_ms),
                format!("one broker {}", ms(&s.fanout.latency)),
                Some(self.fanout_p99_ratio),
                "p99 <= 2 x one broker",
                Some(self.fanout_p99_ratio <= 2.0),
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
