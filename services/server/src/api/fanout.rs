//! Policies and tasks on a master: authored here, targeted at slaves (and
//! groups inside them), shown with one receipt per slave.
//!
//! The routes are the same as on a stand-alone (`/api/policies`,
//! `/api/tasks`); [`super::policies`] and [`super::tasks`] hand over to
//! these functions when the server is a master.

use axum::{http::StatusCode, Json};
use rampart_shared::{
    db::CachedStatements,
    hierarchy::SlaveTarget,
    messages::{PolicySettings, TaskKind},
};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{ApiError, ApiResult};
use crate::{hierarchy::fanout, state::SharedState};

/// Parses and checks the `target` of a master policy or task.
pub fn parse_target(target: Option<Value>) -> Result<SlaveTarget, ApiError> {
    let target = target.ok_or_else(|| {
        ApiError::Invalid("target is required on a master: {\"slaves\": \"all\" | [slave ids], \"group\"?: name, \"virtual_group\"?: name}".into())
    })?;
    let target: SlaveTarget = serde_json::from_value(target).map_err(|e| {
        ApiError::Invalid(format!(
            "target: {e}; expected {{\"slaves\": \"all\" | [slave ids], \"group\"?: name, \"virtual_group\"?: name}}"
        ))
    })?;
    target.validate().map_err(ApiError::Invalid)?;
    Ok(target)
}

async fn slaves_of<C: deadpool_postgres::GenericClient>(
    client: &C,
    target: &SlaveTarget,
) -> Result<Vec<String>, ApiError> {
    fanout::resolve(client, target).await?.map_err(ApiError::Invalid)
}

/// A new master policy, sent to its slaves.
pub async fn create_policy(
    state: SharedState,
    name: String,
    settings: PolicySettings,
    target: Option<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let target = parse_target(target)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let slaves = slaves_of(&tx, &target).await?;
    let id = Uuid::new_v4();
    tx.execute_cached(
        "INSERT INTO policies (id, name, owner, settings, target) VALUES ($1, $2, 'local', $3, $4)",
        &[
            &id,
            &name,
            &serde_json::to_value(&settings).expect("settings serialize"),
            &serde_json::to_value(&target).expect("targets serialize"),
        ],
    )
    .await?;
    fanout::push_policy(&tx, &state, id, &slaves).await?;
    let policy = show_policy_with(&tx, id).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    tracing::info!(policy_id = %id, name, slaves = slaves.len(), "Created a master policy.");
    Ok((StatusCode::CREATED, Json(policy)))
}

/// After an edit stored a new version: send it to the policy's slaves.
pub async fn push_new_version<C: deadpool_postgres::GenericClient>(
    tx: &C,
    state: &SharedState,
    id: Uuid,
) -> Result<usize, ApiError> {
    let Some((_, target)) = fanout::stored_policy(tx, id).await? else { return Ok(0) };
    let mut slaves = fanout::receivers(tx, "policy", id).await?;
    if target.is_all() {
        slaves = slaves_of(tx, &target).await?;
    }
    fanout::push_policy(tx, state, id, &slaves).await?;
    Ok(slaves.len())
}

/// A master policy with its per-slave receipts.
pub async fn show_policy_with<C: deadpool_postgres::GenericClient>(client: &C, id: Uuid) -> Result<Value, ApiError> {
    let mut policy = super::policies::load(client, id).await?;
    policy["slaves"] = json!(fanout::receipts(client, "policy", id).await?);
    Ok(policy)
}

const TASK_SELECT: &str = "SELECT t.id, t.name, t.kind, t.owner, t.created_at, t.cancelled_at, t.target,
    count(r.*) FILTER (WHERE r.state IN ('pending', 'delivered')) FROM tasks t
    LEFT JOIN receipts r ON r.object_kind = 'task' AND r.object_id = t.id";

/// A master task from its row and its receipts.
fn task_json(row: &tokio_postgres::Row, slaves: Vec<Value>) -> Value {
    let cancelled = row.get::<_, Option<chrono::DateTime<chrono::Utc>>>(5).is_some();
    let open: i64 = row.get(7);
    let state = match (cancelled, open) {
        (true, _) => "cancelled",
        (false, 0) => "completed",
        _ => "running",
    };
    let mut progress = fanout::total_progress(&slaves);
    if open == 0 && progress["total"] == 0 {
        progress["percent"] = json!(100);
    }
    json!({"id": row.get::<_, Uuid>(0), "name": row.get::<_, String>(1), "kind": row.get::<_, String>(2), "owner": row.get::<_, String>(3),
           "created_at": row.get::<_, chrono::DateTime<chrono::Utc>>(4), "state": state,
           "target": row.get::<_, Option<Value>>(6), "progress": progress, "slaves": slaves})
}

pub async fn show_task<C: deadpool_postgres::GenericClient>(client: &C, id: Uuid) -> Result<Value, ApiError> {
    let row = client
        .query_opt(&format!("{TASK_SELECT} WHERE t.id = $1 GROUP BY t.id"), &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no task {id}")))?;
    Ok(task_json(&row, fanout::receipts(client, "task", id).await?))
}

pub async fn list_tasks(state: SharedState) -> ApiResult<Vec<Value>> {
    let client = state.pool.get().await?;
    let rows = client.query(&format!("{TASK_SELECT} GROUP BY t.id ORDER BY t.created_at DESC LIMIT 200"), &[]).await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    let mut receipts = fanout::receipts_of(&client, "task", &ids).await?;
    let tasks = rows
        .iter()
        .map(|row| {
            let mut task = task_json(row, receipts.remove(&row.get::<_, Uuid>(0)).unwrap_or_default());
            task.as_object_mut().expect("tasks are objects").remove("slaves");
            task
        })
        .collect();
    Ok(Json(tasks))
}

/// A new master task, sent to its slaves.
pub async fn create_task(
    state: SharedState,
    name: Option<String>,
    kind: TaskKind,
    target: Option<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let target = parse_target(target)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let slaves = slaves_of(&tx, &target).await?;
    if slaves.is_empty() {
        return Err(ApiError::Invalid("no registered slave to run the task on".into()));
    }
    let id = Uuid::new_v4();
    let name = name.unwrap_or_else(|| {
        format!("{} {}", kind.as_str().replace('_', " "), chrono::Utc::now().format("%Y-%m-%d %H:%M"))
    });
    tx.execute_cached(
        "INSERT INTO tasks (id, name, kind, owner, target) VALUES ($1, $2, $3, 'local', $4)",
        &[&id, &name, &kind.as_str(), &serde_json::to_value(&target).expect("targets serialize")],
    )
    .await?;
    fanout::push_task(&tx, &state, id, &name, kind, &target, &slaves).await?;
    let task = show_task(&tx, id).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    tracing::info!(task_id = %id, kind = kind.as_str(), slaves = slaves.len(), "Created a master task.");
    Ok((StatusCode::CREATED, Json(task)))
}

pub async fn cancel_task(state: SharedState, id: Uuid) -> ApiResult<Value> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    show_task(&tx, id).await?;
    tx.execute_cached("UPDATE tasks SET cancelled_at = COALESCE(cancelled_at, now()) WHERE id = $1", &[&id]).await?;
    let slaves = fanout::cancel_task(&tx, &state, id).await?;
    let task = show_task(&tx, id).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    tracing::info!(task_id = %id, slaves, "Cancelled a master task.");
    Ok(Json(task))
}
