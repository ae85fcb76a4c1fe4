//! Slave side: shipping the change stream to the master.
//!
//! A *pass* runs every `ReplicationInterval` seconds, on demand
//! (`replicate-now`, a verification), and right after start or
//! registration (then it is the full snapshot of epoch 1). It ships batches
//! one at a time, each read from the watermark the master acknowledged last,
//! and waits for the master's answer before reading the next: the slave's
//! position moves only when the master has applied. A pass ends with a
//! caught-up batch (possibly empty), which tells the master how fresh its
//! copy is.
//!
//! Where the stream stands lives in `master_link` (`repl_*` columns, see
//! [`position`]), so a restart resumes from the acknowledged watermark.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use rampart_shared::{
    amqp::{
        publisher::{Outgoing, Publisher},
        Broker,
    },
    db::CachedStatements,
    replication::{kind, Digest, Lane, ReplicationBatch, Watermark},
    topology::Topology,
    Envelope, Shutdown,
};
use tokio::time::Instant;

use super::changes;
use crate::state::AppState;

mod position;
mod waits;
use position::number_next;
pub use position::{progress, record_ack, request, stream, Stream};
use waits::{answer_to, room_for_bulk, spread_first_look, wait_for_running_transactions, Answer, SPREAD_ROWS};

/// How long the slave first waits for the master's answer before it looks
/// at why there is none. A batch is confirmed in a durable queue before the
/// wait starts, so while batches still wait in the master's queue the master
/// is only behind (100 slaves with a batch each take it minutes) and the
/// slave keeps waiting: resending then only queued duplicates the master had
/// to refuse (the benchmark once measured more refused batches than
/// applied). It resends when the queue holds nothing any more and still no
/// answer came (the batch or its answer was lost, e.g. a queue deleted),
/// and after [`MAX_ACK_TIMEOUT`] in any case. Each resend within a pass
/// doubles the wait.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest wait for an answer before resending, however long the
/// master's queue.
pub const MAX_ACK_TIMEOUT: Duration = Duration::from_secs(600);
/// About the most JSON one batch carries (rows are bounded separately by
/// `ReplicationBatchSize`).
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Wait before retrying a pass that failed (broker or database down).
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Longest a pass waits for the transactions running when it started.
pub const HORIZON_WAIT: Duration = Duration::from_secs(30);

/// Replicates until `stop`.
pub async fn run(state: Arc<AppState>, broker: Arc<Broker>, stop: Shutdown) {
    let publisher = Publisher::new(broker.clone());
    let interval = Duration::from_secs(state.settings.replication_interval);
    let mut next_pass = Instant::now();
    tracing::info!(interval_seconds = interval.as_secs(), "Replication to the master started.");
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            _ = tokio::time::sleep_until(next_pass) => {}
            _ = state.wakes.replicator.woken() => {}
        }
        let started = Instant::now();
        match pass(&state, &broker, &publisher, &stop).await {
            Ok(Some(shipped)) => {
                tracing::info!(slave_id = %state.site.instance, batches = shipped.batches, rows = shipped.rows,
                               batch = shipped.last_batch, lane = shipped.lane.as_str(), watermark = %shipped.watermark,
                               elapsed_ms = started.elapsed().as_millis() as u64,
                               horizon_wait_ms = shipped.horizon_wait.as_millis() as u64,
                               checkout_ms = shipped.checkout.as_millis() as u64,
                               read_ms = shipped.read.as_millis() as u64,
                               held_ms = shipped.held.as_millis() as u64,
                               publish_ms = shipped.publish.as_millis() as u64,
                               answer_ms = shipped.answer.as_millis() as u64,
                               "Replicated to the master.");
                // Every interval from the previous start (at once after a
                // pass that took longer): the interval is how old the
                // master's copy may get, not a pause between passes.
                next_pass = started + interval;
                // What was shipped may have moved a master policy's or
                // task's progress without the agents' inbox (computers
                // enrolled or deleted through the API or the database):
                // the reporter looks (at most once a second), instead of
                // at its idle look up to 10 s later.
                if shipped.rows > 0 {
                    state.wakes.reporter.wake();
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?RETRY_AFTER, "Replication pass failed; retrying.");
                next_pass = Instant::now() + RETRY_AFTER.min(interval);
            }
        }
    }
    publisher.close().await;
}

