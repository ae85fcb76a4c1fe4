//! One run, in order: the raw limits, then a master (child process), its
//! report service and the slaves, and the scenarios on them; everything it
//! created is removed at the end, whether the run succeeded or not.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use rampart_tests::{report::TestReport, AMQP_URL, PG_BASE, TOKEN};

use crate::{
    fleet::{self, Fleet, FleetConfig},
    limits::{self, LimitsPlan},
    master::{free_port, sibling_binary, Master, MasterConfig},
    plan::{Part, Plan},
    results::{Lag, Machine, Run},
    scenarios::{agent, console, fanout, fanout_large, multi_site, replication, report, traffic},
};

/// Longest the first full snapshots after registration may take.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(600);

/// Files the machine's broker must be allowed to open for a full run:
/// with its default of 1,024 the slaves' connections stop being accepted
/// part-way (`connection.open` times out). `ops/bench` raises it.
const FULL_RUN_BROKER_FILES: u64 = 16_384;

/// Runs `plan`; logs and temporary files go to `work_dir`.
pub async fn run(plan: Plan, work_dir: PathBuf) -> anyhow::Result<Run> {
    plan.check().map_err(anyhow::Error::msg)?;
    if plan.mode == "full" {
        broker_may_open_enough_files().await?;
    }
    let started_at = chrono::Utc::now();
    let namespace = format!("rb_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    tracing::info!(mode = plan.mode, namespace, work_dir = %work_dir.display(), "Benchmark started.");

    // Before the main fleet starts: the path's own hierarchies (and the
    // large fan-out's fleet, below) have the machine to themselves.
    let multi_site = if plan.runs(Part::MultiSite) {
        tracing::info!(slaves = plan.multi_site_slaves, "Multi-site path.");
        Some(multi_site::run(&namespace, &plan).await.context("measuring the multi-site path")?)
    } else {
        None
    };
    let large_fanout = if plan.runs(Part::Fanout1000) {
        Some(fanout_large::run(&namespace, &plan, &work_dir).await.context("measuring the fan-out to a large fleet")?)
    } else {
        None
    };
    let mut run = Run {
        started_at,
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: memory_total().unwrap_or(0),
            postgres: postgres_version().await.context("reading PostgreSQL's version")?,
            build: if cfg!(debug_assertions) { "debug" } else { "release" },
        },
        plan,
        limits: None,
        throughput: None,
        report: None,
        fanout: Vec::new(),
        lag: None,
        backlog: None,
        backlog_live: None,
        agent: None,
        multi_site,
        console: None,
        scale: None,
        large_fanout,
    };
    if run.plan.runs_fleet() {
        main_fleet(&mut run, &namespace, work_dir.clone()).await?;
    }
    if run.plan.runs(Part::Scale) {
        run.scale =
            Some(crate::scale::run(&namespace, &run.plan, &work_dir).await.context("measuring the scale part")?);
    }
    Ok(run)
}

/// Stops a full run at once, saying why, when the broker may not open
/// [`FULL_RUN_BROKER_FILES`]; goes on when its limit cannot be read (no
/// management API here).
async fn broker_may_open_enough_files() -> anyhow::Result<()> {
    match fanout_large::broker_use().await {
        Ok(broker) if broker.fd_total < FULL_RUN_BROKER_FILES => anyhow::bail!(
            "the broker may open only {} files and a full run needs {FULL_RUN_BROKER_FILES} (its slaves' \
             connections and queues): run it through ops/bench, which raises the limit (a restart of the broker)",
            broker.fd_total
        ),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "Could not read how many files the broker may open; going on.");
            Ok(())
        }
    }
}

/// The raw limits, then the main fleet of slaves with a master and its
/// report service, and the parts of the plan on them.
async fn main_fleet(run: &mut Run, namespace: &str, work_dir: PathBuf) -> anyhow::Result<()> {
    let plan = &run.plan;
    let limits_plan = LimitsPlan {
        database_url: format!("{PG_BASE}/{namespace}_limits"),
        amqp_url: AMQP_URL.into(),
        namespace: namespace.to_owned(),
        rows: plan.raw_rows,
        batch_rows: plan.batch_size,
        messages: plan.messages,
        round_trips: plan.round_trips,
        message_bytes: plan.message_bytes,
        fanout_queues: if plan.runs(Part::Fanout) { plan.fanout_slaves.iter().copied().max().unwrap_or(0) } else { 0 },
        fanout_rounds: plan.fanout_rounds,
    };
    let limits = limits::measure(&limits_plan).await.context("measuring the raw limits")?;
    tracing::info!(?limits, "Raw limits measured.");
    run.limits = Some(limits);

    let fleet_config = FleetConfig {
        namespace: namespace.to_owned(),
        site_brokers: Vec::new(),
        slaves: plan.slaves,
        pool_size: plan.slave_pool_size,
        interval: 3600,
        fast: plan.lag_slaves,
        batch_size: plan.batch_size,
    };
    tracing::info!(slaves = plan.slaves, "Starting the slaves.");
    let fleet = Fleet::start(&fleet_config).await?;
    let reports = TestReport::spawn_on(namespace, &format!("{namespace}_reports")).await;
    let work_dir = work_dir.join(namespace);
    let config = MasterConfig {
        binary: sibling_binary("rampart-server")?,
        work_dir: work_dir.clone(),
        database_url: format!("{PG_BASE}/{namespace}_hq"),
        amqp_url: AMQP_URL.into(),
        namespace: namespace.to_owned(),
        listen: format!("127.0.0.1:{}", free_port()?),
        token: TOKEN.into(),
        pool_size: plan.master_pool_size,
        reports_xml: reports.master_xml(),
    };
    let outcome = measure(run, &config, &fleet, &reports, &work_dir, &limits_plan).await;
    fleet::teardown(fleet, reports, &config, namespace).await;
    outcome
}

