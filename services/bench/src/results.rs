//! The run's results: each figure next to its limit measured in the same
//! run, the ratio and the target, as a Markdown table and a JSON file.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::Context;
use serde::Serialize;

use crate::{
    limits::RawLimits,
    plan::{Part, Plan},
    scale::ScaleRun,
    scenarios::{
        agent::AgentMemory,
        console::ConsoleLoad,
        fanout::Fanout,
        fanout_large::LargeFanout,
        multi_site::MultiSite,
        replication::{Drain, Live},
        report::ReportLatency,
    },
    stats::Percentiles,
    table::{figure, mb, ms, rate, thousands, Figure, MB},
};

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Run {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub plan: Plan,
    pub machine: Machine,
    /// Each part's figures; `None` (empty) for a part `--only` left out.
    pub limits: Option<RawLimits>,
    pub throughput: Option<Drain>,
    pub report: Option<ReportLatency>,
    pub fanout: Vec<Fanout>,
    pub lag: Option<Lag>,
    pub backlog: Option<Drain>,
    pub backlog_live: Option<Live>,
    pub agent: Option<AgentMemory>,
    pub multi_site: Option<MultiSite>,
    pub console: Option<ConsoleLoad>,
    pub scale: Option<ScaleRun>,
    pub large_fanout: Option<LargeFanout>,
}

/// What the run ran on.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: u64,
    pub postgres: String,
    pub build: &'static str,
}

/// Live updates at a steady rate and how late the master saw them.
#[derive(Debug, Serialize)]
pub struct Lag {
    pub computers: u64,
    pub updates_per_s: f64,
    pub seconds: f64,
    pub lag: Percentiles,
    /// How often the master's copy was looked at (bounds the overstatement).
    pub poll_ms: u64,
}

impl Run {
    /// The table, one figure per line, of the parts that ran.
    pub fn figures(&self) -> Vec<Figure> {
        let mut rows = Vec::new();
        if let Some(limits) = &self.limits {
            rows.extend(limit_figures(limits));
            if let Some(t) = &self.throughput {
                rows.extend(throughput_figures(limits, t, self.plan.slaves));
            }
            if let Some(lag) = &self.lag {
                rows.push(lag_figure(lag));
            }
            if let Some(backlog) = &self.backlog {
                rows.push(drain_figure(limits, backlog));
            }
            if let Some(live) = self.backlog_live.as_ref().and_then(|l| l.lag.as_ref().map(|p| (l, p))) {
                rows.push(figure(
                    format!("lag of the live traffic during the drain ({:.0} updates/s)", live.0.updates_per_s),
                    format!("p50 {:.2} s, p99 {:.2} s", live.1.p50_ms / 1000.0, live.1.p99_ms / 1000.0),
                    "-",
                    None,
                    "p99 <= 5 s",
                    Some(live.1.p99_ms <= 5000.0),
                ));
            }
            rows.extend(fanout_figures(limits, &self.fanout));
        }
        if let Some(r) = &self.report {
            rows.push(figure(
                format!(
                    "report: security-status over {} computers / {} slaves, via the master",
                    thousands(r.computers),
                    r.slaves
                ),
                ms(&r.via_master),
                format!("report service alone {}", ms(&r.direct)),
                None,
                "<= 100 ms",
                Some(r.via_master.p99_ms <= 100.0),
            ));
        }
        rows.extend(self.console.iter().flat_map(ConsoleLoad::figures));
        rows.extend(self.multi_site.iter().flat_map(MultiSite::figures));
        rows.extend(self.scale.iter().flat_map(ScaleRun::figures));
        rows.extend(self.large_fanout.iter().flat_map(LargeFanout::figures));
        if let Some(t) = &self.throughput {
            rows.push(figure(
                "memory: master, peak during the replication",
                mb(t.master_peak_rss),
                "-",
                None,
                "<= 200 MB",
                Some(t.master_peak_rss as f64 <= 200.0 * MB),
            ));
        }
        if let Some(backlog) = &self.backlog {
            rows.push(figure(
                "memory: master, peak during the backlog drain",
                mb(backlog.master_peak_rss),
                "-",
                None,
                "(shown)",
                None,
            ));
        }
        if let Some(agent) = &self.agent {
            rows.push(figure(
                format!("memory: agent simulating {} computers", thousands(agent.computers)),
                mb(agent.peak_rss),
                "-",
                None,
                "<= 100 MB",
                Some(agent.peak_rss as f64 <= 100.0 * MB),
            ));
        }
        rows
    }

