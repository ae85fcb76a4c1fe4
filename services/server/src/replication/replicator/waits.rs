//! What a replication pass waits for: the transactions running when it
//! starts (so it ships everything committed before), room in the master's
//! bulk queue before a bulk batch (so a burst of backlogs does not crowd
//! out the caught-up slaves), and the master's answer to each batch (on
//! while the master's queue still holds batches).

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use rampart_shared::{
    amqp::{Broker, QueueLooks},
    replication::Lane,
    Shutdown,
};
use tokio::time::Instant;

use super::{stream, Stream, ACK_TIMEOUT, HORIZON_WAIT, MAX_ACK_TIMEOUT};
use crate::{replication::changes, state::AppState};

/// How long the horizon wait looks at most every [`SHORT_PAUSE`], then
/// every [`LONG_PAUSE`].
const SHORT_WAIT: Duration = Duration::from_secs(2);
const SHORT_PAUSE: Duration = Duration::from_millis(50);
const LONG_PAUSE: Duration = Duration::from_millis(500);

/// Waits until every transaction running when the pass starts has ended, so
/// the pass ships everything committed before it started (a change committed
/// just before `replicate-now` is in it). A transaction open for longer than
/// [`HORIZON_WAIT`] in this database is not waited for: its
/// changes go with a later pass. `false` when stopped.
pub(super) async fn wait_for_running_transactions(state: &AppState, stop: &Shutdown) -> anyhow::Result<bool> {
    // The target and the first look in one statement: a caught-up slave's
    // pass usually finds nothing running and goes on at once.
    let (target, mut horizon) = changes::next_id_and_horizon(&state.pool.get().await?).await?;
    let started = Instant::now();
    let deadline = started + HORIZON_WAIT;
    // Short transactions end within milliseconds; a long one may take the
    // whole wait, and a hundred slaves looking every 20 ms for 30 s would
    // load the database they wait on. So the looks space out, but only
    // after the first seconds: on a loaded database an ordinary writer's
    // transaction takes a few hundred milliseconds, and pauses growing to
    // half a second at once left a caught-up pass waiting up to twice as
    // long as the transaction it waited for.
    let mut pause = Duration::from_millis(20);
    loop {
        if horizon >= target {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            tracing::warn!(horizon, waited_for = target, waited = ?HORIZON_WAIT,
                           "A long transaction holds the replication horizon back; its changes go with a later pass.");
            return Ok(true);
        }
        if !stop.sleep(pause).await {
            return Ok(false);
        }
        let longest = if started.elapsed() < SHORT_WAIT { SHORT_PAUSE } else { LONG_PAUSE };
        pause = (pause * 2).min(longest);
        // A connection only for the look: a small pool must not lose one to
        // a wait of up to HORIZON_WAIT (the benchmark's slaves, with a few
        // connections each, timed out their other work meanwhile).
        horizon = changes::horizon(&state.pool.get().await?).await?;
    }
}

/// Bulk batches the master's queue may hold ready before a slave holds its
/// own back: as many as the master applies at once, so its appliers never
/// wait for a slave while a burst stays off the broker. When a
/// `replicate now` reached 90 backlogged slaves at once, each read and
/// published a 5,000-row batch in the same second (450 MB into quorum
/// queues sharing one write-ahead log and the two cores): the caught-up
/// slaves' small batches then took up to 6 s to publish and 14 s to be
/// answered, the whole slowest percent of the live lag (`bench/README.md`,
/// change 43).
const BULK_AHEAD: u32 = crate::replication::apply::REPLICATION_APPLIERS as u32;
/// Longest a bulk batch is held back: past it, it goes whatever the queue
/// holds (a slave that kept finding the queue full is not starved, and a
/// master that stopped consuming is then the answer wait's business).
const MAX_BULK_HOLD: Duration = Duration::from_secs(60);

/// How long a pass that starts behind may wait, at random, before its
/// first look at the bulk queue, for each row it has waiting, up to
/// [`MAX_FIRST_LOOK_SPREAD`]. A `replicate now` reaches every slave within
/// milliseconds: without the spread, every backlogged one finds the queue
/// empty at once and reads its first batch at once. The spread has to be
/// longer than those reads take together, which grows with how many
/// slaves are behind and how far: a fixed 5 s spread left the drain
/// benchmark's 90 slaves, 60,000 rows behind each, reading their first
/// batches together for 13 to 21 s (`bench/README.md`, change 45). A
/// second per thousand rows delays a backlog of an hour or a week by a
/// minute at most, and a small one (a registration's first snapshot of a
/// few thousand rows) by seconds.
const FIRST_LOOK_SPREAD_PER_ROW: Duration = Duration::from_millis(1);
/// The longest first-look spread, reached at [`SPREAD_ROWS`] waiting.
const MAX_FIRST_LOOK_SPREAD: Duration = Duration::from_secs(60);
/// How many waiting rows a pass that starts behind counts at most: those
/// that make [`MAX_FIRST_LOOK_SPREAD`].
pub(super) const SPREAD_ROWS: usize =
    (MAX_FIRST_LOOK_SPREAD.as_millis() / FIRST_LOOK_SPREAD_PER_ROW.as_millis()) as usize;

/// The longest wait before the first look at the bulk queue for a pass
/// with `waiting` rows to send.
fn first_look_spread(waiting: i64) -> Duration {
    FIRST_LOOK_SPREAD_PER_ROW.saturating_mul(waiting.clamp(0, SPREAD_ROWS as i64) as u32)
}

