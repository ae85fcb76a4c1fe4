//! Tasks on a stand-alone or slave: started here on endpoints, or sent by
//! the master and read-only here; shown with per-endpoint results.
//!
//! View fields are declared in the order the API has always answered them
//! (alphabetical), so the JSON stays byte for byte the same.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, PoolError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{cancel_open, dispatch, CreateTask, TaskProgress, TaskState, UnknownKind};
use crate::{
    operators::{activity, Actor},
    outbox,
    owner::Owner,
    state::AppState,
};

/// Why a task operation on a site failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("no task {0}")]
    NotFound(Uuid),
    #[error("task {0} is owned by the master and cannot be cancelled here")]
    OwnedByMaster(Uuid),
    #[error(transparent)]
    UnknownKind(#[from] UnknownKind),
    #[error("target is required: give all, groups, virtual_groups or endpoints")]
    TargetRequired,
    #[error("target: {0}")]
    MalformedTarget(serde_json::Error),
    #[error("target is empty: give all, groups, virtual_groups or endpoints")]
    EmptyTarget,
    #[error("unknown endpoints in target: {}", .0.join(", "))]
    UnknownEndpoints(Vec<String>),
    #[error("the target matches no endpoint")]
    NoEndpoint,
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// Which endpoints a task runs on.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskTarget {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    groups: Vec<i64>,
    #[serde(default)]
    virtual_groups: Vec<i64>,
    #[serde(default)]
    endpoints: Vec<String>,
}

/// A task on this site.
#[derive(Debug, Serialize)]
pub struct Task {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    pub owner: Owner,
    pub progress: TaskProgress,
    /// When the task is shown alone: one result per endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<TaskResult>>,
    pub state: TaskState,
}

/// Where a task stands on one endpoint.
#[derive(Debug, Serialize)]
pub struct TaskResult {
    pub detections: i32,
    pub endpoint_id: String,
    pub hostname: Option<String>,
    pub message: Option<String>,
    pub scanned_files: i64,
    pub state: String,
    pub updated_at: DateTime<Utc>,
}

const TASK_SELECT: &str = "SELECT t.id, t.name, t.kind, t.owner, t.created_at, t.cancelled_at,
    count(r.*), count(r.*) FILTER (WHERE r.state = 'pending'), count(r.*) FILTER (WHERE r.state = 'running'),
    count(r.*) FILTER (WHERE r.state = 'succeeded'), count(r.*) FILTER (WHERE r.state = 'failed'),
    count(r.*) FILTER (WHERE r.state = 'cancelled')
    FROM tasks t LEFT JOIN task_results r ON r.task_id = t.id";

impl Task {
    fn from_row(r: &tokio_postgres::Row) -> Self {
        let progress = TaskProgress {
            total: r.get(6),
            pending: r.get(7),
            running: r.get(8),
            succeeded: r.get(9),
            failed: r.get(10),
            cancelled: r.get(11),
            percent: 0,
        }
        .with_percent(100);
        let cancelled_at: Option<DateTime<Utc>> = r.get(5);
        let state = if cancelled_at.is_some() {
            TaskState::Cancelled
        } else if progress.finished() == progress.total {
            TaskState::Completed
        } else {
            TaskState::Running
        };
        Self {
            created_at: r.get(4),
            id: r.get(0),
            kind: r.get(2),
            name: r.get(1),
            owner: r.get(3),
            progress,
            results: None,
            state,
        }
    }
}

async fn load<C: GenericClient>(client: &C, id: Uuid) -> Result<Task, TaskError> {
    let row = client
        .query_opt(&format!("{TASK_SELECT} WHERE t.id = $1 GROUP BY t.id"), &[&id])
        .await?
        .ok_or(TaskError::NotFound(id))?;
    Ok(Task::from_row(&row))
}

/// The 200 newest tasks.
pub async fn list(state: &AppState) -> Result<Vec<Task>, TaskError> {
    let client = state.pool.get().await?;
    let rows = client.query(&format!("{TASK_SELECT} GROUP BY t.id ORDER BY t.created_at DESC LIMIT 200"), &[]).await?;
    Ok(rows.iter().map(Task::from_row).collect())
}

/// Task `id` with its result on each endpoint.
pub async fn show(state: &AppState, id: Uuid) -> Result<Task, TaskError> {
    let client = state.pool.get().await?;
    let mut task = load(&client, id).await?;
    let rows = client
        .query(
            "SELECT r.endpoint_id, e.hostname, r.state, r.scanned_files, r.detections, r.message, r.updated_at
               FROM task_results r LEFT JOIN endpoints e ON e.id = r.endpoint_id
              WHERE r.task_id = $1 ORDER BY r.endpoint_id",
            &[&id],
        )
        .await?;
    let results = rows.iter().map(|r| TaskResult {
        detections: r.get(4),
        endpoint_id: r.get(0),
        hostname: r.get(1),
        message: r.get(5),
        scanned_files: r.get(3),
        state: r.get(2),
        updated_at: r.get(6),
    });
    task.results = Some(results.collect());
    Ok(task)
}

