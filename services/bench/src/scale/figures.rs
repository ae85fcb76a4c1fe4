//! The scale part's lines of the results table: per size, then the
//! partitioned copy beside the plain one at the largest size.

use super::{ScaleRun, SizeRun};
use crate::{
    stats::Percentiles,
    table::{figure, mb, ms, rate, thousands, Figure, MB},
};

/// A query's target, p99.
pub const QUERY_TARGET_MS: f64 = 100.0;
/// `verify` of one 10,000-computer slave.
pub const VERIFY_TARGET_S: f64 = 10.0;
pub const RSS_TARGET_MB: f64 = 256.0;
/// The replication's share of the raw upsert that the main throughput
/// holds to (it must hold at scale too).
pub const RATIO_TARGET: f64 = 0.8;

impl SizeRun {
    /// Seconds per million rows the real slaves' replication applied.
    pub fn seconds_per_million(&self) -> Option<f64> {
        self.sample.as_ref().filter(|s| s.rows_per_s > 0.0).map(|s| 1e6 / s.rows_per_s)
    }

    /// The name each of this size's lines starts with.
    fn head(&self) -> String {
        format!("scale, {} computers / {} slaves", thousands(self.computers), self.slaves)
    }
}

/// How a list answer counted its total, as the table says it.
fn total_of(answer: &serde_json::Value) -> String {
    let mut fields: Vec<String> =
        answer.as_object().map(|o| o.iter().map(|(k, v)| format!("{k} {v}")).collect()).unwrap_or_default();
    fields.sort();
    fields.join(", ")
}

fn query(name: String, p: &Percentiles, limit: String) -> Figure {
    figure(name, ms(p), limit, None, format!("p99 <= {QUERY_TARGET_MS:.0} ms"), Some(p.p99_ms <= QUERY_TARGET_MS))
}

impl ScaleRun {
    pub fn figures(&self) -> Vec<Figure> {
        let mut rows = Vec::new();
        for s in &self.sizes {
            rows.extend(size_figures(s));
        }
        if let (Some(p), Some(plain)) = (&self.partitioned, self.sizes.last()) {
            rows.extend(partitioned_figures(p, plain, self.partitions));
        }
        rows
    }
}

fn size_figures(s: &SizeRun) -> Vec<Figure> {
    let head = s.head();
    let bulk = s.slaves - s.sample_slaves;
    let mut rows = vec![figure(
        format!(
            "{head}: the copy of {bulk} slaves written in bulk by set-based SQL (rows, then indexes, then VACUUM ANALYZE)"
        ),
        format!("{:.0} s", s.load.seconds()),
        format!(
            "rows {:.0} s, indexes {:.0} s, analyze {:.0} s; database {:.2} GB",
            s.load.rows_seconds,
            s.load.index_seconds,
            s.load.analyze_seconds,
            s.database_bytes as f64 / 1e9
        ),
        None,
        "(shown)",
        None,
    )];
    if let Some(sample) = &s.sample {
        let ratio = sample.rows_per_s / s.upsert_rows_per_s;
        rows.push(figure(
            format!(
                "{head}: replication of {} new computers by {} real slaves on top",
                thousands(sample.rows),
                s.sample_slaves
            ),
            format!(
                "{} ({:.1} s, {:.1} s per million rows)",
                rate(sample.rows_per_s, "rows"),
                sample.seconds,
                1e6 / sample.rows_per_s
            ),
            format!("upsert into the same copy {}", rate(s.upsert_rows_per_s, "rows")),
            Some(ratio),
            format!(">= {RATIO_TARGET} x upsert"),
            Some(ratio >= RATIO_TARGET),
        ));
    }
    if let Some(r) = &s.report {
        rows.push(query(
            format!("{head}: report security-status via the master, {} requests", r.via_master.count),
            &r.via_master,
            format!("report service alone {}", ms(&r.direct)),
        ));
    }
    if let Some(error) = &s.report_error {
        rows.push(figure(
            format!("{head}: report security-status via the master (after a resend of every summary)"),
            "failed",
            error.clone(),
            None,
            format!("p99 <= {QUERY_TARGET_MS:.0} ms"),
            Some(false),
        ));
    }
    for l in &s.lists {
        rows.push(query(
            format!("{head}: `GET {}` ({}), {} requests", l.path, l.query, l.latency.count),
            &l.latency,
            total_of(&l.answer),
        ));
    }
    if let Some(seconds) = s.verify_seconds {
        rows.push(figure(
            format!("{head}: verify of one real slave's 10,000 computers (ask -> result)"),
            format!("{seconds:.2} s"),
            format!("the copy's read of one bulk slave {}", ms(&s.verify_read)),
            None,
            format!("<= {VERIFY_TARGET_S:.0} s"),
            Some(seconds <= VERIFY_TARGET_S),
        ));
    }
    rows.push(figure(
        format!("{head}: memory, master peak (VmHWM) from its start to the end"),
        mb(s.master_peak_rss),
        format!(
            "start on the copy {:.1} s; resend of every summary {}",
            s.start_seconds,
            s.resend_seconds.map_or("-".to_owned(), |r| format!("{r:.1} s"))
        ),
        None,
        format!("<= {RSS_TARGET_MB:.0} MB"),
        Some(s.master_peak_rss as f64 <= RSS_TARGET_MB * MB),
    ));
    rows
}