/// The main fleet's parts, in order; each writes its figures into `run`.
async fn measure(
    run: &mut Run,
    config: &MasterConfig,
    fleet: &Fleet,
    reports: &TestReport,
    work_dir: &std::path::Path,
    limits_plan: &LimitsPlan,
) -> anyhow::Result<()> {
    let plan = run.plan.clone();
    let master = Master::start(config).await?;
    let master_db = Arc::new(crate::stats::connect(&config.database_url, "the master's database").await?);

    tracing::info!(slaves = plan.slaves, "Registering the slaves.");
    fleet.register(&master.api).await?;
    fanout::prepare(fleet).await?;
    // The groups made above go with the next pass, and most slaves
    // replicate hourly: ask for it now.
    master.call_ok(reqwest::Method::POST, "/api/replication/now", Some(serde_json::json!({}))).await?;
    let mut heads = Vec::new();
    for i in 0..fleet.slaves.len() {
        heads.push((i, fleet.written_head(i).await?));
    }
    fleet.wait_acked(&heads, REGISTER_TIMEOUT).await.context("waiting for the first full snapshots")?;

    // Every later part reads or changes these computers.
    tracing::info!("Replication throughput.");
    let (mut master, throughput) =
        replication::throughput(fleet, master, config, &master_db, plan.computers_per_slave).await?;
    run.throughput = Some(throughput);
    // The machine may have changed speed since the limits were measured:
    // the database's rates again, next to the throughput in time.
    let again = limits::measure_database_again(limits_plan).await.context("measuring the raw limits again")?;
    tracing::info!(?again, "Raw database limits measured again after the throughput.");
    if let Some(limits) = run.limits.as_mut() {
        limits.after_throughput = Some(again);
    }
    let computers = plan.slaves as u64 * plan.computers_per_slave;

    if plan.runs(Part::Report) {
        tracing::info!("Report latency.");
        run.report =
            Some(report::run(&master, &reports.base, TOKEN, computers, plan.slaves, plan.report_requests).await?);
    }
    if plan.runs(Part::Console) {
        tracing::info!(computers, "Console page load.");
        let slave = &fleet.slaves[fleet.slaves.len() / 2].options.instance;
        run.console = Some(
            console::run(&master.api, &master_db, slave, plan.slaves, plan.computers_per_slave, plan.console_requests)
                .await?,
        );
    }
    if plan.runs(Part::Fanout) {
        for &slaves in &plan.fanout_slaves {
            tracing::info!(slaves, "Fan-out.");
            run.fanout.push(fanout::run(fleet, &master.api, slaves, plan.fanout_rounds).await?);
        }
    }
    let live =
        traffic::Traffic { slaves: plan.lag_slaves, computers: plan.computers_per_slave, rate: plan.update_rate };
    if plan.runs(Part::Lag) {
        tracing::info!(updates_per_s = live.updates_per_second(), seconds = plan.lag_seconds, "Replication lag.");
        let running = traffic::start(fleet, &live, master_db.clone());
        tokio::time::sleep(Duration::from_secs(plan.lag_seconds)).await;
        let outcome = running.finish(Duration::from_secs(120)).await?;
        let lag = Lag {
            computers: plan.lag_slaves as u64 * plan.computers_per_slave,
            updates_per_s: crate::stats::per_second(outcome.updates, outcome.elapsed),
            seconds: outcome.elapsed.as_secs_f64(),
            lag: crate::stats::Percentiles::of(&outcome.lags).context("no update was timed")?,
            poll_ms: traffic::POLL.as_millis() as u64,
        };
        tracing::info!(?lag, "Replication lag measured.");
        run.lag = Some(lag);
    }
    if plan.runs(Part::Drain) {
        tracing::info!(rows = plan.backlog_rows, "Backlog drain.");
        let (restarted, backlog, backlog_live) = replication::backlog(
            fleet,
            master,
            config,
            master_db.clone(),
            plan.backlog_per_slave(),
            plan.computers_per_slave,
            &live,
        )
        .await?;
        master = restarted;
        run.backlog = Some(backlog);
        run.backlog_live = Some(backlog_live);
    }
    if plan.runs(Part::Agent) {
        tracing::info!(computers = plan.agent_computers, "Agent memory.");
        run.agent = Some(
            agent::run(
                &sibling_binary("rampart-agent")?,
                AMQP_URL,
                &fleet.slaves[0],
                plan.agent_computers,
                Duration::from_secs(plan.agent_linger_seconds),
                &work_dir.join("agent.log"),
            )
            .await?,
        );
    }
    master.stop().await?;
    Ok(())
}

/// `SHOW server_version` of the machine's PostgreSQL.
async fn postgres_version() -> anyhow::Result<String> {
    let client = crate::stats::connect(&format!("{PG_BASE}/postgres"), "PostgreSQL").await?;
    Ok(client.query_one("SHOW server_version", &[]).await?.get(0))
}

fn memory_total() -> Option<u64> {
    crate::master::parse_kib(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemTotal:")
}
