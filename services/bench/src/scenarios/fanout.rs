//! Fan-out latency: a master policy to N slaves, from the moment the
//! operator asks the master until the last slave has applied it.
//!
//! The start is taken just before the master's API is called; each slave's
//! apply time is the commit time of its apply transaction, read from the
//! policy's assignment row (same machine, same clock; PostgreSQL keeps it
//! when `track_commit_timestamp` is on, as `ops/bench` sets it for a full
//! run). Where it is off, the transaction's start (`now()` stamped on the
//! policy) stands in, which leaves the last slave's own apply out of the
//! figure; the results say which was used. The master's receipts tell the
//! benchmark when to read them, and when the operator sees the round done
//! (shown beside the figure). The policy is for a network group that
//! exists on every slave, so the figure is the hierarchy's path (API,
//! outbox, broker, signature check, apply) and not the cost of re-pointing
//! thousands of computers.

use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use futures_util::{stream, StreamExt, TryStreamExt};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::{fleet::Fleet, master::Api, stats::Percentiles};

/// The group every slave has, that the policies are for.
pub const GROUP: &str = "Fan-out";
/// Longest one round may take before the run fails.
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, Serialize)]
pub struct Fanout {
    pub slaves: usize,
    pub rounds: usize,
    /// Until the last slave applied: the figure.
    pub latency: Percentiles,
    /// Until the first slave applied: what the master and the broker take
    /// before any slave works (the rest is the slaves, one after the other
    /// on the same cores).
    pub first: Percentiles,
    /// Until the master's API showed every slave's "applied" receipt (read
    /// every 20 ms): when an operator sees the round done.
    pub receipts: Percentiles,
    /// What "applied" was read from.
    pub applied_at: AppliedAt,
}

/// Which moment of a slave's apply transaction the figures end at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppliedAt {
    /// Its commit (`pg_xact_commit_timestamp`): the whole apply counts.
    Commit,
    /// Its start (`now()`), when commit times are not kept.
    TransactionStart,
}

impl AppliedAt {
    /// Commit when the cluster keeps commit times, else the start.
    async fn of_cluster(client: &tokio_postgres::Client) -> anyhow::Result<Self> {
        let row = client.query_one("SELECT current_setting('track_commit_timestamp')::bool", &[]).await?;
        Ok(if row.get(0) { Self::Commit } else { Self::TransactionStart })
    }

    /// The moment as a column of `policy_assignments` (`a`) joined with
    /// `policies` (`p`): the assignment row is written by the apply and
    /// never updated, unlike the policy's (receipts update it).
    fn column(self) -> &'static str {
        match self {
            Self::Commit => "pg_xact_commit_timestamp(a.xmin)",
            Self::TransactionStart => "p.created_at",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Commit => "until the last slave's commit",
            Self::TransactionStart => "until the last slave's apply began (commit times not kept)",
        }
    }
}

/// Creates [`GROUP`] on every slave.
pub async fn prepare(fleet: &Fleet) -> anyhow::Result<()> {
    stream::iter(&fleet.slaves)
        .map(|slave| async move {
            let (status, body) = slave.post("/api/groups", json!({"name": GROUP})).await;
            if !status.is_success() {
                bail!("creating the group on {}: {status} {body}", slave.options.instance);
            }
            Ok(())
        })
        .buffer_unordered(4)
        .try_collect()
        .await
}

/// `rounds` policies, each to the first `slaves` slaves, after one untimed
/// round.
///
/// The untimed round is the first command each slave's connections see
/// (they prepare the apply's statements), as the raw fan-out's first round
/// wakes its queues. Before it, PostgreSQL is checkpointed: the bulk loads
/// before this scenario leave a checkpoint due that would otherwise land in
/// some round and stall its commits.
pub async fn run(fleet: &Fleet, master: &Api, slaves: usize, rounds: usize) -> anyhow::Result<Fanout> {
    let names: Vec<String> = fleet.slaves.iter().take(slaves).map(|s| s.options.instance.clone()).collect();
    let mut latencies = Vec::with_capacity(rounds);
    let mut firsts = Vec::with_capacity(rounds);
    let mut receipts = Vec::with_capacity(rounds);
    let client = fleet.slaves.first().context("no slave")?.state.pool.get().await?;
    let applied_at = AppliedAt::of_cluster(&client).await?;
    crate::stats::checkpoint(&client, "the fan-out").await;
    drop(client);
    for round in 0..=rounds {
        let asked = Utc::now();
        let asked_at = Instant::now();
        let policy = master
            .call_ok(
                Method::POST,
                "/api/policies",
                Some(json!({"name": format!("Fan-out to {slaves}, round {round}"), "target": {"slaves": names, "group": GROUP}})),
            )
            .await?;
        let id = policy["id"].as_str().context("the created policy has no id")?.to_owned();
        wait_applied(master, &id, &names).await?;
        let shown = asked_at.elapsed();
        let (first, last) = applied(fleet, slaves, &id, applied_at).await?;
        if round > 0 {
            receipts.push(shown);
            latencies.push((last - asked).to_std().unwrap_or_default());
            firsts.push((first - asked).to_std().unwrap_or_default());
        }
    }
    let latency = Percentiles::of(&latencies).context("no rounds ran")?;
    let first = Percentiles::of(&firsts).context("no rounds ran")?;
    let receipts = Percentiles::of(&receipts).context("no rounds ran")?;
    tracing::info!(slaves, rounds, ?latency, ?first, ?receipts, ?applied_at, "Fan-out measured.");
    Ok(Fanout { slaves, rounds, latency, first, receipts, applied_at })
}

/// Waits until the master has an "applied" receipt from every slave named.
async fn wait_applied(master: &Api, id: &str, names: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + ROUND_TIMEOUT;
    loop {
        let policy = master.call_ok(Method::GET, &format!("/api/policies/{id}"), None).await?;
        let receipts = policy["slaves"].as_array().cloned().unwrap_or_default();
        let applied = |name: &String| receipts.iter().any(|r| r["slave"] == name.as_str() && r["state"] == "applied");
        if names.iter().all(applied) {
            return Ok(());
        }
        if let Some(failed) = receipts.iter().find(|r| r["state"] == "failed") {
            bail!("policy {id} failed on a slave: {failed}");
        }
        if Instant::now() >= deadline {
            bail!(
                "policy {id} was not applied on all {} slaves within {ROUND_TIMEOUT:?}: {}",
                names.len(),
                Value::Array(receipts)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// When the first and the last of the first `slaves` slaves applied
/// policy `id`.
async fn applied(
    fleet: &Fleet,
    slaves: usize,
    id: &str,
    at: AppliedAt,
) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
    let id: uuid::Uuid = id.parse()?;
    let sql = format!(
        "SELECT {} FROM policies p JOIN policy_assignments a ON a.policy_id = p.id WHERE p.id = $1",
        at.column()
    );
    let mut span: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    for slave in fleet.slaves.iter().take(slaves) {
        let client = slave.state.pool.get().await?;
        let row = client
            .query_opt(&sql, &[&id])
            .await?
            .with_context(|| format!("{} does not have policy {id} assigned", slave.options.instance))?;
        let at: DateTime<Utc> = row
            .get::<_, Option<DateTime<Utc>>>(0)
            .with_context(|| format!("{} kept no commit time for policy {id}", slave.options.instance))?;
        span = Some(span.map_or((at, at), |(first, last)| (first.min(at), last.max(at))));
    }
    span.context("no slave")
}
