//! Replication slave -> master: the wire contract.
//!
//! A slave ships its changed rows as [`ReplicationBatch`]es on
//! `<ns>.replication`, signed with its slave key: in the bulk [`Lane`] (key
//! `slave.<slave_id>`, queue `<ns>.master.replication`) or, once caught up,
//! the live one (key `slave.<slave_id>.live`, queue
//! `<ns>.master.replication.live`). The master answers
//! every batch with a [`ReplicationAck`] on the slave's command queue (see
//! [`MasterCommand`](crate::hierarchy::MasterCommand)), signed with the
//! slave's command key.
//!
//! Positions in a slave's change stream are [`Watermark`]s: (transaction id,
//! change number). A batch says where it starts and where it ends; the
//! master applies it only if it starts exactly where the master's copy ends,
//! in the same `epoch` (an epoch is one full snapshot and the increments
//! after it). Anything else (a duplicate, a batch from before a resync, a
//! gap) changes nothing and is answered with the master's own watermark, so
//! the slave resends from there.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{value::RawValue, Value};
use uuid::Uuid;

/// Wire names of the replication kinds.
pub mod kind {
    /// Slave -> master, on `<ns>.replication`.
    pub const BATCH: &str = "replication.batch";
    /// Master -> slave, on the slave's command queue.
    pub const ACK: &str = "master.replication_ack";
    pub const REPLICATE_NOW: &str = "master.replicate_now";
    pub const VERIFY: &str = "master.verify";
}

/// Largest replication message a master accepts (a batch is bounded by rows
/// and by bytes well below this).
pub const MAX_REPLICATION_BYTES: usize = 32 * 1024 * 1024;

/// The slave tables a master keeps a copy of, and their keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicatedTable {
    /// Computers: inventory, security status, licensed flag, policy status.
    Endpoints,
    NetworkGroups,
    VirtualGroups,
    VirtualGroupMembers,
    Detections,
    TaskResults,
    /// License usage (the key itself is not shipped).
    License,
    /// Who did what at the site (operators' changes, sign-ins).
    Activity,
}

impl ReplicatedTable {
    pub const ALL: [ReplicatedTable; 8] = [
        Self::Endpoints,
        Self::NetworkGroups,
        Self::VirtualGroups,
        Self::VirtualGroupMembers,
        Self::Detections,
        Self::TaskResults,
        Self::License,
        Self::Activity,
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
            Self::Activity => "activity",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The columns that identify a row.
    pub fn key_columns(self) -> &'static [&'static str] {
        match self {
            Self::VirtualGroupMembers => &["virtual_group_id", "endpoint_id"],
            Self::Detections => &["detection_id"],
            Self::TaskResults => &["task_id", "endpoint_id"],
            _ => &["id"],
        }
    }

    /// Columns that stay on the slave (secrets, replication bookkeeping).
    pub fn private_columns(self) -> &'static [&'static str] {
        match self {
            Self::License => &["change_seq", "change_xid", "key"],
            _ => &["change_seq", "change_xid"],
        }
    }

    /// The columns a row is shipped with: every column of the table but
    /// the [`private_columns`](Self::private_columns), in table order.
    /// Named rather than "all but those" so that the slave can build the
    /// row's JSON text directly; `tests/tests/replication.rs` checks the
    /// lists against the migrated schema.
    pub fn shipped_columns(self) -> &'static [&'static str] {
        match self {
            Self::Endpoints => &[
                "id",
                "hostname",
                "ip",
                "os",
                "group_id",
                "agent_version",
                "signatures_version",
                "signatures_date",
                "realtime_protection",
                "active_threats",
                "status",
                "licensed",
                "last_seen",
                "enrolled_at",
                "policy_id",
                "policy_version",
                "applied_policy_id",
                "applied_policy_version",
            ],
            Self::NetworkGroups => &["id", "name", "parent_id", "subnet", "created_at"],
            Self::VirtualGroups => &["id", "name", "description", "created_at"],
            Self::VirtualGroupMembers => &["virtual_group_id", "endpoint_id"],
            Self::Detections => {
                &["detection_id", "endpoint_id", "malware", "path", "action", "detected_at", "task_id", "received_at"]
            }
            Self::TaskResults => {
                &["task_id", "endpoint_id", "state", "scanned_files", "detections", "message", "updated_at"]
            }
            Self::License => &["id", "license_id", "customer", "seats", "issued_on", "expires_on", "installed_at"],
            Self::Activity => &["id", "at", "operator", "address", "action", "object", "before", "after"],
        }
    }
}

