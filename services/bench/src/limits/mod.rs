//! The machine's own raw limits, measured in the same run as the scenarios
//! so every figure stands next to what PostgreSQL and RabbitMQ can do here.
//!
//! * Database: binary COPY and `UNNEST .. ON CONFLICT` upserts of endpoint
//!   rows straight into the master's `replica_rows`, one transaction per
//!   replication batch, in a scratch database migrated with the master's
//!   migrations and dropped afterwards.
//! * Broker: persistent publishes with confirms into a scratch quorum queue,
//!   pipelined and one at a time, and the publish -> consume round trip. The
//!   queue is deleted afterwards. Then the broker's own fan-out to as many
//!   queues as the largest policy fan-out, bare and with a commit per
//!   message in the scratch database ([`broker_fanout`]).
//!
//! Rows and message bodies are made before the clock starts: only the
//! database and the broker are timed.

use std::{ops::Range, time::Duration, time::Instant};

use anyhow::{ensure, Context};
use futures_util::pin_mut;
use rampart_shared::db;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::{binary_copy::BinaryCopyInWriter, types::Type};

mod broker;
use broker::measure_broker;

use crate::{
    broker_fanout::BrokerFanout,
    stats::{per_second, Percentiles},
};

/// The slave whose rows the COPY measurement writes.
const COPY_SLAVE: &str = "raw-copy";
/// The slave whose rows the upsert measurement writes.
const UPSERT_SLAVE: &str = "raw-upsert";
/// The site the generated computers are named after.
const SITE: &str = "raw-limits";

const COPY_SQL: &str = "COPY replica_rows (slave_id, table_name, row_key, change_seq, row) FROM STDIN BINARY";
const UPSERT_SQL: &str = "
INSERT INTO replica_rows (slave_id, table_name, row_key, change_seq, row)
SELECT $1::text, 'endpoints', k, s, r FROM UNNEST($2::jsonb[], $3::bigint[], $4::jsonb[]) AS u(k, s, r)
    ON CONFLICT (slave_id, table_name, row_key) DO UPDATE SET change_seq = excluded.change_seq, row = excluded.row
 WHERE replica_rows.change_seq < excluded.change_seq";

/// What to measure and where.
#[derive(Clone)]
pub struct LimitsPlan {
    /// postgres URL of a scratch database to create (it is created, migrated with the master's migrations, and dropped at the end), e.g. postgres://root@127.0.0.1:5432/rb_limits_xxx
    pub database_url: String,
    /// AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f
    pub amqp_url: String,
    /// A unique prefix for the scratch queue names (e.g. "rb_1a2b3c"); queues are deleted at the end.
    pub namespace: String,
    /// Rows for the COPY and the upsert measurements (each).
    pub rows: u64,
    /// Rows per transaction (the replication batch size, 5000 by default).
    pub batch_rows: usize,
    /// Messages for the publish-with-confirms measurement.
    pub messages: u64,
    /// Round trips for the publish->consume latency.
    pub round_trips: u64,
    /// Body size of each message in bytes.
    pub message_bytes: usize,
    /// Quorum queues of the broker's fan-out (the largest policy fan-out),
    /// and its rounds; no queues, no measurement.
    pub fanout_queues: usize,
    pub fanout_rounds: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct RawLimits {
    /// Binary COPY straight into the master's `replica_rows` table.
    pub copy_rows_per_s: f64,
    /// `INSERT .. SELECT FROM UNNEST(..) ON CONFLICT DO UPDATE` into `replica_rows`, one transaction per batch_rows.
    pub upsert_rows_per_s: f64,
    /// The same two measured again right after the replication throughput
    /// (see [`measure_database_again`]); none when the run had no
    /// throughput part.
    pub after_throughput: Option<DatabaseRates>,
    /// Publishes with confirms, pipelined (many confirms outstanding) — the broker's best.
    pub publish_confirms_per_s: f64,
    /// Publishes with confirms, one at a time (publish, wait for its confirm, next).
    pub publish_confirms_serial_per_s: f64,
    /// One message published (with confirm) and consumed, one at a time.
    pub round_trip: Percentiles,
    /// One message to each of many queues, until the last is consumed.
    pub broker_fanout: Option<BrokerFanout>,
}

/// The database's two rates, rows per second.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct DatabaseRates {
    pub copy_rows_per_s: f64,
    pub upsert_rows_per_s: f64,
}

impl RawLimits {
    /// The upsert rate a replication figure is read against: the mean of
    /// the measurements before and after the throughput when both were made.
    pub fn upsert_limit(&self) -> f64 {
        self.after_throughput.map_or(self.upsert_rows_per_s, |a| (self.upsert_rows_per_s + a.upsert_rows_per_s) / 2.0)
    }

    /// [`Self::upsert_limit`] for the COPY.
    pub fn copy_limit(&self) -> f64 {
        self.after_throughput.map_or(self.copy_rows_per_s, |a| (self.copy_rows_per_s + a.copy_rows_per_s) / 2.0)
    }
}

