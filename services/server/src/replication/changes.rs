//! Slave side: reading the change stream, safely under concurrent writers.
//!
//! Every replicated table carries `change_seq` (the row's version) and
//! `change_xid` (the transaction that wrote it), stamped by a trigger
//! (migration `0003_changes.sql`); deletions leave rows in `tombstones`.
//! Changes are read in `(change_xid, change_seq)` order, but only below the
//! [`horizon`], the oldest transaction still running: everything below it
//! has finished, so a position once passed can never gain a row. Reading
//! "above the highest `change_seq` shipped" instead would skip a row whose
//! transaction took its number early and committed late.
//!
//! ## The horizon is this database's
//!
//! Transaction ids are the whole PostgreSQL cluster's, so the oldest
//! transaction running anywhere in it (`pg_snapshot_xmin`) would hold back
//! every database's stream: a slave's pass would wait for another slave's
//! load, or the master's appliers, where several sites share a cluster.
//! [`horizon`] is instead the oldest transaction *of this database* in
//! the statement's (or REPEATABLE READ transaction's) snapshot `S`:
//! `least(xmax(S), min { x in xip(S) : x is not known to be another
//! database's })`. That keeps the one guarantee the stream needs: no
//! transaction of this database can still commit a change below it, and
//! every committed change below it is visible in `S`.
//!
//! * A transaction that has no id yet gets one from the cluster's counter
//!   when it first writes, after `S` was taken, so at least `xmax(S)`: never
//!   below the horizon. The same holds for every id assigned after `S`.
//! * An id below `xmax(S)` and not in `xip(S)` had finished when `S` was
//!   taken: its changes, if it committed, are visible in `S`.
//! * An id in `xip(S)` is left out only when it is positively another
//!   database's: the `backend_xid` of a `pg_stat_activity` entry whose
//!   `datname` is not this database (a backend stays in its database for
//!   its life), or the `transaction` of a `pg_prepared_xacts` entry of
//!   another `database`. Both are read in the same statement, after `S`: an
//!   id of `xip(S)` still running then is shown with its own backend (ids
//!   assigned after `S` are all at least `xmax(S)`, so a reused backend
//!   slot cannot show one of `xip(S)`), and an id that finished in between
//!   is simply not found. Not found means kept: this database's running
//!   and prepared transactions, and any id that cannot be placed (being
//!   prepared at that instant, a backend hidden from this role), hold the
//!   horizon as before. `backend_xid` is 32 bits, compared with the low
//!   32 bits of the 64-bit id: ids running at once are less than 2^31 apart.
//! * `change_xid` is the top-level id (`pg_current_xact_id()`), and
//!   `xip(S)` holds top-level ids: subtransactions do not enter.

use std::sync::LazyLock;

use deadpool_postgres::GenericClient;
use rampart_shared::db::CachedStatements;
use rampart_shared::replication::{PendingKey, ReplicatedRow, ReplicatedTable, TableDigest, Watermark};
use serde_json::value::RawValue;
use tokio_postgres::types::Json;

/// The transaction-id horizon of this database now: every transaction of
/// this database below it has finished, and none can start below it (see
/// the module's documentation). Call it inside the REPEATABLE READ
/// transaction that then reads the changes.
pub async fn horizon<C: GenericClient>(client: &C) -> Result<i64, tokio_postgres::Error> {
    Ok(client.query_one_cached(HORIZON_SQL, &[]).await?.get(0))
}

/// `(xmax(S), horizon)` of one snapshot `S`: the first id not yet assigned
/// when it was taken, and the [`horizon`]. Equal when no transaction of
/// this database was running; else a pass that must ship everything
/// committed before it waits until the horizon reaches that `xmax`.
pub async fn next_id_and_horizon<C: GenericClient>(client: &C) -> Result<(i64, i64), tokio_postgres::Error> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, ({HORIZON_SQL})"));
    let row = client.query_one_cached(&SQL, &[]).await?;
    Ok((row.get(0), row.get(1)))
}

/// The oldest id of `xip(S)` not known to be another database's, or
/// `xmax(S)` (`least` ignores the NULL of an empty set).
const HORIZON_SQL: &str = "
    SELECT least(pg_snapshot_xmax(s),
                 (SELECT min(x) FROM pg_snapshot_xip(s) AS x
                   WHERE x::text::bigint % 4294967296 NOT IN (
                         SELECT backend_xid::text::bigint FROM pg_stat_activity
                          WHERE backend_xid IS NOT NULL AND datname <> current_database()
                         UNION ALL
                         SELECT transaction::text::bigint FROM pg_prepared_xacts
                          WHERE database <> current_database())))::text::bigint
      FROM pg_current_snapshot() AS s";

/// `jsonb_build_object(...)` of a table's key columns, for table alias `t`.
fn key_expr(table: ReplicatedTable) -> String {
    let pairs: Vec<String> = table.key_columns().iter().map(|c| format!("'{c}', t.{c}")).collect();
    format!("jsonb_build_object({})", pairs.join(", "))
}

