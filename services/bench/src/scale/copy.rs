//! The master's copy at scale, written straight into its database by
//! set-based SQL in the shape the apply leaves it: a `slaves` row per bulk
//! slave (active, with its watermark and counts as after its replication),
//! its `Default` network group and its computers in `replica_rows`, the
//! JSON of each as a slave ships it ([`crate::rows::endpoint`]). The
//! secondary indexes of `replica_rows` are read from the catalog, dropped
//! for the load and made again after it, so the copy ends with exactly the
//! indexes the migrations give it. The partitioned variant swaps
//! `replica_rows` for a table hash-partitioned by slave with the same
//! columns, keys, views and indexes.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{stream, StreamExt, TryStreamExt};
use serde::Serialize;
use tokio_postgres::Client;

/// Bytes a computer is assumed to take (copy, indexes) before a size has
/// been measured; a measured size gives the next one its own figure.
pub const BYTES_PER_COMPUTER_GUESS: u64 = 1_600;
/// Free disk asked for beyond the copy: the WAL of the load and the sorts
/// of the index builds.
const HEADROOM: f64 = 2.0;
/// Bulk slaves written per statement (each on one of [`PARALLEL`] connections).
const SLAVES_PER_STATEMENT: usize = 25;
const PARALLEL: usize = 2;

/// Bulk slave `i`: `b0000`, `b0001`...
pub fn bulk_slave(i: usize) -> String {
    format!("b{i:04}")
}

/// Bulk slaves `first..first + slaves` and their computers: `per_slave`
/// each, the first `remainder` of them one more.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Layout {
    pub first: usize,
    pub slaves: usize,
    pub per_slave: u64,
    pub remainder: usize,
}

impl Layout {
    /// `computers` over bulk slaves `first..first + slaves`, as evenly as can be.
    pub fn of(first: usize, computers: u64, slaves: usize) -> Self {
        Self { first, slaves, per_slave: computers / slaves as u64, remainder: (computers % slaves as u64) as usize }
    }

    pub fn computers(&self) -> u64 {
        self.per_slave * self.slaves as u64 + self.remainder as u64
    }

    /// The slave in the middle, and the computer in the middle of its own.
    pub fn middle(&self) -> (String, u64) {
        (bulk_slave(self.first + self.slaves / 2), self.per_slave / 2 + 1)
    }
}

/// Where PostgreSQL keeps its data and the room left there.
#[derive(Clone, Debug, Serialize)]
pub struct Disk {
    pub data_directory: String,
    pub available_bytes: u64,
    pub needed_bytes: u64,
}

/// Fails when `computers` at `bytes_per_computer` (with headroom) do not
/// fit on the disk PostgreSQL keeps its data on.
pub async fn check_disk(admin: &Client, computers: u64, bytes_per_computer: u64) -> anyhow::Result<Disk> {
    let data_directory: String = admin
        .query_one("SHOW data_directory", &[])
        .await
        .context("reading PostgreSQL's data_directory (the benchmark's role must be a superuser)")?
        .get(0);
    let output = std::process::Command::new("df")
        .args(["-B1", "--output=avail", &data_directory])
        .output()
        .context("running df for PostgreSQL's data directory")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let available_bytes: u64 = text
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("df {data_directory} answered '{}'", text.trim()))?;
    let needed_bytes = (computers as f64 * bytes_per_computer as f64 * HEADROOM) as u64;
    let disk = Disk { data_directory, available_bytes, needed_bytes };
    if available_bytes < needed_bytes {
        bail!(
            "{} computers need about {:.1} GB ({bytes_per_computer} bytes each, x{HEADROOM} for the WAL and index builds) \
             but {} has {:.1} GB free: free disk or run smaller --scale-sizes",
            computers,
            needed_bytes as f64 / 1e9,
            disk.data_directory,
            available_bytes as f64 / 1e9
        );
    }
    tracing::info!(computers, ?disk, "Disk checked for the scale copy.");
    Ok(disk)
}

/// How long each step of a load took.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Load {
    pub rows_seconds: f64,
    pub index_seconds: f64,
    pub analyze_seconds: f64,
}

impl Load {
    pub fn seconds(&self) -> f64 {
        self.rows_seconds + self.index_seconds + self.analyze_seconds
    }
}

/// The secondary indexes of `replica_rows`, as `(name, CREATE INDEX ...)`.
pub async fn secondary_indexes(client: &Client) -> anyhow::Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i
              WHERE i.schemaname = 'public' AND i.tablename = 'replica_rows'
                AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
              ORDER BY i.indexname",
            &[],
        )
        .await
        .context("reading replica_rows' indexes")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Writes the bulk slaves and computers of `layouts` into the migrated