    /// The Markdown table with a heading line.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Run of {} ({} mode, {} build) on {} cores, {:.0} GiB, {}.\n",
            self.started_at.format("%Y-%m-%d %H:%M UTC"),
            self.plan.mode,
            self.machine.build,
            self.machine.cores,
            self.machine.memory_bytes as f64 / (1024.0 * MB),
            self.machine.postgres
        );
        if self.plan.parts.len() < Part::ALL.len() {
            let parts: Vec<String> = self.plan.parts.iter().map(|p| format!("{p:?}")).collect();
            let _ = writeln!(out, "Only these parts ran (`--only`): {}.\n", parts.join(", "));
        }
        out.push_str("| figure | measured | limit (same run) | ratio | target | met |\n|---|---|---|---|---|---|\n");
        for f in self.figures() {
            let ratio = f.ratio.map_or("-".to_owned(), |r| format!("{r:.2}"));
            let met = match f.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            };
            let _ =
                writeln!(out, "| {} | {} | {} | {} | {} | {} |", f.figure, f.measured, f.limit, ratio, f.target, met);
        }
        out
    }

    /// Writes `<dir>/<time>-<mode>.json` and `.md`; the JSON path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = format!("{}-{}", self.started_at.format("%Y%m%dT%H%M%SZ"), self.plan.mode);
        let json = dir.join(format!("{stem}.json"));
        let document = serde_json::json!({"run": self, "figures": self.figures()});
        std::fs::write(&json, serde_json::to_string_pretty(&document)?)
            .with_context(|| format!("writing {}", json.display()))?;
        std::fs::write(dir.join(format!("{stem}.md")), self.markdown())?;
        if let Some(scale) = &self.scale {
            // A full run's curve is the committed one, beside the results
            // directory (bench/scale.svg); a quick run's stays with its results.
            let curve = match (self.plan.mode, dir.parent()) {
                ("full", Some(parent)) => parent.join("scale.svg"),
                _ => dir.join(format!("{stem}-scale.svg")),
            };
            std::fs::write(&curve, crate::scale::curve::svg(scale))
                .with_context(|| format!("writing {}", curve.display()))?;
        }
        Ok(json)
    }
}

/// The raw limits' lines.
fn limit_figures(l: &RawLimits) -> Vec<Figure> {
    let mut rows = vec![
        figure("raw: binary COPY into replica_rows", rate(l.copy_rows_per_s, "rows"), "-", None, "baseline", None),
        figure("raw: UNNEST upsert into replica_rows", rate(l.upsert_rows_per_s, "rows"), "-", None, "baseline", None),
        figure(
            "raw: publish with confirms, pipelined",
            rate(l.publish_confirms_per_s, "msgs"),
            "-",
            None,
            "baseline",
            None,
        ),
        figure(
            "raw: publish with confirms, one at a time",
            rate(l.publish_confirms_serial_per_s, "msgs"),
            "-",
            None,
            "baseline",
            None,
        ),
        figure("raw: publish -> consume round trip", ms(&l.round_trip), "-", None, "baseline", None),
    ];
    if let Some(again) = &l.after_throughput {
        let (copy, upsert) = (rate(again.copy_rows_per_s, "rows"), rate(again.upsert_rows_per_s, "rows"));
        rows.insert(2, figure("raw: the same COPY, again after the throughput", copy, "-", None, "baseline", None));
        rows.insert(3, figure("raw: the same upsert, again after the throughput", upsert, "-", None, "baseline", None));
    }
    if let Some(f) = &l.broker_fanout {
        let name =
            format!("raw: one message to each of {} quorum queues -> the last consumed, {} rounds", f.queues, f.rounds);
        rows.push(figure(name, ms(&f.latency), "-", None, "baseline", None));
        let name = format!(
            "raw: the same, each consumer committing a row before its ack -> the last committed, {} rounds",
            f.rounds
        );
        rows.push(figure(name, ms(&f.with_commit), "-", None, "baseline", None));
    }
    rows
}

/// How a limit is shown: measured once, or the mean of the measurements
/// before and after the throughput with both beside it.
fn limit_shown(what: &str, limit: f64, before: f64, after: Option<f64>) -> String {
    match after {
        None => format!("{what} {}", rate(limit, "rows")),
        Some(after) => {
            format!(
                "{what} {} (mean of {} before, {} after)",
                rate(limit, "rows"),
                thousands(before.round() as u64),
                thousands(after.round() as u64)
            )
        }
    }
}

