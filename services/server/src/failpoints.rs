//! Failpoints: places where a fault test can stop the server as if the
//! process died there. Nothing is armed in normal operation, and an unarmed
//! failpoint costs one atomic load.
//!
//! * [`Failpoints::die_after_replication_commits`]: the master's
//!   replication consumer, between its commit and its ack.
//! * [`Failpoints::die_after_relaying`]: the outbox relay, between the
//!   broker's confirm of a batch and the deletion of its rows (the relay
//!   will publish those rows again after a restart).

use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Mutex,
};

use tokio::sync::Notify;

/// The armed failpoints of one server.
#[derive(Debug, Default)]
pub struct Failpoints {
    /// Die after committing this many more replication batches (0 = never).
    die_after_replication_commits: AtomicU64,
    /// Whether [`Self::relay_kind`] is armed (checked first, without a lock).
    relay_armed: AtomicBool,
    /// Die once a relayed batch holding a message of this kind is confirmed.
    relay_kind: Mutex<Option<String>>,
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

    /// Arms the "killed between publish and delete" fault of the outbox
    /// relay: once a batch holding a message of `kind` (e.g.
    /// `master.policy`) is confirmed by the broker, the relay stops for good
    /// before deleting its rows.
    pub fn die_after_relaying(&self, kind: &str) {
        *self.relay_kind.lock().expect("failpoint lock is never poisoned") = Some(kind.to_owned());
        self.relay_armed.store(true, Ordering::SeqCst);
    }

    /// Called by the outbox relay once a batch of these kinds is confirmed,
    /// before its rows are deleted. Never returns when the fault fires.
    pub async fn after_relay_confirm<'a>(&self, mut kinds: impl Iterator<Item = &'a str>) {
        if !self.relay_armed.load(Ordering::Relaxed) {
            return;
        }
        let fire = {
            let mut armed = self.relay_kind.lock().expect("failpoint lock is never poisoned");
            let fire = armed.as_deref().is_some_and(|kind| kinds.any(|k| k == kind));
            if fire {
                *armed = None;
                self.relay_armed.store(false, Ordering::SeqCst);
            }
            fire
        };
        if fire {
            tracing::error!(
                "Failpoint: dying between the broker's confirm of an outbox batch and the deletion of its rows."
            );
            self.fired.notify_waiters();
            self.fired.notify_one();
            std::future::pending::<()>().await;
        }
    }
}
