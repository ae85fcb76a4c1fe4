//! Slave side: the rows the master has not acknowledged yet, as heartbeats
//! report them: looked at every time, counted only now and then.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use deadpool_postgres::GenericClient;
use rampart_shared::replication::{ReplicationProgress, Watermark};

use crate::replication::changes;

/// How long a count of [`RowsBehind::EXPENSIVE`] rows or more stands for
/// the heartbeats after it while the slave is still behind.
const ROWS_BEHIND_KEPT: Duration = Duration::from_secs(60);

/// The last count of the rows behind. Counting reads an index entry a row
/// (10,000 rows took 19 ms while 100 slaves of a shared machine drained
/// their backlogs, each counting every 10 s), so a large count stands for
/// a minute; whether any row waits at all is looked at every time (one
/// index entry a table), so a slave that caught up says 0 at once.
#[derive(Debug, Default)]
pub struct RowsBehind(Mutex<Option<Counted>>);

/// A count of the rows behind, and where the stream stood when it was made.
#[derive(Clone, Copy, Debug)]
struct Counted {
    at: Instant,
    epoch: i64,
    from: Watermark,
    rows: i64,
}

impl Counted {
    /// Whether this count still stands for a stream in `epoch` acknowledged
    /// up to `acked` that has rows waiting: a large one, not older than
    /// [`ROWS_BEHIND_KEPT`], of the same epoch and not from a later
    /// position (a full pass, or a batch sent again, starts the stream
    /// over: counted again at once).
    fn stands(&self, epoch: i64, acked: Watermark, now: Instant) -> bool {
        self.rows >= RowsBehind::EXPENSIVE
            && self.epoch == epoch
            && acked >= self.from
            && now.saturating_duration_since(self.at) < ROWS_BEHIND_KEPT
    }
}

impl RowsBehind {
    /// Counts under this are counted at every heartbeat.
    pub const EXPENSIVE: i64 = 1_000;

    pub(crate) async fn count<C: GenericClient>(
        &self,
        client: &C,
        epoch: i64,
        acked: Watermark,
    ) -> Result<i64, tokio_postgres::Error> {
        if changes::waiting(client, acked, 1).await? == 0 {
            *self.0.lock().expect("rows behind lock") = None;
            return Ok(0);
        }
        let kept = *self.0.lock().expect("rows behind lock");
        if let Some(kept) = kept.filter(|k| k.stands(epoch, acked, Instant::now())) {
            tracing::trace!(rows = kept.rows, counted_ago = ?kept.at.elapsed(), "Rows behind as counted earlier.");
            return Ok(kept.rows);
        }
        let rows = changes::waiting(client, acked, ReplicationProgress::ROWS_BEHIND_COUNTED as usize).await?;
        *self.0.lock().expect("rows behind lock") = Some(Counted { at: Instant::now(), epoch, from: acked, rows });
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_count_stands_for_a_minute_of_the_same_stream() {
        let at = Instant::now();
        let from = Watermark { xid: 100, seq: 7 };
        let counted = Counted { at, epoch: 2, from, rows: 10_000 };
        let later = Watermark { xid: 120, seq: 1 };
        assert!(counted.stands(2, from, at));
        assert!(counted.stands(2, later, at + Duration::from_secs(59)), "the master acknowledged more since");
        assert!(!counted.stands(2, later, at + ROWS_BEHIND_KEPT), "a minute old: counted again");
        assert!(!counted.stands(3, later, at), "a full pass started a new epoch");
        assert!(!counted.stands(2, Watermark::START, at), "the stream went back (a batch sent again)");
        let small = Counted { rows: RowsBehind::EXPENSIVE - 1, ..counted };
        assert!(!small.stands(2, from, at), "a small count is cheap: counted at every heartbeat");
    }
}
