//! Percentiles and rates of what the scenarios measured, the benchmark's
//! own database connections, and the settling of the database before a
//! latency is measured.

use std::time::Duration;

use anyhow::Context;

use serde::Serialize;

/// Percentiles of a set of durations, in milliseconds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// `None` when there are no samples.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        Some(Self {
            count: ms.len(),
            p50_ms: nearest_rank(&ms, 50.0),
            p99_ms: nearest_rank(&ms, 99.0),
            max_ms: ms[ms.len() - 1],
        })
    }
}

/// The nearest-rank percentile of sorted values: the smallest value with at
/// least `p` percent of the values at or below it.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A connection of the benchmark's own (outside any server's pool) to
/// `url`, `what` naming it in errors and logs.
pub async fn connect(url: &str, what: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("Failed to connect to {what}"))?;
    let what = what.to_owned();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "The benchmark's connection to {what} ended.");
        }
    });
    Ok(client)
}

/// Asks PostgreSQL for a checkpoint before a latency measurement, so one
/// that earlier bulk writes left due does not land in it. Needs a superuser
/// (or `pg_checkpoint`); without one the measurement goes on, and says so.
pub async fn checkpoint(client: &tokio_postgres::Client, before: &str) {
    if let Err(e) = client.batch_execute("CHECKPOINT").await {
        tracing::warn!(error = %e, "Could not checkpoint before {before}; a checkpoint may stall some of its rounds.");
    }
}

/// The machine's CPU time so far (`/proc/stat`'s first line, in ticks):
/// all of it, and the part neither idle nor waiting for I/O.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    /// Now; zeros where `/proc/stat` cannot be read.
    pub fn now() -> Self {
        std::fs::read_to_string("/proc/stat").ok().and_then(|s| Self::parse(&s)).unwrap_or_default()
    }

    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().next()?.strip_prefix("cpu ")?;
        let ticks: Vec<u64> = line.split_whitespace().filter_map(|t| t.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal ...
        let total: u64 = ticks.iter().take(8).sum();
        let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0);
        Some(Self { busy: total - idle, total })
    }

    /// The share of the machine's CPU busy since `self` (0 to 1).
    pub fn busy_since(&self) -> f64 {
        let now = Self::now();
        let total = now.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        now.busy.saturating_sub(self.busy) as f64 / total as f64
    }
}

/// Items per second over an elapsed time.
pub fn per_second(items: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    items as f64 / seconds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&samples).unwrap();
        assert_eq!((p.count, p.p50_ms, p.p99_ms, p.max_ms), (100, 50.0, 99.0, 100.0));
        let one = Percentiles::of(&[Duration::from_millis(7)]).unwrap();
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
        assert!(Percentiles::of(&[]).is_none());
    }

    #[test]
    fn cpu_time_is_read_from_the_first_line_of_proc_stat() {
        let stat = "cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n";
        let t = CpuTimes::parse(stat).unwrap();
        assert_eq!((t.busy, t.total), (160, 1000));
        assert!(CpuTimes::parse("intr 1 2 3\n").is_none());
    }

    #[test]
    fn rates_are_per_second() {
        assert_eq!(per_second(500, Duration::from_millis(250)), 2000.0);
        assert_eq!(per_second(5, Duration::ZERO), 0.0);
    }
}
