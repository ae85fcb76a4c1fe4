//! Wake-ups between the parts of one server. The code that commits a change
//! tells the background task that now has work, instead of that task
//! polling the database; each task also looks on its own timer, so a lost
//! wake-up only delays work, never loses it.

use std::sync::Arc;

use tokio::sync::{futures::Notified, Notify};

/// One task's wake-up: at most one is kept while the task is busy, so a
/// burst of commits wakes it once.
#[derive(Debug, Default)]
pub struct Wake(Notify);

impl Wake {
    /// Tells the task it has work.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Resolves at the next wake-up (or at once if one is kept).
    pub fn woken(&self) -> Notified<'_> {
        self.0.notified()
    }
}

/// Every wake-up of a server, by the task it wakes.
#[derive(Debug, Default)]
pub struct Wakes {
    /// The outbox relay: commands were queued (shared with the relay task).
    pub outbox_relay: Arc<Wake>,
    /// A slave's reporter: agents (or rows replicated since) moved master
    /// policies or tasks along, receipts are owed (looked at once a second
    /// at most).
    pub reporter: Wake,
    /// A slave's reporter: a master command was applied, its receipts are
    /// owed (looked at after the settle alone: the master waits for them).
    pub master_receipts: Wake,
    /// A master's summaries for the report service: a slave's numbers changed.
    pub report_summaries: Wake,
    /// A slave's replicator: a pass was asked for (replicate now, verify).
    pub replicator: Wake,
    /// A slave's replicator: the master answered the batch in flight.
    pub replication_answer: Wake,
    /// The scheduled reports runner: a schedule was created or asked to run.
    pub report_schedules: Wake,
}
