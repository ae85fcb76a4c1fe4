//! Tasks on a master: sent to the slaves of their target through
//! [`crate::hierarchy::fanout`], shown with one receipt per slave and the
//! progress of all their endpoints added up.
//!
//! View fields are declared in the order the API has always answered them
//! (alphabetical), so the JSON stays byte for byte the same.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, PoolError};
use rampart_shared::{db::CachedStatements, hierarchy::ReceiptObject};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{CreateTask, TaskProgress, TaskState, UnknownKind};
use crate::{
    hierarchy::fanout::{self, ReceiptProgress, SlaveReceipt, TargetError},
    operators::{activity, Actor},
    owner::Owner,
    state::AppState,
};

/// Why a task operation on a master failed.
#[derive(Debug, thiserror::Error)]
pub enum MasterTaskError {
    #[error("no task {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    UnknownKind(#[from] UnknownKind),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("no registered slave to run the task on")]
    NoSlave,
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// A task of this master.
#[derive(Debug, Serialize)]
pub struct Task {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    pub owner: Owner,
    /// The endpoints of every slave added up.
    pub progress: TaskProgress,
    /// When the task is shown alone: one receipt per slave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slaves: Option<Vec<SlaveReceipt<TaskReach>>>,
    pub state: TaskState,
    /// The stored [`SlaveTarget`](rampart_shared::hierarchy::SlaveTarget).
    pub target: Option<Value>,
}

/// What a task receipt says: the task's endpoints on that slave.
#[derive(Debug, Serialize)]
pub struct TaskReach {
    pub progress: TaskProgress,
}

impl ReceiptProgress for TaskReach {
    const OBJECT: ReceiptObject = ReceiptObject::Task;

    fn from_stored(progress: Option<Value>) -> Self {
        let counts: TaskProgress = progress.and_then(|p| serde_json::from_value(p).ok()).unwrap_or_default();
        Self { progress: counts.with_percent(0) }
    }
}

const TASK_SELECT: &str = "SELECT t.id, t.name, t.kind, t.owner, t.created_at, t.cancelled_at, t.target,
    count(r.*) FILTER (WHERE r.state IN ('pending', 'delivered')) FROM tasks t
    LEFT JOIN receipts r ON r.object_kind = $1 AND r.object_id = t.id";

impl Task {
    /// A task from its row and its receipts.
    fn from_row(row: &tokio_postgres::Row, slaves: Vec<SlaveReceipt<TaskReach>>) -> Self {
        let cancelled = row.get::<_, Option<DateTime<Utc>>>(5).is_some();
        let open: i64 = row.get(7);
        let state = match (cancelled, open) {
            (true, _) => TaskState::Cancelled,
            (false, 0) => TaskState::Completed,
            _ => TaskState::Running,
        };
        // A task no slave still runs is done, even with no endpoint.
        let when_empty = if open == 0 { 100 } else { 0 };
        let progress = TaskProgress::sum(slaves.iter().map(|s| &s.progress.progress)).with_percent(when_empty);
        Self {
            created_at: row.get(4),
            id: row.get(0),
            kind: row.get(2),
            name: row.get(1),
            owner: row.get(3),
            progress,
            slaves: Some(slaves),
            state,
            target: row.get(6),
        }
    }
}

/// Task `id` with its per-slave receipts.
async fn load<C: GenericClient>(client: &C, id: Uuid) -> Result<Task, MasterTaskError> {
    let row = client
        .query_opt(&format!("{TASK_SELECT} WHERE t.id = $2 GROUP BY t.id"), &[&ReceiptObject::Task.as_str(), &id])
        .await?
        .ok_or(MasterTaskError::NotFound(id))?;
    Ok(Task::from_row(&row, fanout::receipts(client, id).await?))
}

/// The 200 newest tasks, without their receipts.
pub async fn list(state: &AppState) -> Result<Vec<Task>, MasterTaskError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!("{TASK_SELECT} GROUP BY t.id ORDER BY t.created_at DESC LIMIT 200"),
            &[&ReceiptObject::Task.as_str()],
        )
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let mut receipts = fanout::receipts_of(&client, &ids).await?;
    let tasks = rows.iter().map(|row| {
        let mut task = Task::from_row(row, receipts.remove(&row.get::<_, Uuid>(0)).unwrap_or_default());
        task.slaves = None;
        task
    });
    Ok(tasks.collect())
}