impl fmt::Display for ReplicatedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A position in a slave's change stream: every change ordered before
/// `(xid, seq)` is included. `(0, 0)` is the start (a full snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watermark {
    /// Transaction id (`xid8`) of the change.
    pub xid: i64,
    /// `change_seq` of the change within that transaction.
    pub seq: i64,
}

impl Watermark {
    pub const START: Watermark = Watermark { xid: 0, seq: 0 };
}

impl fmt::Display for Watermark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.xid, self.seq)
    }
}

/// Reads the `xid:seq` form [`Display`](fmt::Display) writes (as the API shows it).
impl std::str::FromStr for Watermark {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("watermark '{text}' is not of the form XID:SEQ");
        let (xid, seq) = text.split_once(':').ok_or_else(bad)?;
        Ok(Self { xid: xid.parse().map_err(|_| bad())?, seq: seq.parse().map_err(|_| bad())? })
    }
}

/// One changed row: its newest content, or `None` when it was deleted.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicatedRow {
    pub table: ReplicatedTable,
    /// The key columns, as a JSON object.
    pub key: Value,
    /// The row's version: a newer one replaces an older one, never the reverse.
    pub change_seq: i64,
    /// The row as JSON text, exactly as the slave's database wrote it and as
    /// the master's database reads it: neither side builds it as a tree of
    /// values (that was most of the replication's CPU time).
    pub row: Option<Box<RawValue>>,
}

/// Rows are equal when they hold the same text.
impl PartialEq for ReplicatedRow {
    fn eq(&self, other: &Self) -> bool {
        (self.table, &self.key, self.change_seq) == (other.table, &other.key, other.change_seq)
            && self.row.as_ref().map(|r| r.get()) == other.row.as_ref().map(|r| r.get())
    }
}

/// A bounded run of changes, `from` (exclusive) to `to` (inclusive).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationBatch {
    /// Starts at 1 with the snapshot after registration; a new epoch starts
    /// from [`Watermark::START`] and replaces the master's copy.
    pub epoch: i64,
    /// Number of this batch, for acks and logs.
    pub batch: i64,
    pub from: Watermark,
    pub to: Watermark,
    /// Nothing older than the slave's transaction horizon is left to ship:
    /// the master's copy is as of `taken_at`.
    pub caught_up: bool,
    /// When the slave read these changes.
    pub taken_at: DateTime<Utc>,
    pub rows: Vec<ReplicatedRow>,
    /// Checksums taken in the same snapshot, when a verification asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

/// Which of the master's two replication queues a batch goes to.
///
/// A slave has one batch in flight at a time (it sends the next after the
/// master's answer), so a slave's batches cannot overtake each other
/// whichever lane each takes. Across slaves the lanes matter: one queue
/// would put a caught-up slave's small batch behind the full batches of
/// every slave draining a backlog (a week offline, a new epoch), so its
/// fresh changes would wait for all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Snapshots and backlogs: every batch that did not reach the slave's
    /// head.
    Bulk,
    /// A batch that caught up (the last of a pass, and the only one of a
    /// slave that keeps up), small or of a slave that keeps up: at most
    /// one per slave and pass.
    Live,
}

impl Lane {
    /// The most rows a caught-up batch carries in the live lane when its
    /// slave may have been away: a slave that keeps up ships what changed
    /// in one interval (150 rows a second per slave in the benchmark's
    /// live traffic); the last batch of a backlog's drain can be nearly
    /// full, and goes with the bulk.
    pub const LIVE_MAX_ROWS: usize = 1_000;