/// Measures the database, then the broker (whose fan-out commits into the
/// scratch database too), cleaning up after each.
pub async fn measure(plan: &LimitsPlan) -> anyhow::Result<RawLimits> {
    check(plan)?;
    in_scratch_database(&plan.database_url, measure_both(plan)).await
}

async fn measure_both(plan: &LimitsPlan) -> anyhow::Result<RawLimits> {
    let rates = database_rates(plan).await?;
    let broker = measure_broker(plan).await?;
    Ok(RawLimits {
        copy_rows_per_s: rates.copy_rows_per_s,
        upsert_rows_per_s: rates.upsert_rows_per_s,
        after_throughput: None,
        publish_confirms_per_s: broker.pipelined_per_s,
        publish_confirms_serial_per_s: broker.serial_per_s,
        round_trip: broker.round_trip,
        broker_fanout: broker.fanout,
    })
}

/// The COPY and the upsert again, in a scratch database of their own, as
/// the first time. Made right after the replication throughput, so that
/// its ratio is read against the machine as it was around it: on a shared
/// host the same upsert measured 14,404 to 19,976 rows/s in runs of one
/// hour (`bench/README.md`, change 52), and the first measurement comes
/// minutes before the replication, before the slaves are loaded.
pub async fn measure_database_again(plan: &LimitsPlan) -> anyhow::Result<DatabaseRates> {
    check(plan)?;
    let again = LimitsPlan { database_url: format!("{}_after", plan.database_url), ..plan.clone() };
    in_scratch_database(&again.database_url, database_rates(&again)).await
}

/// Runs `measured` with the scratch database at `url` made (and migrated
/// by `measured`), then drops the database whatever happened.
async fn in_scratch_database<T>(
    url: &str,
    measured: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    db::ensure_database(url).await.context("Failed to create the raw limits database")?;
    let measured = measured.await;
    let dropped = db::drop_database(url).await.context("Failed to drop the raw limits database");
    let value = measured?;
    dropped?;
    Ok(value)
}

/// Refuses plans that would measure nothing (a rate over zero items).
fn check(plan: &LimitsPlan) -> anyhow::Result<()> {
    ensure!(plan.rows > 0, "The raw limits need at least one row.");
    ensure!(plan.batch_rows > 0, "The raw limits need at least one row per batch.");
    ensure!(plan.messages > 0, "The raw limits need at least one message.");
    ensure!(plan.round_trips > 0, "The raw limits need at least one round trip.");
    Ok(())
}

// ---------------------------------------------------------------- database

/// One replication batch of endpoint rows, in the shape both statements
/// take: the upsert binds the three vectors as arrays as they are.
struct Batch {
    keys: Vec<Value>,
    seqs: Vec<i64>,
    rows: Vec<Value>,
}

/// The row numbers of each batch: `batch_rows` each, the last one shorter.
fn batch_bounds(total: u64, batch_rows: usize) -> impl Iterator<Item = Range<u64>> {
    let size = batch_rows.max(1) as u64;
    (0..total.div_ceil(size)).map(move |i| i * size..((i + 1) * size).min(total))
}

fn endpoint_batches(total: u64, batch_rows: usize) -> Vec<Batch> {
    endpoint_batches_of(SITE, total, batch_rows)
}

/// [`endpoint_batches`] of the computers of `site`.
fn endpoint_batches_of(site: &str, total: u64, batch_rows: usize) -> Vec<Batch> {
    batch_bounds(total, batch_rows)
        .map(|range| {
            let len = (range.end - range.start) as usize;
            let mut batch =
                Batch { keys: Vec::with_capacity(len), seqs: Vec::with_capacity(len), rows: Vec::with_capacity(len) };
            for n in range {
                let (key, row) = crate::rows::endpoint(site, n);
                batch.keys.push(key);
                batch.seqs.push(n as i64 + 1);
                batch.rows.push(row);
            }
            batch
        })
        .collect()
}