/// What a pass shipped, and where its time went.
struct Shipped {
    batches: u64,
    rows: u64,
    watermark: Watermark,
    /// The last batch's number and lane.
    last_batch: i64,
    lane: Lane,
    /// Waiting for the transactions running when the pass started.
    horizon_wait: Duration,
    /// Numbering and reading the batches (with `checkout`).
    read: Duration,
    /// Of `read`: waiting for a pooled connection.
    checkout: Duration,
    /// Held back: a pass that starts behind before its first read (its
    /// spread and room in the master's bulk queue), bulk batches while the
    /// master's bulk queue was full.
    held: Duration,
    /// Until the broker confirmed them.
    publish: Duration,
    /// From the broker's confirmation until the master's answer was
    /// recorded (its queue, its apply, the answer's way back).
    answer: Duration,
}

/// Ships batches until one caught up and the master applied it; `None`
/// when stopped (or the link is gone).
async fn pass(
    state: &AppState,
    broker: &Broker,
    publisher: &Publisher,
    stop: &Shutdown,
) -> anyhow::Result<Option<Shipped>> {
    let mut shipped = Shipped {
        batches: 0,
        rows: 0,
        watermark: Watermark::START,
        last_batch: 0,
        lane: Lane::Bulk,
        horizon_wait: Duration::ZERO,
        read: Duration::ZERO,
        checkout: Duration::ZERO,
        held: Duration::ZERO,
        publish: Duration::ZERO,
        answer: Duration::ZERO,
    };
    let mut patience = ACK_TIMEOUT;
    let mut step = Instant::now();
    if !wait_for_running_transactions(state, stop).await? {
        return Ok(None);
    }
    shipped.horizon_wait = step.elapsed();
    // A pass that starts behind (its first batch goes in the bulk lane, as
    // the rows waiting tell: more than a batch, or more than a live batch
    // after a pass off schedule) waits for room in the master's bulk queue
    // before it reads that batch, not only before it publishes it, after a
    // random part of a spread that grows with the rows it has waiting
    // (`waits::spread_first_look`): when a `replicate now` reached 90
    // backlogged slaves, they all read their first 5,000 rows in the same
    // seconds, which kept the shared cores busy for 15 s while the
    // caught-up slaves' small applies on the master took seconds. Later
    // batches are read as the answers come, one at a time.
    let mut first_look = true;
    let mut held_before_read = false;
    loop {
        step = Instant::now();
        let Some(link) = state.keyring.link() else { return Ok(None) };
        let (batch, verification, keeps_up) = {
            let mut client = state.pool.get().await?;
            shipped.checkout += step.elapsed();
            let Some(stream) = number_next(&client).await? else { return Ok(None) };
            let keeps_up = shipped.batches == 0 && keeps_up(&stream, state);
            if std::mem::take(&mut first_look) {
                let batch_rows = state.settings.replication_batch_size as usize;
                let waiting = changes::waiting(&client, stream.acked, SPREAD_ROWS.max(batch_rows + 1)).await?;
                if Lane::ahead(waiting as usize, batch_rows, keeps_up) == Lane::Bulk {
                    // Held with no connection; numbered again after it (a
                    // request may have moved the stream meanwhile).
                    drop(client);
                    let Some(spread) = spread_first_look(waiting, stop).await else { return Ok(None) };
                    let Some(waited) = room_for_bulk(state, broker, stop).await else { return Ok(None) };
                    shipped.held += spread + waited;
                    held_before_read = true;
                    continue;
                }
            }
            let batch = read_batch(&mut client, state, &stream).await?;
            (batch, stream.verification, keeps_up)
        };
        let read = step.elapsed();
        shipped.read += read;
        let held = std::mem::take(&mut held_before_read);
        step = Instant::now();
        let lane = Lane::of(&batch, keeps_up);
        (shipped.last_batch, shipped.lane) = (batch.batch, lane);
        if lane == Lane::Bulk && !held {
            let Some(waited) = room_for_bulk(state, broker, stop).await else { return Ok(None) };
            shipped.held += waited;
            step = Instant::now();
        }
        let envelope = Envelope::new(kind::BATCH, &state.site.instance, batch.batch as u64, &batch);
        let message = Outgoing::bulk_envelope(
            state.site.topology.replication_exchange(),
            Topology::replication_key(&state.site.instance, lane),
            &envelope,
            Some(&link.slave_key),
        );
        let wire_bytes = message.payload.len();
        publisher.publish(message).await?;
        let published = step.elapsed();
        tracing::debug!(epoch = batch.epoch, batch = batch.batch, rows = batch.rows.len(), from = %batch.from, to = %batch.to,
                        lane = lane.as_str(), wire_bytes, read_ms = read.as_millis() as u64,
                        publish_ms = published.as_millis() as u64, "Sent a replication batch.");
        shipped.publish += published;
        step = Instant::now();
        let answer = match answer_to(state, broker, batch.batch, lane, patience, stop).await? {
            Answer::Stopped => return Ok(None),
            Answer::TimedOut => {
                tracing::warn!(batch = batch.batch, timeout = ?patience, "No answer from the master; resending.");
                patience = (patience * 2).min(MAX_ACK_TIMEOUT);
                continue;
            }
            Answer::Recorded(stream) => stream,
        };
        shipped.answer += step.elapsed();
        patience = ACK_TIMEOUT;
        if answer.acked == batch.to && answer.epoch == batch.epoch {
            shipped.batches += 1;
            shipped.rows += batch.rows.len() as u64;
            shipped.watermark = batch.to;
            if batch.digest.is_some() {
                let client = state.pool.get().await?;
                client
                    .execute_cached(
                        "UPDATE master_link SET repl_verification = NULL WHERE id = 1 AND repl_verification = $1",
                        &[&verification],
                    )
                    .await?;
            }
            if batch.caught_up {
                return Ok(Some(shipped));
            }
        }
    }
}

