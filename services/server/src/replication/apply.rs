//! Master side: applying the slaves' batches from `<ns>.master.replication`.
//!
//! A batch is trusted only if the slave that signed it is registered and
//! active and the routing key names it. Each batch is applied in one
//! transaction: the slave's copy is locked (an advisory lock, see
//! [`COPY_LOCK`]), the batch's start is checked against the master's
//! watermark, the rows are upserted (as arrays, in one statement) so that
//! a newer `change_seq` always wins, the watermark moves (only if it is
//! still the one checked), the answer to the slave is queued in the outbox
//! and the slave is marked as owed a summary for the report service, all
//! committed together. Only then is the delivery acked. A batch
//! that does not start at the watermark (a duplicate, a redelivery after a
//! crash, a batch from before a resync, a gap) changes nothing but a counter
//! and is answered with the master's watermark.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use rampart_shared::{
    db::CachedStatements,
    hierarchy::MasterCommand,
    replication::{ReplicationAck, ReplicationBatch, Watermark},
};
use serde_json::value::RawValue;
use tokio_postgres::types::Json;

use super::verify;
use crate::{
    hierarchy::to_slaves,
    reports::{self, events::Touched},
    state::AppState,
};

/// Bulk replication batches a master applies at once. The benchmark
/// measured 1, 3 and 5 (`bench/README.md`, change 9), and 3, 5 and 8
/// once the slaves read their pages in index order (change 47).
pub const REPLICATION_APPLIERS: usize = 5;
/// Caught-up batches a master applies at once, beside the bulk ones: small
/// batches, so a few keep up with many slaves. Four rather than two: on a
/// machine busy with a backlog's drain a small apply took up to 5 s, and
/// the next live batches waited up to 7 s for one of two appliers
/// (`bench/README.md`, change 45).
pub const LIVE_REPLICATION_APPLIERS: usize = 4;

/// A verified batch and the slave that sent it.
pub struct Inbound {
    pub slave: String,
    pub batch: ReplicationBatch,
}

/// What the type system does not check: positions and row shapes.
pub fn check_shape(batch: &ReplicationBatch) -> Result<(), String> {
    if batch.epoch < 1 {
        return Err(format!("epoch {} is not positive", batch.epoch));
    }
    if batch.to < batch.from {
        return Err(format!("batch ends at {} before it starts at {}", batch.to, batch.from));
    }
    for (i, row) in batch.rows.iter().enumerate() {
        let Some(key) = row.key.as_object() else {
            return Err(format!("rows[{i}].key is not an object"));
        };
        let expected = row.table.key_columns();
        if key.len() != expected.len() || !expected.iter().all(|c| key.contains_key(*c)) {
            return Err(format!("rows[{i}].key of table {} must have exactly {}", row.table, expected.join(", ")));
        }
        if row.row.as_ref().is_some_and(|r| !r.get().starts_with('{')) {
            return Err(format!("rows[{i}].row is not an object"));
        }
    }
    Ok(())
}

/// The master's copy of one slave: which epoch, up to where.
struct Copy {
    epoch: i64,
    watermark: Watermark,
}

/// What to do with a batch, given the copy it is for.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Apply,
    /// The first batch of a newer epoch: replace the copy.
    Replace,
    /// Change nothing; the reason goes back to the slave.
    Refuse(String),
}

fn decide(copy: &Copy, batch: &ReplicationBatch) -> Decision {
    if batch.epoch == copy.epoch && batch.from == copy.watermark {
        return Decision::Apply;
    }
    if batch.epoch > copy.epoch && batch.from == Watermark::START {
        return Decision::Replace;
    }
    Decision::Refuse(if batch.epoch < copy.epoch {
        format!("batch of epoch {} comes from before the resync to epoch {}", batch.epoch, copy.epoch)
    } else if batch.epoch > copy.epoch {
        format!("epoch {} must start from the beginning, not from {}", batch.epoch, batch.from)
    } else if batch.to <= copy.watermark {
        format!("duplicate: the copy already goes to {}", copy.watermark)
    } else if batch.from < copy.watermark {
        format!("overlap: the batch starts at {} but the copy already goes to {}", batch.from, copy.watermark)
    } else {
        format!("gap: the batch starts at {} but the copy ends at {}", batch.from, copy.watermark)
    })
}

/// Advisory lock class of a slave's copy (the slave's hash is the object):
/// two batches of one slave are applied one after the other. It used to be
/// the slave's `slaves` row, locked for the whole apply (seconds for a
/// full batch on a busy master); a status batch updating the rows of many
/// slaves then waited for it while holding the rows of the others, so a
/// caught-up slave's small batch waited for another slave's backlog
/// through it (live applies of up to 8 s in the drain benchmark, change
/// 44). The row is now written only at the end, and only if the watermark
/// is still the one read (a removal or a resynchronisation in between
/// makes the apply start again).
const COPY_LOCK: i32 = 0x5245_504c;

