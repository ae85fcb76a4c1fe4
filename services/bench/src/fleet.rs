//! The simulated slaves: real servers, many to this process, each with its
//! own database and queues, registered to the master through its :7073 API.
//! Their data is written straight into their databases (as their agent
//! inboxes would), and the change capture, the replicator and the command
//! consumer they run are the production code. [`teardown`] removes a
//! hierarchy a part made (its slaves, report service, master database and
//! queues).

use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{stream, StreamExt, TryStreamExt};
use rampart_shared::{
    replication::Watermark,
    topology::{NameSegment, Topology},
};
use rampart_tests::{report::TestReport, ServerOptions, TestServer};
use reqwest::Method;
use serde_json::json;
use tokio::time::Instant;
use tokio_postgres::types::ToSql;

use crate::{
    master::{Api, MasterConfig},
    rows,
};

/// Slaves started (or loaded) at once: more only queue on two cores.
const PARALLEL: usize = 4;

/// How the slaves are set up.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub namespace: String,
    /// Each slave's own broker (a site broker, linked to the master's by
    /// registration), in order; empty: every slave on the machine's broker.
    pub site_brokers: Vec<SiteBroker>,
    pub slaves: usize,
    pub pool_size: usize,
    /// `ReplicationInterval` of most slaves, seconds.
    pub interval: u64,
    /// The first `fast` slaves replicate every second instead (the live
    /// traffic runs on them).
    pub fast: usize,
    /// `ReplicationBatchSize`, rows.
    pub batch_size: usize,
}

/// A slave's own broker: its AMQP URL and its `<Management>` element.
#[derive(Clone, Debug)]
pub struct SiteBroker {
    pub amqp_url: String,
    pub management_xml: String,
}

pub struct Fleet {
    pub slaves: Vec<TestServer>,
}

impl Fleet {
    /// Starts the slaves (stand-alones for now), `PARALLEL` at a time.
    pub async fn start(config: &FleetConfig) -> anyhow::Result<Self> {
        let slaves: Vec<TestServer> = stream::iter(0..config.slaves)
            .map(|i| {
                let mut options = ServerOptions::site(&slave_name(i), &config.namespace);
                options.database = format!("{}_{}", config.namespace, slave_name(i));
                options.pool_size = config.pool_size;
                options.extra_xml = format!(
                    "<ReplicationInterval>{}</ReplicationInterval><ReplicationBatchSize>{}</ReplicationBatchSize>",
                    if i < config.fast { 1 } else { config.interval },
                    config.batch_size
                );
                if let Some(broker) = config.site_brokers.get(i) {
                    options.amqp_url = broker.amqp_url.clone();
                    options.broker_xml = broker.management_xml.clone();
                    options.extra_xml.push_str("<Hierarchy><SiteBroker>true</SiteBroker></Hierarchy>");
                }
                TestServer::spawn(options)
            })
            .buffered(PARALLEL)
            .collect()
            .await;
        Ok(Self { slaves })
    }

    /// Registers every slave to the master behind `master` with a fresh
    /// token each.
    pub async fn register(&self, master: &Api) -> anyhow::Result<()> {
        let address = master.address().to_owned();
        stream::iter(&self.slaves)
            .map(|slave| {
                let address = address.clone();
                async move {
                    let token = master.call_ok(Method::POST, "/api/registration-tokens", Some(json!({}))).await?;
                    let (status, body) = slave
                        .post("/api/hierarchy/register", json!({"master": address, "token": token["token"]}))
                        .await;
                    if status != 200 {
                        bail!("{} could not register: {status} {body}", slave.options.instance);
                    }
                    Ok(())
                }
            })
            .buffer_unordered(PARALLEL)
            .try_collect::<()>()
            .await
    }

    /// Enrolls `count` computers in each slave; each slave's index and the
    /// head its load ends at.
    pub async fn load_endpoints(&self, count: u64) -> anyhow::Result<Vec<(usize, Watermark)>> {
        self.load_endpoints_from(0, count).await
    }

    /// [`Self::load_endpoints`] numbered from `first` (a later load's
    /// computers are new ones).
    pub async fn load_endpoints_from(&self, first: u64, count: u64) -> anyhow::Result<Vec<(usize, Watermark)>> {
        self.load(0, rows::INSERT_ENDPOINTS, &[count as i64, first as i64]).await
    }

    /// Records `count` detections on their first `computers` in each slave
    /// from the `first`-th on.
    pub async fn load_detections(
        &self,
        first: usize,
        count: u64,
        computers: u64,
    ) -> anyhow::Result<Vec<(usize, Watermark)>> {
        self.load(first, rows::INSERT_DETECTIONS, &[count as i64, computers as i64]).await
    }

