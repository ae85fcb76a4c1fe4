//! Fan-out to 1,000 slaves: a master policy to every slave of a fleet laid
//! out many to a database ([`crate::schema_fleet`]), against the floor at
//! the same width and in the same layout.
//!
//! In order: the shared databases and the slaves' schemas are made; the
//! floor ([`crate::broker_fanout::measure_in`]) runs with a quorum queue
//! per slave and each consumer committing its row in a table of its slave's
//! schema; then a master of its own (the `rampart-server` binary, as the
//! main fleet's) starts, the slaves start (timed) and register through its
//! API (timed, with their first snapshots); the idle fleet's CPU and the
//! broker's memory, file descriptors and queues are read; and the fan-out
//! is measured as [`super::fanout::run`] measures the 100-slave one. The
//! master, the slaves, their queues and the shared databases are removed
//! at the end, whatever happened.

use std::{path::Path, time::Duration};

use anyhow::Context;
use rampart_shared::{
    amqp::Broker,
    broker_admin::{settings::read_credentials, ManagementClient},
    topology::{NameSegment, Topology},
    Secret,
};
use rampart_tests::{enrolled::MANAGEMENT_URL, AMQP_URL, PG_BASE, TOKEN};
use serde::Serialize;
use tokio::time::Instant;

use crate::{
    broker_fanout::{self, BrokerFanout},
    fleet::Fleet,
    master::{free_port, sibling_binary, Master, MasterConfig},
    plan::Plan,
    scenarios::fanout::{self, Fanout},
    schema_fleet::{self, Layout},
    stats::CpuTimes,
    table::{figure, mb, ms, thousands, Figure},
};

/// Longest the first snapshots after registration may take.
const SYNC_TIMEOUT: Duration = Duration::from_secs(900);
/// How long the idle fleet's CPU is sampled (also longer than the
/// management API's statistics interval, 5 s, so the broker's figures
/// read afterwards include every slave's queues and connections).
const IDLE_SAMPLE: Duration = Duration::from_secs(6);

/// What one slave of this layout costs the machine's memory at its peak,
/// the first snapshots, when each slave's pool has both its connections
/// open: two PostgreSQL backends of about 6 MB, under 1 MB in the
/// benchmark's process (0.85 MB at 100 slaves, 2026-12-06 22:36, once the
/// broker connections' buffers were cut from 8 MiB to 2 MiB), and about
/// 1.5 MB in the broker; rounded up. Idle, the pools close one of the two
/// ([`Layout::idle_timeout_s`]). Before those changes a slave cost 24 MB,
/// and a run of 1,000 on a machine of 24 GB was stopped by the kernel's
/// out-of-memory killer during the first snapshots.
const BYTES_PER_SLAVE: u64 = 16 * 1024 * 1024;
/// Memory left to everything else while the fleet runs.
const HEADROOM: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Clone, Debug, Serialize)]
pub struct LargeFanout {
    /// Slaves asked for (`--large-fanout-slaves`); the layout's are fewer
    /// when the machine's free memory holds fewer.
    pub asked: usize,
    pub layout: Layout,
    /// Seconds until every slave had started, registered (the calls), and
    /// had its first snapshot acknowledged by the master.
    pub start_seconds: f64,
    pub register_seconds: f64,
    pub sync_seconds: f64,
    /// While the fleet and its master idled: the benchmark process's CPU
    /// (the slaves' share, in cores), and the machine's (0 to 1, whatever
    /// else ran on it).
    pub idle_process_cores: f64,
    pub idle_machine_cpu: f64,
    /// The benchmark process's resident memory with every slave in it.
    pub process_rss: u64,
    /// The machine's memory in use (`MemTotal - MemAvailable`) then.
    pub machine_memory_used: u64,
    /// PostgreSQL backends connected to the fleet's databases then (each
    /// slave's pool closes idle connections, [`Layout::idle_timeout_s`]).
    pub idle_backends: i64,
    pub broker: BrokerUse,
    pub floor: BrokerFanout,
    pub fanout: Fanout,
}

/// The broker node's use with every slave running.
#[derive(Clone, Debug, Serialize)]
pub struct BrokerUse {
    pub mem_used: u64,
    pub fd_used: u64,
    pub fd_total: u64,
    pub queues: u64,
    pub connections: u64,
}