/// Applies one batch in one transaction and queues the answer to its slave.
pub async fn apply_one(state: &AppState, inbound: &Inbound) -> anyhow::Result<()> {
    let (slave, batch) = (&inbound.slave, &inbound.batch);
    // From the slave's read to this apply's start: its publish and its time
    // in the master's queue (both clocks are the machines' wall clocks).
    let queued_ms = (Utc::now() - batch.taken_at).num_milliseconds();
    let started = std::time::Instant::now();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&COPY_LOCK, slave]).await?;
    let Some(row) = tx
        .query_opt_cached(
            "SELECT repl_epoch, repl_xid, repl_seq FROM slaves WHERE id = $1 AND state = 'active'",
            &[slave],
        )
        .await?
    else {
        tracing::warn!(slave_id = %slave, batch = batch.batch, "Dropped a replication batch: the slave is no longer active.");
        return Ok(());
    };
    let copy = Copy { epoch: row.get(0), watermark: Watermark { xid: row.get(1), seq: row.get(2) } };
    let decision = decide(&copy, batch);
    let ack = match &decision {
        Decision::Refuse(reason) => {
            tx.execute_cached("UPDATE slaves SET repl_refused = repl_refused + 1 WHERE id = $1", &[slave]).await?;
            tracing::warn!(slave_id = %slave, epoch = batch.epoch, batch = batch.batch, from = %batch.from, reason = %reason,
                           "Refused a replication batch; asking the slave to resend from the master's watermark.");
            reports::due::mark(&tx, state, slave, &Touched::health()).await?;
            ReplicationAck {
                epoch: copy.epoch,
                batch: batch.batch,
                applied: false,
                watermark: copy.watermark,
                reason: Some(reason.clone()),
            }
        }
        Decision::Apply | Decision::Replace => {
            if decision == Decision::Replace {
                let dropped = tx.execute_cached("DELETE FROM replica_rows WHERE slave_id = $1", &[slave]).await?;
                tracing::info!(slave_id = %slave, epoch = batch.epoch, dropped, "A new replication epoch replaces the copy of a slave.");
            }
            let changed = upsert(&tx, slave, batch).await?;
            let synced_as_of: Option<DateTime<Utc>> = batch.caught_up.then_some(batch.taken_at);
            let moved = tx
                .execute_cached(
                    "UPDATE slaves SET repl_epoch = $2, repl_xid = $3, repl_seq = $4, repl_batches = repl_batches + 1,
                            repl_rows = repl_rows + $5, replicated_at = now(), synced_as_of = COALESCE($6, synced_as_of)
                      WHERE id = $1 AND state = 'active' AND repl_epoch = $7 AND repl_xid = $8 AND repl_seq = $9",
                    &[
                        slave,
                        &batch.epoch,
                        &batch.to.xid,
                        &batch.to.seq,
                        &(batch.rows.len() as i64),
                        &synced_as_of,
                        &copy.epoch,
                        &copy.watermark.xid,
                        &copy.watermark.seq,
                    ],
                )
                .await?;
            if moved == 0 {
                // Rolled back; the consumer applies the batch again, against the copy as it now is.
                anyhow::bail!("the copy of slave {slave} changed during the apply (removed or resynchronised)");
            }
            let touched = if decision == Decision::Replace { Touched::everything() } else { Touched::of_batch(batch) };
            reports::due::mark(&tx, state, slave, &touched).await?;
            if let Some(digest) = &batch.digest {
                verify::record(&tx, slave, digest, batch.taken_at).await?;
            }
            tracing::debug!(slave_id = %slave, epoch = batch.epoch, batch = batch.batch, rows = batch.rows.len(), changed,
                            to = %batch.to, caught_up = batch.caught_up, queued_ms,
                            apply_ms = started.elapsed().as_millis() as u64, "Applied a replication batch.");
            ReplicationAck { epoch: batch.epoch, batch: batch.batch, applied: true, watermark: batch.to, reason: None }
        }
    };
    to_slaves::send(&tx, state, std::slice::from_ref(slave), &MasterCommand::ReplicationAck(ack)).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    state.wakes.report_summaries.wake();
    state.failpoints.after_replication_commit().await;
    Ok(())
}

/// Rows upserted by one statement. A batch of 5,000 rows in one statement
/// made each connection's buffers grow to the batch's size: the master's
/// peak went from 114 to 181 MB with five appliers. A thousand keep them
/// near a megabyte (124 MB in the next full run, which was no slower).
const UPSERT_CHUNK_ROWS: usize = 1000;

