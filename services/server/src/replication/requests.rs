//! What travels beside the batches: the master's requests (replicate now,
//! verify) and its answers to batches, all on the slave's command queue.
//!
//! Master side: [`active_slaves`] resolves who is asked, [`replicate_now`]
//! asks. Slave side: [`apply_on_slave`] records an answer or a request in
//! the transaction that applies the master's command batch, and says what
//! to wake once it commits; [`request_now`] is the operator's own request.

use deadpool_postgres::GenericClient;
use rampart_shared::{hierarchy::MasterCommand, replication::ReplicateNow};

use super::replicator;
use crate::{
    hierarchy::{slaves, to_slaves},
    operators::{activity, Actor},
    role::Role,
    state::AppState,
};

/// Why replication cannot be asked for.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("no slave '{0}'")]
    UnknownSlave(String),
    #[error("slave '{slave}' is {state}: only an active slave replicates")]
    InactiveSlave { slave: String, state: String },
    #[error("this server ('{0}') is a stand-alone: it replicates only once registered to a master")]
    NotRegistered(String),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("the database is unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// The active slaves: all, or the one named (which must be active).
pub async fn active_slaves<C: GenericClient>(client: &C, only: Option<&str>) -> Result<Vec<String>, RequestError> {
    if let Some(id) = only {
        let row = client.query_opt("SELECT state FROM slaves WHERE id = $1", &[&id]).await?;
        return match row.map(|r| r.get::<_, String>(0)) {
            None => Err(RequestError::UnknownSlave(id.to_owned())),
            Some(s) if s == "active" => Ok(vec![id.to_owned()]),
            Some(state) => Err(RequestError::InactiveSlave { slave: id.to_owned(), state }),
        };
    }
    Ok(slaves::active_slaves(client).await?)
}

/// Master: asks `slaves` for a pass now (`full`: a new epoch).
pub async fn replicate_now(state: &AppState, actor: &Actor, slaves: &[String], full: bool) -> Result<(), RequestError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    to_slaves::send(&tx, state, slaves, &MasterCommand::ReplicateNow(ReplicateNow { full })).await?;
    let after = serde_json::json!({"slaves": slaves, "full": full});
    activity::record(&tx, actor, "replication.now", "replication", None, Some(after)).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(slaves = ?slaves, full, "Asked slaves to replicate now.");
    Ok(())
}

/// Slave: the operator asks for a pass now.
pub async fn request_now(state: &AppState, actor: &Actor, full: bool) -> Result<(), RequestError> {
    if state.role() != Role::Slave {
        return Err(RequestError::NotRegistered(state.site.instance.clone()));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    replicator::request(&tx, None, full).await?;
    let after = serde_json::json!({"full": full});
    activity::record(&tx, actor, "replication.now", "replication", None, Some(after)).await?;
    tx.commit().await?;
    AfterCommit { pass: true, acked: false }.wake(state);
    tracing::info!(full, "Replication requested by the operator.");
    Ok(())
}

/// What a slave must do once the command batch that held replication
/// commands has committed.
#[derive(Debug, Default)]
pub struct AfterCommit {
    /// A pass was asked for (replicate now, verify).
    pub pass: bool,
    /// The master answered the batch in flight.
    pub acked: bool,
}

impl AfterCommit {
    /// Wakes the replicator for what was recorded. A pass asked for wakes
    /// a wait for an answer too: a full pass moves the stream past the
    /// batch in flight, which that wait then sees.
    pub fn wake(&self, state: &AppState) {
        if self.acked || self.pass {
            state.wakes.replication_answer.wake();
        }
        if self.pass {
            state.wakes.replicator.wake();
        }
    }
}

/// Slave: records a replication command of the master in the caller's
/// transaction; `false` when `command` is not replication's.
pub async fn apply_on_slave<C: GenericClient>(
    tx: &C,
    command: &MasterCommand,
    after: &mut AfterCommit,
) -> Result<bool, tokio_postgres::Error> {
    match command {
        MasterCommand::ReplicationAck(a) => {
            replicator::record_ack(tx, a).await?;
            after.acked = true;
        }
        MasterCommand::ReplicateNow(r) => {
            replicator::request(tx, None, r.full).await?;
            after.pass = true;
        }
        MasterCommand::Verify(v) => {
            replicator::request(tx, Some(v.verification), false).await?;
            after.pass = true;
        }
        _ => return Ok(false),
    }
    Ok(true)
}