/// Replication throughput against the upsert and COPY limits.
fn throughput_figures(l: &RawLimits, t: &Drain, slaves: usize) -> [Figure; 2] {
    let (copy, upsert) = (l.copy_limit(), l.upsert_limit());
    let after = l.after_throughput;
    [
        figure(
            format!("replication throughput, {} rows / {} slaves", thousands(t.rows), slaves),
            format!("{} ({:.1} s)", rate(t.rows_per_s, "rows"), t.seconds),
            limit_shown("upsert", upsert, l.upsert_rows_per_s, after.map(|a| a.upsert_rows_per_s)),
            Some(t.rows_per_s / upsert),
            ">= 1.0 x upsert",
            Some(t.rows_per_s >= upsert),
        ),
        figure(
            "replication throughput vs COPY",
            rate(t.rows_per_s, "rows"),
            limit_shown("COPY", copy, l.copy_rows_per_s, after.map(|a| a.copy_rows_per_s)),
            Some(t.rows_per_s / copy),
            ">= 0.6 x COPY",
            Some(t.rows_per_s >= 0.6 * copy),
        ),
    ]
}

fn lag_figure(lag: &Lag) -> Figure {
    figure(
        format!(
            "replication lag, {} computers at {:.0} updates/s, interval 1 s",
            thousands(lag.computers),
            lag.updates_per_s
        ),
        format!(
            "p50 {:.2} s, p99 {:.2} s ({} samples)",
            lag.lag.p50_ms / 1000.0,
            lag.lag.p99_ms / 1000.0,
            lag.lag.count
        ),
        format!("interval 1 s, poll {} ms", lag.poll_ms),
        None,
        "p99 <= 5 s",
        Some(lag.lag.p99_ms <= 5000.0),
    )
}

fn drain_figure(l: &RawLimits, backlog: &Drain) -> Figure {
    let upsert = l.upsert_limit();
    figure(
        format!("backlog drain, {} rows with live traffic", thousands(backlog.rows)),
        format!("{} ({:.1} s)", rate(backlog.rows_per_s, "rows"), backlog.seconds),
        limit_shown("upsert", upsert, l.upsert_rows_per_s, l.after_throughput.map(|a| a.upsert_rows_per_s)),
        Some(backlog.rows_per_s / upsert),
        ">= 0.8 x upsert",
        Some(backlog.rows_per_s >= 0.8 * upsert),
    )
}

/// Each fan-out against the round trip, and against the broker's own
/// fan-out with a commit where that was measured at the same width.
fn fanout_figures(l: &RawLimits, fanouts: &[Fanout]) -> Vec<Figure> {
    let rtt = &l.round_trip;
    let largest = fanouts.iter().map(|f| f.slaves).max().unwrap_or(0);
    let mut rows = Vec::new();
    for f in fanouts {
        rows.push(figure(
            format!("fan-out: a policy to {} slaves, {} rounds", f.slaves, f.rounds),
            format!("{} (first slave p50 {:.1} ms), {}", ms(&f.latency), f.first.p50_ms, f.applied_at.describe()),
            format!("round trip p99 {:.1} ms", rtt.p99_ms),
            Some(f.latency.p99_ms / rtt.p99_ms),
            "(shown)",
            None,
        ));
        rows.push(figure(
            format!("fan-out to {} slaves: every slave's receipt shown by the master", f.slaves),
            ms(&f.receipts),
            "-",
            None,
            "(shown)",
            None,
        ));
        if let Some(floor) = l.broker_fanout.as_ref().filter(|b| b.queues == f.slaves) {
            let ratio = f.latency.p99_ms / floor.with_commit.p99_ms;
            let (target, met) =
                if f.slaves == largest { ("<= 2 x floor", Some(ratio <= 2.0)) } else { ("(shown)", None) };
            rows.push(figure(
                format!("fan-out to {} slaves against the broker's fan-out with a commit each", f.slaves),
                format!("p99 {:.1} ms", f.latency.p99_ms),
                format!("p99 {:.1} ms", floor.with_commit.p99_ms),
                Some(ratio),
                target,
                met,
            ));
        }
    }
    rows
}