    /// The lane of `batch`. `keeps_up`: it is the first batch of a pass
    /// that follows the previous one on schedule, so whatever it carries
    /// changed since then: fresh changes of a busy site, not a backlog,
    /// whatever their number. Without it, a slave that keeps up but whose
    /// pass once took long (its answer slow on a busy master) sent more
    /// than [`Self::LIVE_MAX_ROWS`] the next time, and went behind every
    /// backlog in the bulk lane, which made its next pass longer still.
    pub fn of(batch: &ReplicationBatch, keeps_up: bool) -> Self {
        Self::choose(batch.caught_up, batch.rows.len(), keeps_up)
    }

    /// The lane the first batch of a pass will take, told before it is
    /// read from the rows `waiting` (counted up to more than `batch_rows`
    /// at least): it catches up when they fit in one batch of `batch_rows`
    /// (a batch cut short by its size in bytes does not, and is found to
    /// be bulk once read).
    pub fn ahead(waiting: usize, batch_rows: usize, keeps_up: bool) -> Self {
        Self::choose(waiting <= batch_rows, waiting.min(batch_rows), keeps_up)
    }

    fn choose(caught_up: bool, rows: usize, keeps_up: bool) -> Self {
        if caught_up && (keeps_up || rows <= Self::LIVE_MAX_ROWS) {
            Self::Live
        } else {
            Self::Bulk
        }
    }

    /// For logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bulk => "bulk",
            Self::Live => "live",
        }
    }
}

/// The slave's side of a verification, at the cut of a caught-up batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Digest {
    pub verification: Uuid,
    pub tables: Vec<TableDigest>,
    /// Rows changed after the cut (not shipped yet): left out of the comparison.
    pub pending: Vec<PendingKey>,
}

/// Every row of one table: key (JSON text) and a hash of its content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDigest {
    pub table: ReplicatedTable,
    /// `(key, hash)` pairs sorted by key.
    pub rows: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingKey {
    pub table: ReplicatedTable,
    pub key: String,
}

/// The master's answer to a batch: its copy now ends at `watermark`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationAck {
    pub epoch: i64,
    /// The batch this answers.
    pub batch: i64,
    /// Whether that batch was applied; if not, `reason` says why and the
    /// slave resends from `watermark`.
    pub applied: bool,
    pub watermark: Watermark,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Replicate now instead of at the next interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicateNow {
    /// Start a new epoch: ship every row again and replace the master's copy.
    #[serde(default)]
    pub full: bool,
}

/// Replicate now and send checksums with the caught-up batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub verification: Uuid,
}

/// Where a slave's replication stands, carried by its heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationProgress {
    pub epoch: i64,
    /// What the master acknowledged last.
    pub acked: Watermark,
    /// Changed rows not acknowledged yet, counted up to
    /// [`Self::ROWS_BEHIND_COUNTED`]: a slave further behind reports that
    /// many ([`Self::rows_behind_text`] says "at least").
    pub rows_behind: i64,
}

impl ReplicationProgress {
    /// How many rows behind a heartbeat counts at most. A count has to
    /// read each row's index entry, and a site back from a week offline may
    /// be millions of rows behind (a slave counts again after a minute, not
    /// at every heartbeat, once it found 1,000 or more).
    pub const ROWS_BEHIND_COUNTED: i64 = 1_000_000;