/// database at `url`, then makes `indexes` (dropped before) and analyzes
/// the copy.
pub async fn load(url: &str, layouts: &[Layout], indexes: &[(String, String)]) -> anyhow::Result<Load> {
    let admin = crate::stats::connect(url, "the scale master's database").await?;
    for (name, _) in indexes {
        admin
            .batch_execute(&format!("DROP INDEX IF EXISTS {name}"))
            .await
            .with_context(|| format!("dropping {name}"))?;
    }
    let started = Instant::now();
    let mut chunks = Vec::new();
    for layout in layouts {
        let (first, end) = (layout.first as i32, (layout.first + layout.slaves) as i32);
        let (per, remainder) = (layout.per_slave as i64, layout.remainder as i32);
        let more_below = first + remainder;
        admin.execute(INSERT_SLAVES, &[&first, &end, &per, &more_below]).await.context("writing the bulk slaves")?;
        chunks.extend(
            (layout.first..layout.first + layout.slaves)
                .step_by(SLAVES_PER_STATEMENT)
                .map(|from| (from as i32, (from + SLAVES_PER_STATEMENT).min(end as usize) as i32, per, more_below)),
        );
    }
    admin.execute(INSERT_GROUPS, &[]).await.context("writing the bulk slaves' network groups")?;
    let total = chunks.len();
    stream::iter(chunks.into_iter().enumerate())
        .map(|(n, (from, to, per, more_below))| async move {
            let client = crate::stats::connect(url, "the scale master's database").await?;
            client
                .execute(INSERT_ENDPOINTS, &[&from, &to, &per, &more_below])
                .await
                .with_context(|| format!("writing the computers of bulk slaves {from} to {to}"))?;
            if n % 10 == 9 {
                tracing::info!(statements = n + 1, of = total, "Bulk computers written.");
            }
            anyhow::Ok(())
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<()>()
        .await?;
    let computers: u64 = layouts.iter().map(Layout::computers).sum();
    let rows_seconds = started.elapsed().as_secs_f64();
    tracing::info!(computers, rows_seconds, "The bulk copy is written; making its indexes.");

    // Two at a time, each on its own connection (a trigram index builds on
    // one core).
    let started = Instant::now();
    stream::iter(indexes)
        .map(|(name, definition)| async move {
            let client = crate::stats::connect(url, "the scale master's database").await?;
            client.batch_execute("SET maintenance_work_mem = '1GB'").await?;
            client.batch_execute(definition).await.with_context(|| format!("making {name}"))?;
            tracing::info!(index = %name, "Index made.");
            anyhow::Ok(())
        })
        .buffer_unordered(PARALLEL)
        .try_collect::<()>()
        .await?;
    let index_seconds = started.elapsed().as_secs_f64();
    // An index left invalid (a partitioned one made on the parent alone,
    // `ON ONLY`) would have the list read the copy without it.
    let invalid: Vec<String> = admin
        .query("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !invalid.is_empty() {
        bail!("the copy's indexes {} are not valid after the load", invalid.join(", "));
    }
    let started = Instant::now();
    admin.batch_execute("VACUUM (ANALYZE) replica_rows").await.context("vacuuming and analyzing the copy")?;
    admin.batch_execute("ANALYZE slaves").await.context("analyzing the slaves")?;
    let analyze_seconds = started.elapsed().as_secs_f64();
    let load = Load { rows_seconds, index_seconds, analyze_seconds };
    tracing::info!(?load, "The bulk copy is loaded.");
    Ok(load)
}

/// Replaces the (empty) `replica_rows` of a migrated database with one
/// hash-partitioned by `slave_id` into `partitions`: the same columns
/// (generated ones too), primary and foreign keys and views. The caller
/// makes the secondary indexes (on the parent, so on every partition).
pub async fn partition(client: &Client, partitions: usize) -> anyhow::Result<()> {
    let views: Vec<(String, String)> = client
        .query("SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut sql = String::from(
        "CREATE TABLE replica_rows_partitioned
             (LIKE replica_rows INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)
             PARTITION BY HASH (slave_id);\n",
    );
    for i in 0..partitions {
        sql.push_str(&format!(
            "CREATE TABLE replica_rows_{i:02} PARTITION OF replica_rows_partitioned
                 FOR VALUES WITH (MODULUS {partitions}, REMAINDER {i});\n"
        ));
    }
    sql.push_str(
        "DROP TABLE replica_rows CASCADE;
         ALTER TABLE replica_rows_partitioned RENAME TO replica_rows;
         ALTER TABLE replica_rows ADD CONSTRAINT replica_rows_pkey PRIMARY KEY (slave_id, table_name, row_key),
             ADD CONSTRAINT replica_rows_slave_id_fkey FOREIGN KEY (slave_id) REFERENCES slaves (id) ON DELETE CASCADE;",
    );
    client.batch_execute(&sql).await.context("partitioning replica_rows")?;
    // The views the drop took with it, each after the views it reads.
    let mut missing = views;
    for _ in 0..10 {
        let mut still = Vec::new();
        for (name, definition) in missing {
            let exists: bool =
                client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&format!("public.{name}")]).await?.get(0);
            if !exists && client.batch_execute(&format!("CREATE VIEW {name} AS {definition}")).await.is_err() {
                still.push((name, definition));
            }
        }
        missing = still;
        if missing.is_empty() {
            return Ok(());
        }
    }
    let names: Vec<&str> = missing.iter().map(|(n, _)| n.as_str()).collect();
    bail!("the views {} could not be made on the partitioned replica_rows", names.join(", "))
}