impl LargeFanout {
    /// The fan-out against the floor at the same width, the floor itself,
    /// the broker at that many queues, and the fleet's start and idle cost.
    pub fn figures(&self) -> Vec<Figure> {
        let (f, floor, n) = (&self.fanout, &self.floor, self.layout.slaves);
        let mut layout = self.layout.describe();
        if self.asked > n {
            layout.push_str(&format!("; {} asked, more than the free memory holds", self.asked));
        }
        let b = &self.broker;
        vec![
            figure(
                format!("fan-out: a policy to {n} slaves ({layout}), {} rounds", f.rounds),
                format!(
                    "{} (first slave p50 {:.1} ms; every receipt shown by the master p99 {:.1} ms), {}",
                    ms(&f.latency),
                    f.first.p50_ms,
                    f.receipts.p99_ms,
                    f.applied_at.describe()
                ),
                format!("floor p99 {:.1} ms", floor.with_commit.p99_ms),
                Some(f.latency.p99_ms / floor.with_commit.p99_ms),
                "p99 <= 1 s",
                Some(f.latency.p99_ms <= 1000.0),
            ),
            figure(
                format!(
                    "raw: one message to each of {} quorum queues -> the last consumed, {} rounds",
                    floor.queues, floor.rounds
                ),
                ms(&floor.latency),
                "-",
                None,
                "baseline",
                None,
            ),
            figure(
                format!(
                    "raw: the same, each consumer committing a row in its slave's schema ({}) -> the last committed",
                    self.layout.placement()
                ),
                ms(&floor.with_commit),
                "-",
                None,
                "baseline",
                None,
            ),
            figure(
                format!("broker with {n} slaves running: memory, file descriptors"),
                format!(
                    "{}, {} of {} files, {} queues, {} connections",
                    mb(b.mem_used),
                    thousands(b.fd_used),
                    thousands(b.fd_total),
                    thousands(b.queues),
                    thousands(b.connections)
                ),
                "-",
                None,
                "(shown)",
                None,
            ),
            figure(
                format!("{n} slaves: start, register, first snapshots"),
                format!(
                    "{:.0} s, {:.0} s, {:.0} s; idle: {:.2} cores in the slaves' process (machine {:.0}% busy), {} \
                     resident, {} PostgreSQL backends, machine memory in use {}",
                    self.start_seconds,
                    self.register_seconds,
                    self.sync_seconds,
                    self.idle_process_cores,
                    self.idle_machine_cpu * 100.0,
                    mb(self.process_rss),
                    thousands(self.idle_backends.max(0) as u64),
                    mb(self.machine_memory_used)
                ),
                "-",
                None,
                "(shown)",
                None,
            ),
        ]
    }
}

/// Measures the fan-out to `plan.large_fanout_slaves` slaves; `work_dir`
/// takes the master's configuration and log.
pub async fn run(namespace: &str, plan: &Plan, work_dir: &Path) -> anyhow::Result<LargeFanout> {
    let asked = plan.large_fanout_slaves;
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| crate::master::parse_kib(&m, "MemAvailable:"))
        .unwrap_or(u64::MAX);
    let fits = (available.saturating_sub(HEADROOM) / BYTES_PER_SLAVE).max(1) as usize;
    let per_slave_mb = BYTES_PER_SLAVE / (1024 * 1024);
    if fits < asked {
        tracing::warn!(
            asked,
            fits,
            available_mb = available / (1024 * 1024),
            per_slave_mb,
            "The machine's free memory holds fewer slaves than asked: measuring with fewer."
        );
    }
    let layout = Layout::of(asked.min(fits));
    tracing::info!(slaves = layout.slaves, layout = layout.describe(), "Fan-out to a large fleet.");
    let outcome = measure(namespace, plan, &layout, work_dir).await;
    schema_fleet::drop_databases(&layout, namespace).await;
    outcome.map(|mut measured| {
        measured.asked = asked;
        measured
    })
}

async fn measure(namespace: &str, plan: &Plan, layout: &Layout, work_dir: &Path) -> anyhow::Result<LargeFanout> {
    schema_fleet::create(layout, namespace).await.context("creating the shared databases")?;
    let floor = floor(namespace, plan, layout).await.context("measuring the floor at the fleet's width")?;

    let config = MasterConfig {
        binary: sibling_binary("rampart-server")?,
        work_dir: work_dir.join(namespace).join("fanout-large"),
        database_url: format!("{PG_BASE}/{namespace}_fanout_hq"),
        amqp_url: AMQP_URL.into(),
        namespace: namespace.to_owned(),
        listen: format!("127.0.0.1:{}", free_port()?),
        token: TOKEN.into(),
        pool_size: plan.master_pool_size,
        reports_xml: String::new(),
    };
    let master = Master::start(&config).await?;
    let started = Instant::now();
    let fleet = Fleet { slaves: schema_fleet::start(layout, namespace).await };
    let start_seconds = started.elapsed().as_secs_f64();
    tracing::info!(slaves = layout.slaves, seconds = start_seconds, "Slaves started.");
    let outcome = with_fleet(namespace, &fleet, &master, plan, layout, start_seconds, floor).await;
    let _ = master.stop().await;
    tracing::info!("Removing the large fleet.");
    fleet.stop().await;
    let _ = rampart_shared::db::drop_database(&config.database_url).await;
    let topology = Topology::new(&NameSegment::parse(namespace).expect("the namespace is a valid name"));
    let queues =
        [topology.master_status_queue(), topology.master_replication_queue(), topology.master_live_replication_queue()];
    rampart_tests::delete_queues(&queues).await;
    outcome
}