    /// `rows_behind` for people: the number, with a `+` at the bound.
    pub fn rows_behind_text(rows_behind: i64) -> String {
        if rows_behind >= Self::ROWS_BEHIND_COUNTED {
            format!("{}+", Self::ROWS_BEHIND_COUNTED)
        } else {
            rows_behind.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_round_trip() {
        for t in ReplicatedTable::ALL {
            assert_eq!(ReplicatedTable::parse(t.name()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), Value::String(t.name().into()));
        }
        assert_eq!(ReplicatedTable::parse("policies"), None);
    }

    #[test]
    fn watermarks_order_by_transaction_then_change() {
        let w = |xid, seq| Watermark { xid, seq };
        assert!(w(5, 100) < w(6, 1));
        assert!(w(5, 1) < w(5, 2));
        assert!(Watermark::START < w(1, 0));
        assert_eq!(w(7, 3).to_string(), "7:3");
        assert_eq!("7:3".parse::<Watermark>(), Ok(w(7, 3)));
        assert!("7".parse::<Watermark>().unwrap_err().contains("XID:SEQ"));
    }

    /// A batch of `rows` tombstones.
    fn batch(caught_up: bool, rows: usize) -> ReplicationBatch {
        let row = ReplicatedRow {
            table: ReplicatedTable::Endpoints,
            key: serde_json::json!({"id": "p-1"}),
            change_seq: 1,
            row: None,
        };
        ReplicationBatch {
            epoch: 1,
            batch: 1,
            from: Watermark::START,
            to: Watermark::START,
            caught_up,
            taken_at: Utc::now(),
            rows: vec![row; rows],
            digest: None,
        }
    }

    #[test]
    fn small_caught_up_batches_take_the_live_lane() {
        assert_eq!(Lane::of(&batch(true, 0), false), Lane::Live, "an empty pass tells how fresh the copy is");
        assert_eq!(Lane::of(&batch(true, Lane::LIVE_MAX_ROWS), false), Lane::Live);
        assert_eq!(Lane::of(&batch(true, Lane::LIVE_MAX_ROWS + 1), false), Lane::Bulk, "the end of a long drain");
        assert_eq!(Lane::of(&batch(true, Lane::LIVE_MAX_ROWS + 1), true), Lane::Live, "a busy site that keeps up");
        assert_eq!(Lane::of(&batch(false, 10), false), Lane::Bulk, "more to come: a backlog");
        assert_eq!(Lane::of(&batch(false, 10), true), Lane::Bulk, "more to come, whatever came before");
    }

    #[test]
    fn rows_behind_at_the_counted_bound_read_as_at_least() {
        assert_eq!(ReplicationProgress::rows_behind_text(0), "0");
        assert_eq!(ReplicationProgress::rows_behind_text(999_999), "999999");
        assert_eq!(ReplicationProgress::rows_behind_text(ReplicationProgress::ROWS_BEHIND_COUNTED), "1000000+");
    }

    #[test]
    fn the_first_batchs_lane_is_told_from_the_rows_waiting() {
        let live = Lane::LIVE_MAX_ROWS;
        assert_eq!(Lane::ahead(0, 5_000, false), Lane::Live);
        assert_eq!(Lane::ahead(live, 5_000, false), Lane::Live);
        assert_eq!(Lane::ahead(live + 1, 5_000, false), Lane::Bulk, "a slave that may have been away");
        assert_eq!(Lane::ahead(5_000, 5_000, true), Lane::Live, "a busy site that keeps up, in one batch");
        assert_eq!(Lane::ahead(5_001, 5_000, true), Lane::Bulk, "more than a batch: a backlog, on schedule or not");
        assert_eq!(Lane::ahead(60_000, 5_000, true), Lane::Bulk);
        for (waiting, keeps_up) in [(0, false), (live + 1, false), (live + 1, true), (5_000, true), (5_001, true)] {
            let rows = waiting.min(5_000);
            let read = batch(waiting <= 5_000, rows);
            assert_eq!(Lane::ahead(waiting, 5_000, keeps_up), Lane::of(&read, keeps_up), "{waiting} waiting");
        }
    }

    #[test]
    fn batches_refuse_unknown_tables() {
        let row = serde_json::json!({"table": "policies", "key": {"id": 1}, "change_seq": 1, "row": null});
        assert!(serde_json::from_value::<ReplicatedRow>(row).is_err());
    }
}
