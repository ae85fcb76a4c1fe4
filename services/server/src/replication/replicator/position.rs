//! Where the slave's stream stands, in `master_link`'s `repl_*` columns:
//! read, numbered for the next batch, moved by the master's answers (with
//! the tombstones it has applied pruned), and asked for a pass.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::{
    db::CachedStatements,
    replication::{ReplicationAck, ReplicationProgress, Watermark},
};
use uuid::Uuid;

use crate::replication::rows_behind::RowsBehind;

/// Where this slave's stream stands, from `master_link`.
#[derive(Clone, Debug)]
pub struct Stream {
    pub epoch: i64,
    pub sent_batch: i64,
    pub acked: Watermark,
    pub acked_batch: i64,
    pub acked_at: Option<DateTime<Utc>>,
    pub verification: Option<Uuid>,
    /// Tombstones up to here are gone: the master has applied them.
    pub pruned: Watermark,
}

/// `master_link`'s columns that make a [`Stream`], in [`stream_of`]'s order.
const STREAM_COLUMNS: &str = "repl_epoch, repl_sent_batch, repl_acked_xid, repl_acked_seq, repl_acked_batch,
    repl_verification, repl_pruned_xid, repl_pruned_seq, repl_acked_at";

fn stream_of(r: &tokio_postgres::Row) -> Stream {
    Stream {
        epoch: r.get(0),
        sent_batch: r.get(1),
        acked: Watermark { xid: r.get(2), seq: r.get(3) },
        acked_batch: r.get(4),
        verification: r.get(5),
        pruned: Watermark { xid: r.get(6), seq: r.get(7) },
        acked_at: r.get(8),
    }
}

pub async fn stream<C: GenericClient>(client: &C) -> Result<Option<Stream>, tokio_postgres::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| format!("SELECT {STREAM_COLUMNS} FROM master_link WHERE id = 1"));
    Ok(client.query_opt_cached(&SQL, &[]).await?.as_ref().map(stream_of))
}

/// Numbers the next batch and returns the stream with it (`sent_batch` is
/// the new batch's number), in one statement. Numbered outside the read's
/// snapshot: `master_link` changes under it (answers, requests), and a
/// REPEATABLE READ update of it would then fail.
pub(super) async fn number_next<C: GenericClient>(client: &C) -> Result<Option<Stream>, tokio_postgres::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!("UPDATE master_link SET repl_sent_batch = repl_sent_batch + 1 WHERE id = 1 RETURNING {STREAM_COLUMNS}")
    });
    Ok(client.query_opt_cached(&SQL, &[]).await?.as_ref().map(stream_of))
}

/// Where replication stands, for heartbeats: the rows behind counted up
/// to [`ReplicationProgress::ROWS_BEHIND_COUNTED`], or an earlier
/// heartbeat's count ([`RowsBehind`]).
pub async fn progress<C: GenericClient>(
    client: &C,
    last: &RowsBehind,
) -> Result<Option<ReplicationProgress>, tokio_postgres::Error> {
    let Some(s) = stream(client).await? else { return Ok(None) };
    let rows_behind = last.count(client, s.epoch, s.acked).await?;
    Ok(Some(ReplicationProgress { epoch: s.epoch, acked: s.acked, rows_behind }))
}

/// Records the master's answer to the batch in flight (inside the command
/// inbox's transaction). Answers to older batches are ignored.
pub async fn record_ack<C: GenericClient>(tx: &C, ack: &ReplicationAck) -> Result<(), tokio_postgres::Error> {
    let Some(s) = stream(tx).await? else { return Ok(()) };
    if ack.batch != s.sent_batch || ack.batch == s.acked_batch {
        tracing::debug!(
            batch = ack.batch,
            in_flight = s.sent_batch,
            "Ignored an answer to an older replication batch."
        );
        return Ok(());
    }
    // The master's copy is in another epoch than ours: if older, it lost our
    // snapshot's start (resend the epoch from the start); if newer, this
    // database is older than what the master saw (start a newer epoch). A
    // copy that ends before the tombstones pruned here (a master restored
    // from an old backup) can only be repaired by a new epoch too.
    let (epoch, acked) = match ack.epoch.cmp(&s.epoch) {
        std::cmp::Ordering::Equal if ack.watermark < s.pruned => (s.epoch + 1, Watermark::START),
        std::cmp::Ordering::Equal => (s.epoch, ack.watermark),
        std::cmp::Ordering::Less => (s.epoch, Watermark::START),
        std::cmp::Ordering::Greater => (ack.epoch + 1, Watermark::START),
    };
    if epoch != s.epoch {
        tracing::warn!(epoch, master_epoch = ack.epoch, master_watermark = %ack.watermark,
                       "The master's copy cannot be continued; starting a new epoch (full snapshot).");
    } else if !ack.applied {
        tracing::warn!(batch = ack.batch, epoch, watermark = %acked, reason = ack.reason.as_deref().unwrap_or("-"),
                       "The master did not apply a replication batch; resending from its watermark.");
    }
    // A new epoch replaces the master's copy: what was pruned before no
    // longer matters.
    tx.execute_cached(
        "UPDATE master_link SET repl_epoch = $1, repl_acked_xid = $2, repl_acked_seq = $3, repl_acked_batch = $4,
                repl_acked_at = now(),
                repl_pruned_xid = CASE WHEN $1 = repl_epoch THEN repl_pruned_xid ELSE 0 END,
                repl_pruned_seq = CASE WHEN $1 = repl_epoch THEN repl_pruned_seq ELSE 0 END
          WHERE id = 1",
        &[&epoch, &acked.xid, &acked.seq, &ack.batch],
    )
    .await?;
    if ack.applied && epoch == s.epoch && acked > s.pruned {
        prune(tx, acked).await?;
    }
    Ok(())
}

/// Deletes the tombstones the master has applied (up to `upto`). The
/// pruned mark moves only when a tombstone was deleted: a master whose copy
/// falls back behind `upto` but not behind the last deletion pruned can
/// still be given every change from its watermark, without a full snapshot.
async fn prune<C: GenericClient>(tx: &C, upto: Watermark) -> Result<(), tokio_postgres::Error> {
    let pruned = tx
        .execute_cached(
            "DELETE FROM tombstones WHERE (change_xid, change_seq) <= ($1::bigint::text::xid8, $2)",
            &[&upto.xid, &upto.seq],
        )
        .await?;
    if pruned > 0 {
        tx.execute_cached(
            "UPDATE master_link SET repl_pruned_xid = $1, repl_pruned_seq = $2 WHERE id = 1",
            &[&upto.xid, &upto.seq],
        )
        .await?;
        tracing::debug!(pruned, upto = %upto, "Pruned tombstones the master has applied.");
    }
    Ok(())
}

/// Asks for a pass, with checksums when `verification` is given.
pub async fn request<C: GenericClient>(
    tx: &C,
    verification: Option<Uuid>,
    full: bool,
) -> Result<(), tokio_postgres::Error> {
    if let Some(id) = verification {
        tx.execute_cached("UPDATE master_link SET repl_verification = $1 WHERE id = 1", &[&id]).await?;
    }
    if full {
        tx.execute_cached(
            "UPDATE master_link SET repl_epoch = repl_epoch + 1, repl_acked_xid = 0, repl_acked_seq = 0,
                    repl_acked_batch = repl_sent_batch, repl_pruned_xid = 0, repl_pruned_seq = 0 WHERE id = 1",
            &[],
        )
        .await?;
    }
    Ok(())
}