/// A new local task, started on the endpoints of its target.
pub async fn create(state: &AppState, actor: &Actor, mut request: CreateTask) -> Result<Task, TaskError> {
    let kind = request.kind()?;
    let target = request.target.take().ok_or(TaskError::TargetRequired)?;
    let t: TaskTarget = serde_json::from_value(target).map_err(TaskError::MalformedTarget)?;
    if !t.all && t.groups.is_empty() && t.virtual_groups.is_empty() && t.endpoints.is_empty() {
        return Err(TaskError::EmptyTarget);
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let endpoints: Vec<String> = tx
        .query(
            "SELECT id FROM endpoints WHERE $1 OR group_id = ANY($2) OR id = ANY($4)
                OR id IN (SELECT endpoint_id FROM virtual_group_members WHERE virtual_group_id = ANY($3))
              ORDER BY id",
            &[&t.all, &t.groups, &t.virtual_groups, &t.endpoints],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let unknown: Vec<String> = t.endpoints.iter().filter(|e| !endpoints.contains(e)).cloned().collect();
    if !unknown.is_empty() {
        return Err(TaskError::UnknownEndpoints(unknown));
    }
    if endpoints.is_empty() {
        return Err(TaskError::NoEndpoint);
    }
    let id = Uuid::new_v4();
    let name = request.name_or_default(kind);
    tx.execute(
        "INSERT INTO tasks (id, name, kind, owner, target) VALUES ($1, $2, $3, $4, $5)",
        &[&id, &name, &kind.as_str(), &Owner::Local.as_str(), &serde_json::to_value(&t).expect("target serializes")],
    )
    .await?;
    let commands = dispatch(&tx, &state.site, id, kind, &endpoints).await?;
    outbox::enqueue(&tx, &commands).await?;
    let task = load(&tx, id).await?;
    let after = serde_json::json!({"name": name, "kind": kind.as_str(), "target": t, "endpoints": endpoints.len()});
    activity::record(&tx, actor, "task.create", &format!("task:{id}"), None, Some(after)).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(task_id = %id, kind = kind.as_str(), endpoints = endpoints.len(), "Created task.");
    Ok(task)
}

/// Cancels local task `id` on the endpoints still running it.
pub async fn cancel(state: &AppState, actor: &Actor, id: Uuid) -> Result<Task, TaskError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let before = load(&tx, id).await?;
    if before.owner == Owner::Master {
        return Err(TaskError::OwnedByMaster(id));
    }
    tx.execute("UPDATE tasks SET cancelled_at = COALESCE(cancelled_at, now()) WHERE id = $1", &[&id]).await?;
    let cancelled = cancel_open(&tx, &state.site, &[id], "cancelled by operator").await?;
    outbox::enqueue(&tx, &cancelled.commands).await?;
    let task = load(&tx, id).await?;
    let b = serde_json::json!({"kind": before.kind, "state": before.state});
    let a = serde_json::json!({"kind": task.kind, "state": task.state, "endpoints": cancelled.commands.len()});
    activity::record(&tx, actor, "task.cancel", &format!("task:{id}"), Some(b), Some(a)).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(task_id = %id, endpoints = cancelled.commands.len(), "Cancelled task.");
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_serialize_as_the_api_always_did() {
        let result = TaskResult {
            detections: 1,
            endpoint_id: "ep-1".into(),
            hostname: None,
            message: None,
            scanned_files: 7,
            state: "succeeded".into(),
            updated_at: DateTime::UNIX_EPOCH,
        };
        let compact = serde_json::to_string(&result).unwrap();
        let sorted = serde_json::to_string(&serde_json::to_value(&result).unwrap()).unwrap();
        assert_eq!(compact, sorted);
    }

    #[test]
    fn tasks_serialize_as_the_api_always_did() {
        let task = Task {
            created_at: DateTime::UNIX_EPOCH,
            id: Uuid::nil(),
            kind: "update".into(),
            name: "update".into(),
            owner: Owner::Master,
            progress: TaskProgress { total: 2, running: 2, ..Default::default() }.with_percent(100),
            results: Some(vec![]),
            state: TaskState::Running,
        };
        let typed = serde_json::to_string(&task).unwrap();
        assert_eq!(typed, serde_json::to_value(&task).unwrap().to_string());
    }
}
