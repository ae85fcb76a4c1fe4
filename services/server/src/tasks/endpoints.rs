//! Tasks on endpoints: starting one on a set of endpoints and cancelling its
//! open work, inside the caller's transaction, returning the endpoint
//! commands for the outbox. Local tasks, master tasks on a slave and leaving
//! a master all go through here.

use deadpool_postgres::GenericClient;
use rampart_shared::db::CachedStatements;
use rampart_shared::messages::{CancelTask, EndpointCommand, EndpointTask, TaskKind};
use uuid::Uuid;

use crate::{outbox::Command, state::Site};

/// Records a pending result per endpoint and returns the commands that
/// start the task on them.
pub async fn dispatch<C: GenericClient>(
    tx: &C,
    site: &Site,
    task_id: Uuid,
    kind: TaskKind,
    endpoints: &[String],
) -> Result<Vec<Command>, tokio_postgres::Error> {
    tx.execute_cached(
        "INSERT INTO task_results (task_id, endpoint_id, state) SELECT $1, unnest($2::text[]), 'pending'",
        &[&task_id, &endpoints],
    )
    .await?;
    let command = EndpointCommand::Task(EndpointTask { task_id, kind });
    Ok(endpoints.iter().map(|e| site.endpoint_command(e, &command)).collect())
}

/// What [`cancel_open`] stopped.
pub struct Cancelled {
    /// The tasks that had open work, each once.
    pub tasks: Vec<Uuid>,
    /// One `endpoint.cancel_task` per endpoint whose work was open.
    pub commands: Vec<Command>,
}

/// Marks every pending or running result of `tasks` cancelled with
/// `message` and returns the commands that stop them on the endpoints.
pub async fn cancel_open<C: GenericClient>(
    tx: &C,
    site: &Site,
    tasks: &[Uuid],
    message: &str,
) -> Result<Cancelled, tokio_postgres::Error> {
    let open: Vec<(Uuid, String)> = tx
        .query_cached(
            "UPDATE task_results SET state = 'cancelled', message = $2, updated_at = now()
              WHERE task_id = ANY($1) AND state IN ('pending', 'running') RETURNING task_id, endpoint_id",
            &[&tasks, &message],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let commands = open
        .iter()
        .map(|(task_id, endpoint)| {
            site.endpoint_command(endpoint, &EndpointCommand::Cancel(CancelTask { task_id: *task_id }))
        })
        .collect();
    let mut tasks: Vec<Uuid> = open.into_iter().map(|(t, _)| t).collect();
    tasks.sort();
    tasks.dedup();
    Ok(Cancelled { tasks, commands })
}
