//! One size of the scale part: a real master (the binary) over a copy of
//! `computers` computers, most written in bulk ([`super::copy`]), the rest
//! replicated by real slaves registered through the API; then what an
//! operator sees of it, timed.

use std::time::Duration;

use anyhow::{ensure, Context};
use rampart_shared::db;
use rampart_tests::{report::TestReport, AMQP_URL, PG_BASE, TOKEN};
use reqwest::Method;
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use super::copy::{self, Layout, Load};
use crate::{
    fleet::{Fleet, FleetConfig},
    master::{free_port, sibling_binary, Master, MasterConfig},
    plan::Plan,
    scenarios::report::{self, ReportLatency},
    stats::{per_second, Percentiles},
};

/// Longest the real slaves may take to replicate (their first snapshots,
/// then the sample).
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest a verification may take before the run fails.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(120);

/// What one size measured.
#[derive(Clone, Debug, Serialize)]
pub struct SizeRun {
    pub computers: u64,
    pub slaves: usize,
    /// Of those, the real slaves (the rest are written in bulk).
    pub sample_slaves: usize,
    pub disk: copy::Disk,
    pub load: Load,
    /// The master binary's start on the copy, to its `/health`.
    pub start_seconds: f64,
    /// The real slaves' computers replicated, from asking them until the
    /// last acknowledgement.
    pub sample: Option<Sample>,
    /// The same number of rows upserted (UNNEST) into the same copy, as one
    /// more slave's new computers.
    pub upsert_rows_per_s: f64,
    /// `POST /api/reports/resend`: every slave's summary read from the copy.
    pub resend_seconds: Option<f64>,
    pub report: Option<ReportLatency>,
    /// Why the resend or the report failed, if it did.
    pub report_error: Option<String>,
    pub lists: Vec<ListQuery>,
    /// `verify` of one real slave, from asking until the result.
    pub verify_seconds: Option<f64>,
    /// The master's read of one bulk slave's computers that `verify` makes.
    pub verify_read: Percentiles,
    /// Peak resident memory of the master (VmHWM) over all of the above.
    pub master_peak_rss: u64,
    pub database_bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
}

/// One `GET /api/endpoints` query's times and the total it answered.
#[derive(Clone, Debug, Serialize)]
pub struct ListQuery {
    pub query: String,
    pub path: String,
    pub latency: Percentiles,
    /// The answer's fields but the computers (the total, and whatever says
    /// how it was counted).
    pub answer: serde_json::Value,
}

/// The copy's variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// As the migrations make it, with real slaves and a report service.
    Plain,
    /// `replica_rows` hash-partitioned by slave: the copy and the queries only.
    Partitioned(usize),
}

