//! One shutdown path for the whole process.
//!
//! A [`Shutdown`] is cheap to clone; every long-running task holds one and
//! selects on [`Shutdown::wait`]. `trigger` is called once, from the signal
//! handler or from a test.

use tokio::sync::watch;

/// Broadcasts "stop now" to every task that holds a clone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    sender: std::sync::Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (sender, receiver) = watch::channel(false);
        Self { sender: std::sync::Arc::new(sender), receiver }
    }

    /// Asks every holder to stop. Idempotent.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once [`trigger`](Self::trigger) has been called.
    pub async fn wait(&self) {
        let mut receiver = self.receiver.clone();
        // An error means every sender is gone, which also means "stop".
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `duration` unless shutdown comes first; returns `false`
    /// when interrupted by shutdown.
    pub async fn sleep(&self, duration: std::time::Duration) -> bool {
        tokio::select! {
            _ = self.wait() => false,
            _ = tokio::time::sleep(duration) => true,
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        let waiter = tokio::spawn(async move { clone.wait().await });
        shutdown.trigger();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter).await.expect("waiter finished").unwrap();
        assert!(shutdown.is_triggered());
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_is_cut_short_by_shutdown() {
        let shutdown = Shutdown::new();
        let s = shutdown.clone();
        let sleeper = tokio::spawn(async move { s.sleep(std::time::Duration::from_secs(3600)).await });
        shutdown.trigger();
        assert!(!sleeper.await.unwrap());
    }
}