/// Task `id` with where it stands on each slave.
pub async fn show(state: &AppState, id: Uuid) -> Result<Task, MasterTaskError> {
    load(&state.pool.get().await?, id).await
}

/// A new master task, sent to the slaves of its target.
pub async fn create(state: &AppState, actor: &Actor, mut request: CreateTask) -> Result<Task, MasterTaskError> {
    let kind = request.kind()?;
    let target = fanout::parse_target(request.target.take())?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let slaves = fanout::resolve(&tx, &target).await?;
    if slaves.is_empty() {
        return Err(MasterTaskError::NoSlave);
    }
    let id = Uuid::new_v4();
    let name = request.name_or_default(kind);
    tx.execute_cached(
        "INSERT INTO tasks (id, name, kind, owner, target) VALUES ($1, $2, $3, $4, $5)",
        &[
            &id,
            &name,
            &kind.as_str(),
            &Owner::Local.as_str(),
            &serde_json::to_value(&target).expect("targets serialize"),
        ],
    )
    .await?;
    fanout::push_task(&tx, state, id, &name, kind, &target, &slaves).await?;
    let task = load(&tx, id).await?;
    let after = serde_json::json!({"name": name, "kind": kind.as_str(), "target": task.target, "slaves": slaves.len()});
    activity::record(&tx, actor, "task.create", &format!("task:{id}"), None, Some(after)).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(task_id = %id, kind = kind.as_str(), slaves = slaves.len(), "Created a master task.");
    Ok(task)
}

/// Cancels task `id` on the slaves still running it.
pub async fn cancel(state: &AppState, actor: &Actor, id: Uuid) -> Result<Task, MasterTaskError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let before = load(&tx, id).await?;
    tx.execute_cached("UPDATE tasks SET cancelled_at = COALESCE(cancelled_at, now()) WHERE id = $1", &[&id]).await?;
    let slaves = fanout::cancel_task(&tx, state, id).await?;
    let task = load(&tx, id).await?;
    let b = serde_json::json!({"kind": before.kind, "state": before.state});
    let a = serde_json::json!({"kind": task.kind, "state": task.state, "slaves": slaves});
    activity::record(&tx, actor, "task.cancel", &format!("task:{id}"), Some(b), Some(a)).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(task_id = %id, slaves, "Cancelled a master task.");
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_receipts_fill_counters_and_percent() {
        let reach = TaskReach::from_stored(Some(serde_json::json!({"total": 4, "succeeded": 3, "running": 1})));
        assert_eq!(reach.progress.percent, 75);
        let empty = TaskReach::from_stored(None);
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            r#"{"progress":{"cancelled":0,"failed":0,"pending":0,"percent":0,"running":0,"succeeded":0,"total":0}}"#
        );
    }

    /// The API used to build this JSON as a `serde_json::Value`, whose keys
    /// come out sorted: the typed view must write the same bytes.
    #[test]
    fn tasks_serialize_as_the_api_always_did() {
        let receipt = SlaveReceipt {
            progress: TaskReach::from_stored(None),
            reason: Some("offline".into()),
            slave: "paris".into(),
            state: "failed".into(),
            updated_at: DateTime::UNIX_EPOCH,
            version: 1,
        };
        let task = Task {
            created_at: DateTime::UNIX_EPOCH,
            id: Uuid::nil(),
            kind: "quick_scan".into(),
            name: "scan".into(),
            owner: Owner::Local,
            progress: TaskProgress::default().with_percent(100),
            slaves: Some(vec![receipt]),
            state: TaskState::Completed,
            target: Some(serde_json::json!({"slaves": "all"})),
        };
        let typed = serde_json::to_string(&task).unwrap();
        assert_eq!(typed, serde_json::to_value(&task).unwrap().to_string());
    }
}