/// Measures `computers` in namespace `ns` and removes everything it made.
pub async fn run(
    ns: &str,
    plan: &Plan,
    computers: u64,
    shape: Shape,
    disk: copy::Disk,
    work_dir: &std::path::Path,
) -> anyhow::Result<SizeRun> {
    let scale = &plan.scale;
    let sample_slaves = if shape == Shape::Plain { scale.sample_slaves } else { 0 };
    let fleet_config = FleetConfig {
        namespace: ns.to_owned(),
        site_brokers: Vec::new(),
        slaves: sample_slaves,
        pool_size: plan.slave_pool_size,
        interval: 3600,
        fast: 0,
        batch_size: plan.batch_size,
    };
    let fleet = Fleet::start(&fleet_config).await?;
    let reports = TestReport::spawn_on(ns, &format!("{ns}_reports")).await;
    let config = MasterConfig {
        binary: sibling_binary("rampart-server")?,
        work_dir: work_dir.join(ns),
        database_url: format!("{PG_BASE}/{ns}_hq"),
        amqp_url: AMQP_URL.into(),
        namespace: ns.to_owned(),
        listen: format!("127.0.0.1:{}", free_port()?),
        token: TOKEN.into(),
        pool_size: plan.master_pool_size,
        reports_xml: reports.master_xml(),
    };
    let outcome = measure(plan, computers, shape, disk, &config, &fleet, &reports).await;
    crate::fleet::teardown(fleet, reports, &config, ns).await;
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    plan: &Plan,
    computers: u64,
    shape: Shape,
    disk: copy::Disk,
    config: &MasterConfig,
    fleet: &Fleet,
    reports: &TestReport,
) -> anyhow::Result<SizeRun> {
    let scale = &plan.scale;
    let sample_slaves = fleet.slaves.len();
    let sample_rows = scale.sample_rows();
    // The real slaves' share is written in bulk too when there are none
    // (the partitioned copy), as that many more bulk slaves.
    let layout = Layout::of(0, computers - sample_rows, scale.slaves - scale.sample_slaves);
    let mut layouts = vec![layout];
    if sample_slaves == 0 {
        layouts.push(Layout::of(layout.slaves, sample_rows, scale.sample_slaves));
    }
    let url = &config.database_url;
    db::ensure_database(url).await.context("creating the scale master's database")?;
    {
        let pool = db::pool(url, 2)?;
        db::migrate(&pool, rampart_server::migrations::MIGRATIONS).await.context("migrating the scale master")?;
    }
    let mut client = crate::stats::connect(url, "the scale master's database").await?;
    let indexes = copy::secondary_indexes(&client).await?;
    if let Shape::Partitioned(partitions) = shape {
        copy::partition(&client, partitions).await?;
    }
    tracing::info!(computers, bulk_slaves = layout.slaves, ?shape, "Writing the scale copy in bulk.");
    let load = copy::load(url, &layouts, &indexes).await?;

    let started = Instant::now();
    let mut master = Master::start(config).await?;
    let mut start_seconds = started.elapsed().as_secs_f64();
    let mut sample = None;
    if sample_slaves > 0 {
        fleet.register(&master.api).await?;
        let mut heads = Vec::new();
        for i in 0..sample_slaves {
            heads.push((i, fleet.written_head(i).await?));
        }
        fleet.wait_acked(&heads, REPLICATION_TIMEOUT).await.context("waiting for the first full snapshots")?;
        // The sample from a standing start, as the throughput part does:
        // the computers enrolled while the master is stopped.
        master.stop().await?;
        let heads = fleet.load_endpoints(scale.sample_computers).await?;
        let started = Instant::now();
        master = Master::start(config).await.context("restarting the scale master")?;
        start_seconds = started.elapsed().as_secs_f64();
        let asked = Instant::now();
        for slave in &fleet.slaves {
            let path = format!("/api/slaves/{}/replicate", slave.options.instance);
            master.call_ok(Method::POST, &path, Some(json!({}))).await?;
        }
        let reached = fleet.wait_acked(&heads, REPLICATION_TIMEOUT).await?;
        let elapsed = reached.into_iter().max().unwrap_or(asked) - asked;
        let names: Vec<String> = fleet.slaves.iter().map(|s| s.options.instance.to_string()).collect();
        let held: i64 = client
            .query_one(
                "SELECT count(*) FROM replica_rows WHERE slave_id = ANY($1) AND table_name = 'endpoints' AND row IS NOT NULL",
                &[&names],
            )
            .await?
            .get(0);
        ensure!(held as u64 == sample_rows, "the master holds {held} of the real slaves' computers, not {sample_rows}");
        let measured =
            Sample { rows: sample_rows, seconds: elapsed.as_secs_f64(), rows_per_s: per_second(sample_rows, elapsed) };
        tracing::info!(?measured, "The real slaves' computers replicated.");
        sample = Some(measured);
    }

    let (mut resend_seconds, mut report, mut report_error) = (None, None, None);
    if shape == Shape::Plain {
        match report_at_scale(&master, reports, computers, scale.slaves, scale.requests).await {
            Ok((resend, latency)) => (resend_seconds, report) = (Some(resend), Some(latency)),
            // Shown in the table; the other figures of the size still count.
            Err(e) => {
                tracing::warn!(computers, error = %format!("{e:#}"), "The report at this size failed.");
                report_error = Some(format!("{e:#}"));
            }
        }
    }
    let lists = time_lists(&master, layout, scale.requests).await?;
    let verify_seconds = match fleet.slaves.first() {
        Some(slave) => Some(verify(&master, slave.options.instance.as_str()).await?),
        None => None,
    };
    let mut reads = Vec::new();
    for _ in 0..scale.requests.min(10) {
        reads.push(copy::verify_read(&client, &layout.middle().0).await?);
    }
    let master_peak_rss = master.peak_rss()?;
    master.stop().await?;

    client
        .execute("INSERT INTO slaves (id, state, slave_key) VALUES ('raw-upsert', 'active', 'raw-limits')", &[])
        .await?;
    let upsert_rows_per_s =
        crate::limits::upsert_rate(&mut client, "raw-upsert", scale.sample_rows(), plan.batch_size).await?;
    let admin = crate::stats::connect(&format!("{PG_BASE}/postgres"), "PostgreSQL").await?;
    let database_bytes = copy::database_bytes(&admin, &db::database_name(url)?).await?;
    Ok(SizeRun {
        computers,
        slaves: scale.slaves,
        sample_slaves,
        disk,
        load,
        start_seconds,
        sample,
        upsert_rows_per_s,
        resend_seconds,
        report,
        report_error,
        lists,
        verify_seconds,
        verify_read: Percentiles::of(&reads).context("no verify read")?,
        master_peak_rss,
        database_bytes,
    })
}