fn partitioned_figures(p: &SizeRun, plain: &SizeRun, partitions: usize) -> Vec<Figure> {
    let head = format!("{}, replica_rows in {partitions} hash partitions by slave", p.head());
    let mut rows = vec![
        figure(
            format!("{head}: load (rows, indexes, analyze)"),
            format!("{:.0} s, database {:.2} GB", p.load.seconds(), p.database_bytes as f64 / 1e9),
            format!("plain {:.0} s, {:.2} GB", plain.load.seconds(), plain.database_bytes as f64 / 1e9),
            Some(p.load.seconds() / plain.load.seconds()),
            "(shown)",
            None,
        ),
        figure(
            format!("{head}: UNNEST upsert of {} new computers", thousands(p.sample_rows_hint(plain))),
            rate(p.upsert_rows_per_s, "rows"),
            format!("plain {}", rate(plain.upsert_rows_per_s, "rows")),
            Some(p.upsert_rows_per_s / plain.upsert_rows_per_s),
            "(shown)",
            None,
        ),
    ];
    for (l, base) in p.lists.iter().zip(&plain.lists) {
        rows.push(figure(
            format!("{head}: `GET {}` ({})", l.path, l.query),
            ms(&l.latency),
            format!("plain p99 {:.1} ms", base.latency.p99_ms),
            Some(l.latency.p99_ms / base.latency.p99_ms),
            "(shown)",
            None,
        ));
    }
    rows.push(figure(
        format!("{head}: the copy's read of one slave that verify makes"),
        ms(&p.verify_read),
        format!("plain p99 {:.1} ms", plain.verify_read.p99_ms),
        Some(p.verify_read.p99_ms / plain.verify_read.p99_ms),
        "(shown)",
        None,
    ));
    rows.push(figure(
        format!("{head}: memory, master peak (VmHWM)"),
        mb(p.master_peak_rss),
        format!(
            "plain {}; start {:.1} s (plain {:.1} s)",
            mb(plain.master_peak_rss),
            p.start_seconds,
            plain.start_seconds
        ),
        None,
        "(shown)",
        None,
    ));
    rows
}

impl SizeRun {
    /// Rows of the raw upsert (the plain run's sample size).
    fn sample_rows_hint(&self, plain: &SizeRun) -> u64 {
        self.sample.as_ref().or(plain.sample.as_ref()).map_or(0, |s| s.rows)
    }
}
