//! Replication, slave side: finding what changed, safely under concurrent
//! writers.
//!
//! Every replicated table carries `change_seq` (the row's version) and
//! `change_xid` (the transaction that wrote it), stamped by a trigger
//! (migration `0003_changes.sql`); deletions leave [`tombstones`]. A
//! replicator reads changes by *transaction-id window*: [`horizon`] is the
//! oldest transaction still running, so every row whose `change_xid` is below
//! it belongs to a finished transaction and a window `[from, horizon)`, once
//! read, can never gain a row. Reading "above the highest `change_seq`
//! shipped" instead would skip a row whose transaction took its number early
//! and committed late.
//!
//! [`tombstones`]: Table::Tombstones

use deadpool_postgres::GenericClient;
use serde_json::Value;

/// The tables a slave replicates to its master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Endpoints,
    NetworkGroups,
    VirtualGroups,
    VirtualGroupMembers,
    Detections,
    TaskResults,
    License,
    /// Deleted rows of the tables above.
    Tombstones,
}

impl Table {
    pub const ALL: [Table; 8] = [
        Table::Endpoints,
        Table::NetworkGroups,
        Table::VirtualGroups,
        Table::VirtualGroupMembers,
        Table::Detections,
        Table::TaskResults,
        Table::License,
        Table::Tombstones,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Endpoints => "endpoints",
            Self::NetworkGroups => "network_groups",
            Self::VirtualGroups => "virtual_groups",
            Self::VirtualGroupMembers => "virtual_group_members",
            Self::Detections => "detections",
            Self::TaskResults => "task_results",
            Self::License => "license",
            Self::Tombstones => "tombstones",
        }
    }
}

/// The transaction-id horizon now: every transaction below it has finished.
/// Call it inside the REPEATABLE READ transaction that then reads the window.
pub async fn horizon<C: GenericClient>(client: &C) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint", &[])
        .await?
        .get(0))
}

/// A changed row: its version and its content.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub change_seq: i64,
    pub row: Value,
}

/// Rows of `table` written by transactions in `[from, to)`, after
/// `after_seq` (for paging inside a window), oldest version first.
pub async fn changes<C: GenericClient>(
    client: &C,
    table: Table,
    from: i64,
    to: i64,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<Change>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT t.change_seq, to_jsonb(t) - 'change_xid' FROM {} t
          WHERE t.change_xid >= $1::bigint::text::xid8 AND t.change_xid < $2::bigint::text::xid8 AND t.change_seq > $3
          ORDER BY t.change_seq LIMIT $4",
        table.name()
    );
    let rows = client.query(&sql, &[&from, &to, &after_seq, &limit]).await?;
    Ok(rows.iter().map(|r| Change { change_seq: r.get(0), row: r.get(1) }).collect())
}