/// The broker's fan-out to a queue per slave, each consumer committing in
/// its slave's schema.
async fn floor(namespace: &str, plan: &Plan, layout: &Layout) -> anyhow::Result<BrokerFanout> {
    let names: Vec<String> = (0..layout.slaves).map(|i| format!("{namespace}.large_fanout_{i:04}")).collect();
    let targets = (0..layout.slaves).map(|i| layout.commit_target(namespace, i)).collect::<anyhow::Result<Vec<_>>>()?;
    let first = crate::stats::connect(&targets[0].database_url, "a shared slaves' database").await?;
    crate::stats::checkpoint(&first, "the floor at the fleet's width").await;
    let broker = Broker::connect(Secret::new(AMQP_URL.to_owned()), "rampart-bench large fan-out").await?;
    let body = vec![b'x'; plan.message_bytes];
    let measured =
        broker_fanout::measure_in(&broker, &names, plan.large_fanout_rounds, &body, AMQP_URL, &targets).await;
    broker.close().await;
    measured
}

async fn with_fleet(
    namespace: &str,
    fleet: &Fleet,
    master: &Master,
    plan: &Plan,
    layout: &Layout,
    start_seconds: f64,
    floor: BrokerFanout,
) -> anyhow::Result<LargeFanout> {
    let started = Instant::now();
    fleet.register(&master.api).await?;
    let register_seconds = started.elapsed().as_secs_f64();
    tracing::info!(slaves = layout.slaves, seconds = register_seconds, "Slaves registered.");
    fanout::prepare(fleet).await?;
    master.call_ok(reqwest::Method::POST, "/api/replication/now", Some(serde_json::json!({}))).await?;
    let mut heads = Vec::with_capacity(fleet.slaves.len());
    for i in 0..fleet.slaves.len() {
        heads.push((i, fleet.written_head(i).await?));
    }
    fleet.wait_acked(&heads, SYNC_TIMEOUT).await.context("waiting for the first snapshots")?;
    let sync_seconds = started.elapsed().as_secs_f64() - register_seconds;
    tracing::info!(slaves = layout.slaves, seconds = sync_seconds, "First snapshots acknowledged.");

    let (cpu, own) = (CpuTimes::now(), process_cpu_ticks());
    tokio::time::sleep(IDLE_SAMPLE).await;
    let idle_machine_cpu = cpu.busy_since();
    let idle_process_cores =
        process_cpu_ticks().saturating_sub(own) as f64 / TICKS_PER_SECOND / IDLE_SAMPLE.as_secs_f64();
    let broker = broker_use().await?;
    let process_rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| crate::master::parse_kib(&s, "VmRSS:"))
        .unwrap_or(0);
    let machine_memory_used = machine_memory_used();
    let idle_backends = fleet_backends(layout, namespace).await?;
    tracing::info!(
        idle_process_cores,
        idle_machine_cpu,
        process_rss,
        machine_memory_used,
        idle_backends,
        ?broker,
        "The idle fleet."
    );

    let fanout = fanout::run(fleet, &master.api, layout.slaves, plan.large_fanout_rounds).await?;
    Ok(LargeFanout {
        asked: layout.slaves,
        layout: layout.clone(),
        start_seconds,
        register_seconds,
        sync_seconds,
        idle_process_cores,
        idle_machine_cpu,
        process_rss,
        machine_memory_used,
        idle_backends,
        broker,
        floor,
        fanout,
    })
}

/// The machine's memory in use: `MemTotal - MemAvailable` of `/proc/meminfo`.
fn machine_memory_used() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name| crate::master::parse_kib(&meminfo, name).unwrap_or(0);
    field("MemTotal:").saturating_sub(field("MemAvailable:"))
}

/// PostgreSQL backends connected to the fleet's shared databases (the one
/// asking excluded).
async fn fleet_backends(layout: &Layout, namespace: &str) -> anyhow::Result<i64> {
    let url = format!("{PG_BASE}/{}", layout.database(namespace, 0));
    let client = crate::stats::connect(&url, "a shared slaves' database").await?;
    let databases: Vec<String> = (0..layout.databases).map(|d| layout.database(namespace, d)).collect();
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
            &[&databases],
        )
        .await
        .context("counting the fleet's PostgreSQL backends")?;
    Ok(row.get(0))
}

/// `/proc`'s clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The CPU this process has used (user and system), in clock ticks.
fn process_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are
    // the 12th and 13th of them.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// The machine broker's node, through its management API.
pub(crate) async fn broker_use() -> anyhow::Result<BrokerUse> {
    let (user, password) =
        read_credentials(&rampart_tests::enrolled::admin_credentials()).map_err(anyhow::Error::msg)?;
    let client = ManagementClient::new(MANAGEMENT_URL, &user, password)?;
    let node = client.node_use().await.context("reading the broker node's memory and file descriptors")?;
    Ok(BrokerUse {
        mem_used: node.mem_used,
        fd_used: node.fd_used,
        fd_total: node.fd_total,
        queues: node.queues,
        connections: node.connections,
    })
}