/// `pg_database_size` of the database at `url`, read from `admin`.
pub async fn database_bytes(admin: &Client, database: &str) -> anyhow::Result<u64> {
    let bytes: i64 = admin.query_one("SELECT pg_database_size($1)", &[&database]).await?.get(0);
    Ok(bytes as u64)
}

/// Times the read `verify` makes of one slave's computers in the copy.
pub async fn verify_read(client: &Client, slave: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let rows = client
        .query(
            "SELECT row_key::text, left(md5(row::text), 16) FROM replica_rows
              WHERE slave_id = $1 AND table_name = 'endpoints' AND row IS NOT NULL",
            &[&slave],
        )
        .await?;
    let elapsed = started.elapsed();
    anyhow::ensure!(!rows.is_empty(), "the copy holds no computer of {slave}");
    Ok(elapsed)
}

const INSERT_SLAVES: &str = "
INSERT INTO slaves (id, state, slave_key, version, endpoints, registered_at, last_seen, repl_epoch, repl_xid,
                    repl_seq, repl_batches, repl_rows, replicated_at, synced_as_of, rows_behind)
SELECT 'b' || lpad(s::text, 4, '0'), 'active', encode(sha256(convert_to('bulk-' || s, 'UTF8')), 'hex'), 'bulk',
       c, now(), now(), 1, 1000 + s, 0, ceil((c + 1) / 5000.0)::bigint, c + 1, now(), now(), 0
  FROM generate_series($1::int, $2::int - 1) AS s
 CROSS JOIN LATERAL (SELECT $3::bigint + (s < $4::int)::int AS c) AS counts";

const INSERT_GROUPS: &str = "
INSERT INTO replica_rows (slave_id, table_name, row_key, change_seq, row)
SELECT id, 'network_groups', '{\"id\": 1}', 1,
       jsonb_build_object('id', 1, 'name', 'Default', 'parent_id', NULL, 'subnet', NULL, 'created_at', now())
  FROM slaves WHERE version = 'bulk'";

/// The computers of bulk slaves `$1..$2`, `$3` each (one more below slave `$4`),
/// numbered and named as [`crate::rows::endpoint`] makes them.
const INSERT_ENDPOINTS: &str = "
INSERT INTO replica_rows (slave_id, table_name, row_key, change_seq, row)
SELECT sl.id, 'endpoints', jsonb_build_object('id', e.id), n + 2,
       jsonb_build_object('id', e.id, 'hostname', 'pc-' || n,
           'ip', '10.' || (n / 65536) % 256 || '.' || (n / 256) % 256 || '.' || n % 256,
           'os', (ARRAY['Windows 11', 'Windows 10', 'Ubuntu 24.04', 'macOS 15'])[1 + n % 4],
           'group_id', 1, 'agent_version', '4.2.1', 'signatures_version', '2026.11.' || (1 + n % 25),
           'signatures_date', '2026-11-20', 'realtime_protection', n % 50 <> 0,
           'active_threats', CASE WHEN n % 6 = 4 THEN 1 ELSE 0 END,
           'status', (ARRAY['protected', 'protected', 'protected', 'at_risk', 'infected', 'unprotected'])[1 + n % 6],
           'licensed', n % 10 <> 0, 'last_seen', now(), 'enrolled_at', now(), 'policy_id', NULL,
           'policy_version', NULL, 'applied_policy_id', NULL, 'applied_policy_version', NULL)
  FROM generate_series($1::int, $2::int - 1) AS s
 CROSS JOIN LATERAL (SELECT 'b' || lpad(s::text, 4, '0') AS id) AS sl
 CROSS JOIN LATERAL generate_series(0::bigint, $3::bigint + (s < $4::int)::int - 1) AS n
 CROSS JOIN LATERAL (SELECT sl.id || '-' || lpad(n::text, 6, '0') AS id) AS e";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bulk_computers_spread_over_every_bulk_slave() {
        let layout = Layout::of(0, 9_900_001, 990);
        assert_eq!((layout.per_slave, layout.remainder), (10_000, 1));
        assert_eq!(layout.computers(), 9_900_001);
        assert_eq!(layout.middle(), ("b0495".to_owned(), 5_001));
        assert_eq!(Layout::of(990, 100_000, 10).middle().0, "b0995");
    }
}