/// Waits a random part of the first-look spread of `waiting` rows;
/// returns how long, `None` when stopped.
pub(super) async fn spread_first_look(waiting: i64, stop: &Shutdown) -> Option<Duration> {
    let spread = first_look_spread(waiting).as_millis() as u64;
    let wait = Duration::from_millis(rand::Rng::gen_range(&mut rand::thread_rng(), 0..=spread));
    stop.sleep(wait).await.then_some(wait)
}

/// Holds a bulk batch back while the master's bulk queue already holds
/// [`BULK_AHEAD`] ready batches, looking every half second or so (spread
/// at random, so the held slaves do not all look, and publish, at the
/// same moment), every look of one hold on one channel ([`QueueLooks`]).
/// A queue this broker cannot see (the master's broker is
/// another one, behind a link) holds nothing back. Returns how long it
/// held; `None` when stopped.
pub(super) async fn room_for_bulk(state: &AppState, broker: &Broker, stop: &Shutdown) -> Option<Duration> {
    let queue = state.site.topology.master_replication_queue();
    let started = Instant::now();
    let _flag = HeldFlag(&state.bulk_batch_held);
    let mut looks = QueueLooks::default();
    let held = loop {
        match looks.depth(broker, &queue).await {
            Some(waiting) if waiting >= BULK_AHEAD && started.elapsed() < MAX_BULK_HOLD => {
                state.bulk_batch_held.store(true, Ordering::Relaxed);
            }
            _ => break Some(started.elapsed()),
        }
        let pause = Duration::from_millis(rand::Rng::gen_range(&mut rand::thread_rng(), 250..750));
        if !stop.sleep(pause).await {
            break None;
        }
    };
    looks.close().await;
    held
}

/// Clears the `/metrics` flag of a held bulk batch however the hold ends.
struct HeldFlag<'a>(&'a AtomicBool);

impl Drop for HeldFlag<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// How waiting for the master's answer ended.
pub(super) enum Answer {
    /// Shutting down, or the link is gone.
    Stopped,
    /// Nothing within the time given.
    TimedOut,
    /// The answer is recorded: the stream as it now stands.
    Recorded(Stream),
}

/// Waits for the master's answer to `batch`: `patience` at first, then on
/// while batches still wait in the master's queue of the batch's `lane`
/// (it is behind, not deaf), up to [`MAX_ACK_TIMEOUT`] in all. Only that
/// lane's queue tells: a live batch waits behind live batches alone, so a
/// full bulk queue during a drain says nothing about its answer, and a
/// live batch whose answer was lost is resent after `patience`, not after
/// [`MAX_ACK_TIMEOUT`].
pub(super) async fn answer_to(
    state: &AppState,
    broker: &Broker,
    batch: i64,
    lane: Lane,
    patience: Duration,
    stop: &Shutdown,
) -> anyhow::Result<Answer> {
    let topology = &state.site.topology;
    let queue = match lane {
        Lane::Bulk => topology.master_replication_queue(),
        Lane::Live => topology.master_live_replication_queue(),
    };
    let give_up = Instant::now() + MAX_ACK_TIMEOUT.max(patience);
    let mut wait = patience;
    loop {
        match wait_for_answer(state, batch, wait, stop).await? {
            Answer::TimedOut => {}
            answer => return Ok(answer),
        }
        let left = give_up.saturating_duration_since(Instant::now());
        match broker.queue_depth(&queue).await {
            Some(waiting) if waiting > 0 && !left.is_zero() => {
                tracing::info!(
                    batch,
                    waiting,
                    lane = lane.as_str(),
                    "The master is still working through its queue; waiting for its answer."
                );
                wait = ACK_TIMEOUT.min(left);
            }
            _ => return Ok(Answer::TimedOut),
        }
    }
}

/// How often a wait for the master's answer reads the stream without a
/// wake: a fourth as often as the 500 ms poll it replaced (a read every
/// 2 s per waiting slave), and a bound on what a missed wake would cost
/// (the patience, 30 s, without it; an end-to-end test once waited past
/// its 60 s for a first snapshot under a loaded CI, cause not found).
const ANSWER_LOOK: Duration = Duration::from_secs(2);

async fn wait_for_answer(state: &AppState, batch: i64, timeout: Duration, stop: &Shutdown) -> anyhow::Result<Answer> {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let client = state.pool.get().await?;
            match stream(&client).await? {
                None => return Ok(Answer::Stopped),
                Some(s) if s.acked_batch >= batch => return Ok(Answer::Recorded(s)),
                Some(_) => {}
            }
        }
        tokio::select! {
            _ = stop.wait() => return Ok(Answer::Stopped),
            _ = tokio::time::sleep_until(deadline) => return Ok(Answer::TimedOut),
            // An answer recorded, or a full pass asked for (which moves
            // the stream past the batch in flight: `position::request`).
            // A wake between the read above and this wait is kept, not lost
            // (`Wake` holds it). The link's removal stops the slave side.
            _ = state.wakes.replication_answer.woken() => {}
            // This task's own timer (`wakes.rs`): were a wake ever missed,
            // the answer is seen within a look, not after the patience.
            _ = tokio::time::sleep(ANSWER_LOOK) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_look_spreads_with_the_rows_waiting_up_to_a_minute() {
        assert_eq!(first_look_spread(0), Duration::ZERO);
        assert_eq!(first_look_spread(-5), Duration::ZERO, "a count is never negative; if it were, no wait");
        assert_eq!(first_look_spread(5_000), Duration::from_secs(5));
        assert_eq!(first_look_spread(SPREAD_ROWS as i64), MAX_FIRST_LOOK_SPREAD);
        assert_eq!(first_look_spread(5_400_000), MAX_FIRST_LOOK_SPREAD);
    }
}
