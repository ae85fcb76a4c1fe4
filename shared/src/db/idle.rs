//! Giving idle connections back to PostgreSQL (`<Database><IdleTimeout>`).
//!
//! deadpool keeps every connection it has opened until it fails a check, so
//! a server that once needed its whole pool holds that many backends for
//! good, each a process of several megabytes on the database's machine.
//! [`close_idle`] sweeps the pool with deadpool's own `Pool::retain` and
//! closes the connections that have waited in it longer than the idle
//! timeout; the next checkout past the remaining ones opens a new
//! connection, as at start.
//!
//! No connection is kept open on purpose: a running server's outbox relay
//! checks the outbox every second, and the pool hands out the connection
//! returned last first, so the relay keeps one connection in use and only
//! those beyond what the server's own steady work needs go idle. A process
//! whose pool truly sees no work gives every backend back.

use std::time::Duration;

use deadpool_postgres::{Pool, WeakPool};

use crate::Shutdown;

/// The idle timeout when `<Database><IdleTimeout>` is absent: five minutes,
/// long enough that a burst of work every few minutes keeps its connections.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The longest time between two sweeps, whatever the timeout.
const LONGEST_SWEEP: Duration = Duration::from_secs(60);

/// How often the pool is swept for `idle_timeout`: a quarter of it (so a
/// connection closes at most a quarter late), at least a second and at most
/// [`LONGEST_SWEEP`].
pub fn sweep_period(idle_timeout: Duration) -> Duration {
    (idle_timeout / 4).clamp(Duration::from_secs(1), LONGEST_SWEEP)
}

/// Whether a connection that has waited `idle_for` in the pool stays open.
/// deadpool's `Metrics::last_used` is the time since the connection was
/// last handed out (or opened), so a connection held by one long task and
/// then returned may be closed at the next sweep: the cost is one new
/// connection later, never a lost one.
pub fn stays_open(idle_for: Duration, idle_timeout: Duration) -> bool {
    idle_for < idle_timeout
}

/// Closes `pool`'s connections idle longer than `idle_timeout`, every
/// [`sweep_period`], until `shutdown` or until the pool is dropped (the
/// task holds it weakly, so it never keeps a pool alive).
pub async fn close_idle(pool: WeakPool, idle_timeout: Duration, shutdown: Shutdown) {
    let period = sweep_period(idle_timeout);
    while shutdown.sleep(period).await {
        let Some(pool) = pool.upgrade() else { return };
        let closed = sweep(&pool, idle_timeout);
        if closed > 0 {
            let status = pool.status();
            tracing::debug!(
                closed,
                open = status.size,
                idle_timeout_s = idle_timeout.as_secs(),
                "Closed idle database connections."
            );
        }
    }
}

/// One sweep: closes the connections idle for `idle_timeout` or longer;
/// returns how many were closed.
pub fn sweep(pool: &Pool, idle_timeout: Duration) -> usize {
    // The removed connections are dropped here, which closes them: the
    // connection task of each ends and PostgreSQL's backend exits.
    pool.retain(|_, metrics| stays_open(metrics.last_used(), idle_timeout)).removed.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_a_quarter_of_the_timeout_within_bounds() {
        assert_eq!(sweep_period(Duration::from_secs(300)), Duration::from_secs(60));
        assert_eq!(sweep_period(Duration::from_secs(20)), Duration::from_secs(5));
        assert_eq!(sweep_period(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(sweep_period(Duration::from_secs(86_400)), LONGEST_SWEEP);
    }

    #[test]
    fn a_connection_idle_for_the_timeout_closes() {
        let timeout = Duration::from_secs(300);
        assert!(stays_open(Duration::from_secs(299), timeout));
        assert!(!stays_open(timeout, timeout));
        assert!(!stays_open(Duration::from_secs(3600), timeout));
    }
}