/// The row as shipped: `row_to_json` of a sub-select of the shipped
/// columns, for table alias `t`. Plain `json` rather than `jsonb`: the
/// slave only passes the text on, and building `json` costs about half of
/// `to_jsonb(t)` minus the private columns (the master stores it as `jsonb`
/// either way). `row_to_json` writes no spaces and reads the columns' names
/// from the sub-select once, where `json_build_object` takes each name as
/// an argument of every row (`bench/README.md`, change 52).
fn row_expr(table: ReplicatedTable) -> String {
    let columns: Vec<String> = table.shipped_columns().iter().map(|c| format!("t.{c}")).collect();
    format!("(SELECT row_to_json(s) FROM (SELECT {}) AS s)", columns.join(", "))
}

/// A change with its position in the stream.
#[derive(Clone, Debug)]
pub struct Change {
    pub position: Watermark,
    pub row: ReplicatedRow,
}

/// What one read of the stream found.
#[derive(Debug)]
pub struct Page {
    pub changes: Vec<Change>,
    /// Where the page ends: the last change's position, or the horizon when
    /// the page reached it.
    pub to: Watermark,
    /// Nothing below the horizon is left after this page.
    pub caught_up: bool,
}

/// One statement for a whole page: the [`horizon`] (computed once, in a
/// CTE that each branch reads as an InitPlan, so each table is still read
/// through its `(change_xid, change_seq)` index, in order, up to the
/// limit), then the oldest changes of each replicated table and of
/// `tombstones` below it. Its first row carries the horizon alone (table
/// NULL). A caught-up slave's pass reads its few rows in one round trip
/// instead of ten, which under a loaded database was most of its read
/// (`bench/README.md`, change 43). Parameters: `from`'s xid and seq, the
/// limit per table.
static PAGE_SQL: LazyLock<String> = LazyLock::new(|| {
    let bounds = "t.change_xid < (SELECT x FROM h)::text::xid8
                  AND (t.change_xid, t.change_seq) > ($1::bigint::text::xid8, $2)
                ORDER BY t.change_xid, t.change_seq LIMIT $3";
    let mut branches = vec!["SELECT NULL::text, (SELECT x FROM h), 0::bigint, NULL::jsonb, NULL::json".to_owned()];
    for table in ReplicatedTable::ALL {
        branches.push(format!(
            "(SELECT '{name}'::text, t.change_xid::text::bigint, t.change_seq, {key}, {row} FROM {name} t WHERE {bounds})",
            name = table.name(),
            key = key_expr(table),
            row = row_expr(table),
        ));
    }
    branches.push(format!(
        "(SELECT t.table_name, t.change_xid::text::bigint, t.change_seq, t.row_key, NULL::json FROM tombstones t WHERE {bounds})"
    ));
    format!("WITH h(x) AS ({HORIZON_SQL})\n{}", branches.join("\n UNION ALL "))
});

/// The settings of the transaction that reads a page: rows' times in UTC,
/// and no sort. Each table's branch must be read in its index's order and
/// stop at the limit; right after a table gained many rows its statistics
/// are stale, and the planner, sure that fewer rows matched than the limit,
/// read them all, built every row's JSON and sorted them on disk: 60,000
/// detections written 40 s before the drain benchmark's `replicate now`
/// took 1.86 s for one 5,000-row page on an idle machine, 84 ms in the
/// index's order (13 to 21 s with 90 slaves reading at once,
/// `bench/README.md`, change 46). Without sorts, the index's order is the
/// plan left; the order of a page it has no index for (a verification's
/// digest) is still sorted.
pub const PAGE_SETTINGS: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL enable_sort = off";

/// Changes after `from` and below the horizon, oldest first, at most
/// `max_rows` of them and about `max_bytes` of JSON, read in one statement
/// ([`PAGE_SQL`]). Run it in a REPEATABLE READ transaction with
/// [`PAGE_SETTINGS`].
pub async fn read_page<C: GenericClient>(
    client: &C,
    from: Watermark,
    max_rows: usize,
    max_bytes: usize,
) -> Result<Page, tokio_postgres::Error> {
    // One more than a page per table: a table that fills it has more to come.
    let limit = max_rows as i64 + 1;
    let mut horizon = None;
    let mut candidates = Vec::new();
    for r in client.query_cached(&PAGE_SQL, &[&from.xid, &from.seq, &limit]).await? {
        let Some(name) = r.get::<_, Option<&str>>(0) else {
            horizon = Some(r.get::<_, i64>(1));
            continue;
        };
        let position = Watermark { xid: r.get(1), seq: r.get(2) };
        let Some(table) = ReplicatedTable::parse(name) else {
            tracing::warn!(
                table = name,
                change_seq = position.seq,
                "Skipped a tombstone of a table that is not replicated."
            );
            continue;
        };
        // The row stays the text the database wrote (see `ReplicatedRow::row`);
        // a tombstone has none.
        let row: Option<Json<Box<RawValue>>> = r.get(4);
        candidates.push(Change {
            position,
            row: ReplicatedRow { table, key: r.get(3), change_seq: position.seq, row: row.map(|Json(row)| row) },
        });
    }
    let horizon = horizon.expect("the page's first row carries the horizon");
    candidates.sort_by_key(|c| c.position);

    // Each table gave its oldest `max_rows + 1` changes, so the oldest
    // `max_rows` overall are among them; if there were no more than
    // `max_rows` in all, no table was cut short and this page reaches the
    // horizon.
    let mut caught_up = candidates.len() <= max_rows;
    let mut changes = Vec::with_capacity(candidates.len().min(max_rows));
    let mut bytes = 0;
    for change in candidates {
        let size = change.row.row.as_ref().map_or(0, |r| r.get().len()) + change.row.key.to_string().len() + 48;
        if changes.len() == max_rows || (!changes.is_empty() && bytes + size > max_bytes) {
            caught_up = false;
            break;
        }
        bytes += size;
        changes.push(change);
    }
    let to = if caught_up {
        Watermark { xid: horizon, seq: 0 }.max(from)
    } else {
        changes.last().map_or(from, |c| c.position)
    };
    Ok(Page { changes, to, caught_up })
}

