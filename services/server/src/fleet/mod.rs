//! The fleet: what a site manages, and what a master sees of its slaves'.
//!
//! On a stand-alone or slave: [`endpoints`] (the list, one endpoint, moving
//! one to another group), [`groups`] (the network builder),
//! [`virtual_groups`] and their members, and the [`tree`] in its network and
//! virtual views. On a master: [`consolidated`], the endpoints of every
//! slave read from the replicated copy (the master's tree is in [`tree`]).
//! Both take the [`filter`]s of an endpoint list. The server's read-only
//! views: [`status`], [`dashboard`] (with the detections) and the network
//! [`audit`].
//!
//! Each operation family returns its own error enum and typed views; the
//! API serializes the views as they are. Views declare their fields in
//! alphabetical order: the order in which the API has always answered.

pub mod audit;
pub mod consolidated;
pub mod dashboard;
pub mod endpoints;
pub mod filter;
pub mod groups;
pub mod status;
pub mod tree;
pub mod virtual_groups;

use crate::{config::Settings, state::AppState};

/// Seconds of silence after which an endpoint counts as offline.
pub fn offline_after(settings: &Settings) -> i64 {
    3 * settings.heartbeat_seconds as i64
}

/// A failed plain read: only the store can fail it.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Wakes the outbox relay when a committed change queued commands (new
/// effective policies for the endpoints it touched).
fn wake_outbox(state: &AppState, queued: usize) {
    if queued > 0 {
        state.wakes.outbox_relay.wake();
    }
}
