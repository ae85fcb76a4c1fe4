//! The link keeper's repairs ([`super::link_keeper`]), counted by cause
//! for `/metrics` (`rampart_link_repairs_total`): kept apart from the
//! keeper so that the server's state holds the counters without importing
//! the keeper that reads the state.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a link was repaired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Missing,
    NotRunning,
    MovingNothing,
}

impl Cause {
    pub const ALL: [Cause; 3] = [Cause::Missing, Cause::NotRunning, Cause::MovingNothing];

    /// The `cause` label of `rampart_link_repairs_total`.
    pub fn label(self) -> &'static str {
        match self {
            Cause::Missing => "missing",
            Cause::NotRunning => "not_running",
            Cause::MovingNothing => "moving_nothing",
        }
    }

    /// What the log says.
    pub(super) fn describe(self) -> &'static str {
        match self {
            Cause::Missing => "missing (deleted by hand?)",
            Cause::NotRunning => "not running",
            Cause::MovingNothing => "running but moving nothing",
        }
    }
}

/// The repairs this server made, by cause, since it started.
#[derive(Debug, Default)]
pub struct LinkRepairs([AtomicU64; 3]);

impl LinkRepairs {
    pub(super) fn count(&self, cause: Cause) {
        self.0[cause as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// How many repairs of each cause.
    pub fn counts(&self) -> [(Cause, u64); 3] {
        Cause::ALL.map(|cause| (cause, self.0[cause as usize].load(Ordering::Relaxed)))
    }
}