async fn database_rates(plan: &LimitsPlan) -> anyhow::Result<DatabaseRates> {
    let pool = db::pool(&plan.database_url, 4).context("Failed to build the raw limits database pool")?;
    db::migrate(&pool, rampart_server::migrations::MIGRATIONS)
        .await
        .context("Failed to migrate the raw limits database")?;
    let mut client = pool.get().await.context("Failed to connect to the raw limits database")?;
    client
        .execute(
            "INSERT INTO slaves (id, state, slave_key) VALUES ($1, 'active', 'raw-limits'), ($2, 'active', 'raw-limits')",
            &[&COPY_SLAVE, &UPSERT_SLAVE],
        )
        .await
        .context("Failed to register the raw limits slaves")?;
    let copy = client.prepare(COPY_SQL).await.context("Failed to prepare the COPY")?;
    let upsert = client.prepare(UPSERT_SQL).await.context("Failed to prepare the upsert")?;

    let batches = endpoint_batches(plan.rows, plan.batch_rows);
    tracing::info!(rows = plan.rows, batches = batches.len(), "Generated endpoint rows for the raw limits.");

    let started = Instant::now();
    for batch in &batches {
        let tx = client.transaction().await?;
        let sink = tx.copy_in(&copy).await.context("Failed to start the COPY")?;
        let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::JSONB, Type::INT8, Type::JSONB]);
        pin_mut!(writer);
        for ((key, seq), row) in batch.keys.iter().zip(&batch.seqs).zip(&batch.rows) {
            writer.as_mut().write(&[&COPY_SLAVE, &"endpoints", key, seq, row]).await.context("Failed to COPY a row")?;
        }
        writer.finish().await.context("Failed to finish the COPY")?;
        tx.commit().await.context("Failed to commit a COPY batch")?;
    }
    let copy_rate = rate("Measured binary COPY into replica_rows.", plan.rows, started.elapsed());

    let started = Instant::now();
    for batch in &batches {
        let tx = client.transaction().await?;
        tx.execute(&upsert, &[&UPSERT_SLAVE, &batch.keys, &batch.seqs, &batch.rows])
            .await
            .context("Failed to upsert a batch")?;
        tx.commit().await.context("Failed to commit an upsert batch")?;
    }
    let upsert_rate = rate("Measured UNNEST upserts into replica_rows.", plan.rows, started.elapsed());

    for slave in [COPY_SLAVE, UPSERT_SLAVE] {
        let stored: i64 = client
            .query_one("SELECT count(*) FROM replica_rows WHERE slave_id = $1", &[&slave])
            .await
            .context("Failed to count the raw limits rows")?
            .get(0);
        ensure!(stored as u64 == plan.rows, "Slave {slave} has {stored} rows in replica_rows, not {}.", plan.rows);
    }
    Ok(DatabaseRates { copy_rows_per_s: copy_rate, upsert_rows_per_s: upsert_rate })
}

/// The same UNNEST upsert into an existing copy (the scale part's, of
/// millions of rows): `rows` new computers of `slave`, a registered slave
/// of that database, `batch_rows` a transaction; rows per second.
pub async fn upsert_rate(
    client: &mut tokio_postgres::Client,
    slave: &str,
    rows: u64,
    batch_rows: usize,
) -> anyhow::Result<f64> {
    let upsert = client.prepare(UPSERT_SQL).await.context("Failed to prepare the upsert")?;
    let batches = endpoint_batches_of(slave, rows, batch_rows);
    let started = Instant::now();
    for batch in &batches {
        let tx = client.transaction().await?;
        tx.execute(&upsert, &[&slave, &batch.keys, &batch.seqs, &batch.rows])
            .await
            .context("Failed to upsert a batch")?;
        tx.commit().await.context("Failed to commit an upsert batch")?;
    }
    Ok(rate("Measured UNNEST upserts into a large replica_rows.", rows, started.elapsed()))
}

/// Items per second, logged with what was measured.
fn rate(what: &'static str, items: u64, elapsed: Duration) -> f64 {
    let per_s = per_second(items, elapsed);
    tracing::info!(items, elapsed_ms = elapsed.as_millis() as u64, per_s = per_s.round(), "{what}");
    per_s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_the_mean_once_measured_again() {
        let mut limits = RawLimits {
            copy_rows_per_s: 20_000.0,
            upsert_rows_per_s: 14_000.0,
            after_throughput: None,
            publish_confirms_per_s: 1.0,
            publish_confirms_serial_per_s: 1.0,
            round_trip: Percentiles::of(&[Duration::from_millis(1)]).unwrap(),
            broker_fanout: None,
        };
        assert_eq!((limits.copy_limit(), limits.upsert_limit()), (20_000.0, 14_000.0));
        limits.after_throughput = Some(DatabaseRates { copy_rows_per_s: 22_000.0, upsert_rows_per_s: 18_000.0 });
        assert_eq!((limits.copy_limit(), limits.upsert_limit()), (21_000.0, 16_000.0));
    }

    #[test]
    fn batches_cover_every_row_once() {
        let bounds: Vec<_> = batch_bounds(12_001, 5000).collect();
        assert_eq!(bounds, vec![0..5000, 5000..10_000, 10_000..12_001]);
        assert_eq!(batch_bounds(10_000, 5000).count(), 2);
        assert_eq!(batch_bounds(0, 5000).count(), 0);
    }

    #[test]
    fn generated_batches_number_changes_from_one() {
        let batches = endpoint_batches(3, 2);
        assert_eq!(batches.iter().map(|b| b.seqs.clone()).collect::<Vec<_>>(), vec![vec![1, 2], vec![3]]);
        assert_eq!(batches[1].keys[0], serde_json::json!({ "id": "raw-limits-000002" }));
        assert_eq!(batches[1].rows[0]["id"], "raw-limits-000002");
    }

    #[test]
    fn empty_plans_are_refused() {
        let plan = |rows, round_trips| LimitsPlan {
            database_url: String::new(),
            amqp_url: String::new(),
            namespace: "rb".into(),
            rows,
            batch_rows: 5000,
            messages: 10,
            round_trips,
            message_bytes: 1024,
            fanout_queues: 0,
            fanout_rounds: 0,
        };
        assert!(check(&plan(10, 10)).is_ok());
        assert!(check(&plan(0, 10)).is_err());
        assert!(check(&plan(10, 0)).is_err());
    }
}
