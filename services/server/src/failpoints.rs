//! Failpoints: places where a fault test can stop the server as if the
//! process died there. Nothing is armed in normal operation.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// The armed failpoints of one server.
#[derive(Debug, Default)]
pub struct Failpoints {
    /// Die after committing this many more replication batches (0 = never).
    die_after_replication_commits: AtomicU64,
    /// Notified when a failpoint fired.
    pub fired: Notify,
}

impl Failpoints {
    /// Arms the "killed between commit and ack" fault of the master's
    /// replication consumer: after the `n`-th next committed batch, the
    /// server stops answering for good.
    pub fn die_after_replication_commits(&self, n: u64) {
        self.die_after_replication_commits.store(n, Ordering::SeqCst);
    }

    /// Called by the replication consumer after a commit, before its ack.
    /// When the fault fires, this never returns: the process is "dead" and
    /// the test tears it down, so the broker redelivers the unacked batch.
    pub async fn after_replication_commit(&self) {
        let fire = self
            .die_after_replication_commits
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n > 0).then(|| n - 1))
            == Ok(1);
        if fire {
            tracing::error!("Failpoint: dying between a replication commit and its ack.");
            self.fired.notify_waiters();
            self.fired.notify_one();
            std::future::pending::<()>().await;
        }
    }
}