    /// Runs `sql` in each slave from the `first`-th on, with the slave's
    /// name as `$1` and `numbers` after it, each in its own transaction.
    async fn load(&self, first: usize, sql: &str, numbers: &[i64]) -> anyhow::Result<Vec<(usize, Watermark)>> {
        stream::iter(self.slaves.iter().enumerate().skip(first))
            .map(|(i, slave)| async move {
                let name = slave.options.instance.as_str();
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&name];
                params.extend(numbers.iter().map(|n| n as &(dyn ToSql + Sync)));
                let mut client = slave.state.pool.get().await?;
                let tx = client.transaction().await?;
                tx.execute(sql, &params).await.with_context(|| format!("loading {name}"))?;
                let head = head_of_transaction(&tx).await?;
                tx.commit().await?;
                Ok::<_, anyhow::Error>((i, head))
            })
            .buffered(PARALLEL)
            .try_collect()
            .await
    }

    /// Waits until the master has acknowledged each slave's stream up to
    /// its head (every change written before it); the time each got there.
    pub async fn wait_acked(&self, heads: &[(usize, Watermark)], timeout: Duration) -> anyhow::Result<Vec<Instant>> {
        let deadline = Instant::now() + timeout;
        let mut reached: Vec<Option<Instant>> = vec![None; heads.len()];
        loop {
            for (i, (slave, head)) in heads.iter().enumerate() {
                if reached[i].is_none() && self.acked(*slave).await? >= *head {
                    reached[i] = Some(Instant::now());
                }
            }
            if reached.iter().all(Option::is_some) {
                return Ok(reached.into_iter().flatten().collect());
            }
            if Instant::now() >= deadline {
                let behind: Vec<&str> = heads
                    .iter()
                    .zip(&reached)
                    .filter(|(_, r)| r.is_none())
                    .map(|((s, _), _)| self.slaves[*s].options.instance.as_str())
                    .collect();
                bail!("after {timeout:?} the master still had not acknowledged everything of {}", behind.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where the master has acknowledged slave `i`'s stream to.
    pub async fn acked(&self, i: usize) -> anyhow::Result<Watermark> {
        let client = self.slaves[i].state.pool.get().await?;
        let row = client
            .query_opt("SELECT repl_acked_xid, repl_acked_seq FROM master_link WHERE id = 1", &[])
            .await?
            .with_context(|| format!("{} has no master", self.slaves[i].options.instance))?;
        Ok(Watermark { xid: row.get(0), seq: row.get(1) })
    }

    /// A position past every change slave `i` has committed so far.
    pub async fn written_head(&self, i: usize) -> anyhow::Result<Watermark> {
        let client = self.slaves[i].state.pool.get().await?;
        Ok(rampart_server::replication::changes::written_head(&client).await?)
    }

    /// Stops every slave and removes its database and queues.
    pub async fn stop(self) {
        // Stopping is mostly waiting (a server drains for up to 10 s).
        stream::iter(self.slaves).for_each_concurrent(25, |s| s.stop(&[])).await;
    }
}

/// `s000`, `s001`...
pub fn slave_name(i: usize) -> String {
    format!("s{i:03}")
}

/// The last change the current transaction wrote (the stream reaches it
/// once it passes this transaction's id).
async fn head_of_transaction(tx: &deadpool_postgres::Transaction<'_>) -> anyhow::Result<Watermark> {
    let xid: i64 = tx.query_one("SELECT pg_current_xact_id()::text::bigint", &[]).await?.get(0);
    Ok(Watermark { xid: xid + 1, seq: 0 })
}

/// Removes the slaves, the report service, the master's database and the
/// namespace's queues and exchanges.
pub async fn teardown(fleet: Fleet, reports: TestReport, config: &MasterConfig, namespace: &str) {
    tracing::info!("Removing what the run created.");
    let agent_queue = fleet.slaves.first().map(|s| s.topology().agent_queue(s.options.instance.as_str(), "agent"));
    fleet.stop().await;
    reports.stop().await;
    let _ = rampart_shared::db::drop_database(&config.database_url).await;
    let topology = Topology::new(&NameSegment::parse(namespace).expect("the namespace is a valid name"));
    let mut queues = vec![
        topology.master_status_queue(),
        topology.master_replication_queue(),
        topology.master_live_replication_queue(),
        topology.report_events_queue(),
    ];
    queues.extend(agent_queue);
    rampart_tests::teardown_namespace(&topology, &queues).await;
}
