//! Report latency: the consolidated security-status report, asked from the
//! master's API (which forwards to the report service) and from the report
//! service itself, once the report service counts every computer.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use reqwest::Method;
use serde::Serialize;
use tokio::time::Instant;

use crate::{master::Master, stats::Percentiles};

/// Longest the report service may take to count every computer.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, Serialize)]
pub struct ReportLatency {
    pub computers: u64,
    pub slaves: usize,
    /// Through the master's `GET /api/reports/security-status`.
    pub via_master: Percentiles,
    /// Straight from the report service.
    pub direct: Percentiles,
    /// Time from the master's catch-up until the report counted everything.
    pub settle_seconds: f64,
}

pub async fn run(
    master: &Master,
    report_base: &str,
    token: &str,
    computers: u64,
    slaves: usize,
    requests: usize,
) -> anyhow::Result<ReportLatency> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let direct_url = format!("{report_base}/api/reports/security-status");
    let started = Instant::now();
    loop {
        let report: serde_json::Value = http.get(&direct_url).bearer_auth(token).send().await?.json().await?;
        if report["total"]["total"].as_u64() == Some(computers) {
            break;
        }
        if started.elapsed() > CATCH_UP_TIMEOUT {
            bail!(
                "the report service counts {} computers, not {computers}, after {CATCH_UP_TIMEOUT:?}",
                report["total"]["total"]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settle_seconds = started.elapsed().as_secs_f64();
    let mut via_master = Vec::with_capacity(requests);
    let mut direct = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        let report = master.call_ok(Method::GET, "/api/reports/security-status", None).await?;
        via_master.push(t.elapsed());
        ensure!(
            report["total"]["total"].as_u64() == Some(computers),
            "the master's report counts {}",
            report["total"]["total"]
        );
        let t = Instant::now();
        let response = http.get(&direct_url).bearer_auth(token).send().await?;
        ensure!(response.status().is_success(), "the report service answered {}", response.status());
        response.bytes().await?;
        direct.push(t.elapsed());
    }
    let latency = ReportLatency {
        computers,
        slaves,
        via_master: Percentiles::of(&via_master).context("no requests")?,
        direct: Percentiles::of(&direct).context("no requests")?,
        settle_seconds,
    };
    tracing::info!(?latency, "Report latency measured.");
    Ok(latency)
}