/// Upserts the batch's rows, newest version winning; returns how many rows
/// of the copy changed. The rows go in as arrays, in the statement the
/// benchmark measures as the database's upsert limit; a binary COPY into a
/// temporary table first cost more than it saved (the staging table was
/// written, read back and truncated at every commit).
async fn upsert(tx: &Transaction<'_>, slave: &str, batch: &ReplicationBatch) -> Result<u64, tokio_postgres::Error> {
    let mut changed = 0;
    for chunk in batch.rows.chunks(UPSERT_CHUNK_ROWS) {
        let tables: Vec<&str> = chunk.iter().map(|r| r.table.name()).collect();
        let keys: Vec<&serde_json::Value> = chunk.iter().map(|r| &r.key).collect();
        let seqs: Vec<i64> = chunk.iter().map(|r| r.change_seq).collect();
        // A row goes to the database as the text it arrived as; a tombstone is NULL.
        let rows: Vec<Option<Json<&RawValue>>> = chunk.iter().map(|r| r.row.as_deref().map(Json)).collect();
        // A key comes twice only when it was deleted and created again (a
        // tombstone and a row): then the newest wins, within a statement by
        // the sort, across statements by `change_seq`. Without deletions
        // every key comes once, and the sort is skipped.
        let sql = if chunk.iter().any(|r| r.row.is_none()) { UPSERT_NEWEST } else { UPSERT };
        changed += tx.execute_cached(sql, &[&slave, &tables, &keys, &seqs, &rows]).await?;
    }
    Ok(changed)
}

/// The batch's rows into the copy, a newer version replacing an older one.
const UPSERT: &str = "
INSERT INTO replica_rows (slave_id, table_name, row_key, change_seq, row)
SELECT $1, t, k, s, r FROM UNNEST($2::text[], $3::jsonb[], $4::bigint[], $5::jsonb[]) AS u(t, k, s, r)
    ON CONFLICT (slave_id, table_name, row_key) DO UPDATE SET change_seq = excluded.change_seq, row = excluded.row
 WHERE replica_rows.change_seq < excluded.change_seq";

/// [`UPSERT`] for a batch that may hold a key twice: the newest of each.
const UPSERT_NEWEST: &str = "
INSERT INTO replica_rows (slave_id, table_name, row_key, change_seq, row)
SELECT DISTINCT ON (t, k) $1, t, k, s, r
  FROM UNNEST($2::text[], $3::jsonb[], $4::bigint[], $5::jsonb[]) AS u(t, k, s, r) ORDER BY t, k, s DESC
    ON CONFLICT (slave_id, table_name, row_key) DO UPDATE SET change_seq = excluded.change_seq, row = excluded.row
 WHERE replica_rows.change_seq < excluded.change_seq";

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i64, from: (i64, i64), to: (i64, i64)) -> ReplicationBatch {
        ReplicationBatch {
            epoch,
            batch: 1,
            from: Watermark { xid: from.0, seq: from.1 },
            to: Watermark { xid: to.0, seq: to.1 },
            caught_up: false,
            taken_at: Utc::now(),
            rows: vec![],
            digest: None,
        }
    }

    #[test]
    fn batches_apply_only_where_the_copy_ends() {
        let copy = Copy { epoch: 2, watermark: Watermark { xid: 100, seq: 7 } };
        assert_eq!(decide(&copy, &batch(2, (100, 7), (120, 3))), Decision::Apply);
        assert_eq!(decide(&copy, &batch(3, (0, 0), (50, 1))), Decision::Replace);
        let refused = |b| match decide(&copy, &b) {
            Decision::Refuse(reason) => reason,
            other => panic!("{other:?}"),
        };
        assert!(refused(batch(2, (90, 1), (100, 7))).starts_with("duplicate"));
        assert!(refused(batch(2, (0, 0), (100, 7))).starts_with("duplicate"));
        assert!(refused(batch(2, (110, 1), (120, 3))).starts_with("gap"));
        assert!(refused(batch(2, (90, 1), (120, 3))).starts_with("overlap"));
        assert!(refused(batch(1, (100, 7), (120, 3))).contains("before the resync"));
        assert!(refused(batch(3, (100, 7), (120, 3))).contains("from the beginning"));
    }

    #[test]
    fn shapes_are_checked() {
        let mut b = batch(1, (0, 0), (5, 1));
        b.rows.push(rampart_shared::replication::ReplicatedRow {
            table: rampart_shared::replication::ReplicatedTable::TaskResults,
            key: serde_json::json!({"task_id": "x"}),
            change_seq: 1,
            row: None,
        });
        assert!(check_shape(&b).unwrap_err().contains("task_id, endpoint_id"));
        assert!(check_shape(&batch(1, (5, 1), (0, 0))).unwrap_err().contains("before it starts"));
        assert!(check_shape(&batch(0, (0, 0), (0, 0))).unwrap_err().contains("epoch"));
    }
}