/// Longest the master's resend of every slave's summary may take (one
/// transaction reading every slave's part of the copy).
const RESEND_TIMEOUT: Duration = Duration::from_secs(900);

/// The master's resend of every summary (timed), then the report's latency
/// once the report service counts every computer.
async fn report_at_scale(
    master: &Master,
    reports: &TestReport,
    computers: u64,
    slaves: usize,
    requests: usize,
) -> anyhow::Result<(f64, ReportLatency)> {
    let http = reqwest::Client::builder().timeout(RESEND_TIMEOUT).build()?;
    let started = Instant::now();
    let response = http
        .post(format!("{}/api/reports/resend", master.base))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .context("asking the master to resend every summary")?;
    ensure!(response.status().is_success(), "the master answered {} to the resend", response.status());
    let resend = started.elapsed().as_secs_f64();
    tracing::info!(computers, resend_seconds = resend, "The master queued every slave's summary.");
    let latency = report::run(master, &reports.base, TOKEN, computers, slaves, requests).await?;
    Ok((resend, latency))
}

/// The list queries an operator makes, each `requests` times after one
/// untimed: the first page, a status filter, a hostname search and one
/// bulk slave's page. Each answer must hold computers.
async fn time_lists(master: &Master, layout: Layout, requests: usize) -> anyhow::Result<Vec<ListQuery>> {
    let (slave, searched) = layout.middle();
    let queries = [
        ("first page", "/api/endpoints?limit=50".to_owned()),
        ("status filter", "/api/endpoints?status=infected&limit=50".to_owned()),
        ("hostname search", format!("/api/endpoints?search=pc-{searched}&limit=50")),
        ("one slave's page", format!("/api/endpoints?slave={slave}&limit=50")),
    ];
    let mut lists = Vec::new();
    for (query, path) in queries {
        let mut answer = master.call_ok(Method::GET, &path, None).await?;
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let started = Instant::now();
            let body = master.call_ok(Method::GET, &path, None).await?;
            times.push(started.elapsed());
            let shown = body["endpoints"].as_array().map_or(0, Vec::len);
            ensure!(shown > 0, "the master's {path} shows no computer: {body}");
        }
        if let Some(fields) = answer.as_object_mut() {
            fields.remove("endpoints");
        }
        let latency = Percentiles::of(&times).context("no requests")?;
        tracing::info!(query, path, ?latency, %answer, "Timed a list query on the scale master.");
        lists.push(ListQuery { query: query.to_owned(), path, latency, answer });
    }
    Ok(lists)
}

/// `rampartctl verify --slave <slave>` as the API serves it: asks, then
/// polls until the result; the seconds it took. The copy must agree.
async fn verify(master: &Master, slave: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let asked = master.call_ok(Method::POST, "/api/verifications", Some(json!({"slave": slave}))).await?;
    let id = asked["verifications"][0]["id"].as_str().context("the master started no verification")?.to_owned();
    loop {
        let shown = master.call_ok(Method::GET, &format!("/api/verifications/{id}"), None).await?;
        if shown["state"] == "finished" {
            let seconds = started.elapsed().as_secs_f64();
            ensure!(shown["in_sync"] == true, "the verification of {slave} found differences: {shown}");
            tracing::info!(slave_id = slave, seconds, "Verified a real slave on the scale master.");
            return Ok(seconds);
        }
        ensure!(started.elapsed() < VERIFY_TIMEOUT, "the verification of {slave} did not finish in {VERIFY_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