/// Every row of every replicated table that the master should have once it
/// applied everything below `horizon`, as `(key, hash)` pairs, plus the rows
/// changed after it (left out of the comparison). Run it in the snapshot of
/// the page that reached `horizon`. Rows are hashed as `jsonb` text, the
/// form the master holds them in.
pub async fn digest<C: GenericClient>(
    client: &C,
    horizon: i64,
) -> Result<(Vec<TableDigest>, Vec<PendingKey>), tokio_postgres::Error> {
    let mut tables = Vec::new();
    let mut pending = Vec::new();
    for table in ReplicatedTable::ALL {
        let sql = format!(
            "SELECT {key}::text, left(md5({row}::jsonb::text), 16), t.change_xid < $1::bigint::text::xid8 FROM {name} t ORDER BY 1",
            key = key_expr(table),
            row = row_expr(table),
            name = table.name()
        );
        let mut rows = Vec::new();
        for r in client.query_cached(&sql, &[&horizon]).await? {
            if r.get(2) {
                rows.push((r.get(0), r.get(1)));
            } else {
                pending.push(PendingKey { table, key: r.get(0) });
            }
        }
        tables.push(TableDigest { table, rows });
    }
    let deleted = client
        .query_cached(
            "SELECT table_name, row_key::text FROM tombstones WHERE change_xid >= $1::bigint::text::xid8",
            &[&horizon],
        )
        .await?;
    for r in deleted {
        if let Some(table) = ReplicatedTable::parse(r.get(0)) {
            pending.push(PendingKey { table, key: r.get(1) });
        }
    }
    Ok((tables, pending))
}

/// `each(table)` for every replicated table and `tombstones`.
fn every_table(each: impl Fn(&str) -> String) -> Vec<String> {
    ReplicatedTable::ALL.iter().map(|t| t.name()).chain(["tombstones"]).map(each).collect()
}

/// Changed rows after `acked` (what the master has not acknowledged yet).
pub async fn backlog<C: GenericClient>(client: &C, acked: Watermark) -> Result<i64, tokio_postgres::Error> {
    let counts = every_table(|name| {
        format!("(SELECT count(*) FROM {name} t WHERE (t.change_xid, t.change_seq) > ($1::bigint::text::xid8, $2))")
    });
    Ok(client.query_one(&format!("SELECT ({})::bigint", counts.join(" + ")), &[&acked.xid, &acked.seq]).await?.get(0))
}

/// How many changed rows follow `from`, counted up to `up_to`: each
/// table is read through its `(change_xid, change_seq)` index, at most
/// `up_to` entries from each, so the look costs about what a page of that
/// many rows does however long the backlog (unlike [`backlog`], which
/// counts them all). `up_to` when at least that many wait.
pub async fn waiting<C: GenericClient>(
    client: &C,
    from: Watermark,
    up_to: usize,
) -> Result<i64, tokio_postgres::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let counts = every_table(|name| {
            format!(
                "(SELECT count(*) FROM (SELECT 1 FROM {name} t
                   WHERE (t.change_xid, t.change_seq) > ($1::bigint::text::xid8, $2) LIMIT $3::bigint) AS s)"
            )
        });
        format!("SELECT LEAST({}, $3::bigint)::bigint", counts.join(" + "))
    });
    let up_to = up_to as i64;
    Ok(client.query_one_cached(&SQL, &[&from.xid, &from.seq, &up_to]).await?.get(0))
}

/// A position past every change committed so far: the master holds all of
/// them once it has acknowledged a pass that started after this call.
pub async fn written_head<C: GenericClient>(client: &C) -> Result<Watermark, tokio_postgres::Error> {
    let latest = every_table(|name| format!("(SELECT max(change_xid::text::bigint) FROM {name})"));
    let xid: Option<i64> = client.query_one(&format!("SELECT GREATEST({})", latest.join(", ")), &[]).await?.get(0);
    Ok(Watermark { xid: xid.map_or(0, |x| x + 1), seq: 0 })
}