/// Whether the previous pass ended on schedule: its last answer came
/// within two intervals (a minute at least). What the first batch of this
/// pass carries then changed since: a busy site's fresh changes, not a
/// backlog ([`Lane::of`]).
fn keeps_up(stream: &Stream, state: &AppState) -> bool {
    let interval = state.settings.replication_interval.min(366 * 86_400) as i64;
    let window = chrono::Duration::seconds((2 * interval).max(60));
    stream.acked_at.is_some_and(|at| Utc::now() - at <= window)
}

/// Reads the batch numbered `stream.sent_batch` from the acknowledged
/// watermark in one REPEATABLE READ snapshot (the checksums of a
/// verification too). The page's settings are made in the same round trip
/// as its read (the two are pipelined): a caught-up pass's read is three
/// round trips (`BEGIN`, these two, `COMMIT`) after its numbering.
async fn read_batch(
    client: &mut deadpool_postgres::Client,
    state: &AppState,
    stream: &Stream,
) -> anyhow::Result<ReplicationBatch> {
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let taken_at = Utc::now();
    let rows = state.settings.replication_batch_size as usize;
    let ((), page) = tokio::try_join!(
        tx.batch_execute(changes::PAGE_SETTINGS),
        changes::read_page(&tx, stream.acked, rows, MAX_BATCH_BYTES)
    )?;
    let digest = match (page.caught_up, stream.verification) {
        (true, Some(verification)) => {
            let (tables, pending) = changes::digest(&tx, page.to.xid).await?;
            Some(Digest { verification, tables, pending })
        }
        _ => None,
    };
    tx.commit().await?;
    Ok(ReplicationBatch {
        epoch: stream.epoch,
        batch: stream.sent_batch,
        from: stream.acked,
        to: page.to,
        caught_up: page.caught_up,
        taken_at,
        rows: page.changes.into_iter().map(|c| c.row).collect(),
        digest,
    })
}
