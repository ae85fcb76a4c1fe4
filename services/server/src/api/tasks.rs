//! Tasks (scan, update) sent to endpoints, with per-endpoint progress.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use rampart_shared::messages::TaskKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{error::parse_id, fanout, ApiError, ApiResult, Body};
use crate::{outbox, role::Role, state::SharedState, tasks};

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

const TASK_SELECT: &str = "SELECT t.id, t.name, t.kind, t.owner, t.created_at, t.cancelled_at,
    count(r.*), count(r.*) FILTER (WHERE r.state = 'pending'), count(r.*) FILTER (WHERE r.state = 'running'),
    count(r.*) FILTER (WHERE r.state = 'succeeded'), count(r.*) FILTER (WHERE r.state = 'failed'),
    count(r.*) FILTER (WHERE r.state = 'cancelled')
    FROM tasks t LEFT JOIN task_results r ON r.task_id = t.id";

fn task_json(r: &tokio_postgres::Row) -> Value {
    let (total, pending, running, succeeded, failed, cancelled): (i64, i64, i64, i64, i64, i64) =
        (r.get(6), r.get(7), r.get(8), r.get(9), r.get(10), r.get(11));
    let finished = succeeded + failed + cancelled;
    let cancelled_at: Option<chrono::DateTime<chrono::Utc>> = r.get(5);
    let state = if cancelled_at.is_some() {
        "cancelled"
    } else if finished == total {
        "completed"
    } else {
        "running"
    };
    json!({"id": r.get::<_, Uuid>(0), "name": r.get::<_, String>(1), "kind": r.get::<_, String>(2),
           "owner": r.get::<_, String>(3), "created_at": r.get::<_, chrono::DateTime<chrono::Utc>>(4), "state": state,
           "progress": {"total": total, "pending": pending, "running": running, "succeeded": succeeded,
                        "failed": failed, "cancelled": cancelled,
                        "percent": if total == 0 { 100 } else { finished * 100 / total }}})
}

async fn load<C: deadpool_postgres::GenericClient>(client: &C, id: Uuid) -> Result<Value, ApiError> {
    let row = client
        .query_opt(&format!("{TASK_SELECT} WHERE t.id = $1 GROUP BY t.id"), &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no task {id}")))?;
    Ok(task_json(&row))
}

pub async fn list(State(state): State<SharedState>) -> ApiResult<Vec<Value>> {
    if state.role() == Role::Master {
        return fanout::list_tasks(state).await;
    }
    let client = state.pool.get().await?;
    let rows = client.query(&format!("{TASK_SELECT} GROUP BY t.id ORDER BY t.created_at DESC LIMIT 200"), &[]).await?;
    Ok(Json(rows.iter().map(task_json).collect()))
}

pub async fn show(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Value> {
    let id: Uuid = parse_id(&id, "task")?;
    let client = state.pool.get().await?;
    if state.role() == Role::Master {
        return Ok(Json(fanout::show_task(&client, id).await?));
    }
    let mut task = load(&client, id).await?;
    let rows = client
        .query(
            "SELECT r.endpoint_id, e.hostname, r.state, r.scanned_files, r.detections, r.message, r.updated_at
               FROM task_results r LEFT JOIN endpoints e ON e.id = r.endpoint_id
              WHERE r.task_id = $1 ORDER BY r.endpoint_id",
            &[&id],
        )
        .await?;
    task["results"] = rows
        .iter()
        .map(|r| json!({"endpoint_id": r.get::<_, String>(0), "hostname": r.get::<_, Option<String>>(1),
                         "state": r.get::<_, String>(2), "scanned_files": r.get::<_, i64>(3), "detections": r.get::<_, i32>(4),
                         "message": r.get::<_, Option<String>>(5), "updated_at": r.get::<_, chrono::DateTime<chrono::Utc>>(6)}))
        .collect();
    Ok(Json(task))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    name: Option<String>,
    kind: String,
    /// Endpoints here ([`TaskTarget`]), or slaves on a master.
    target: Option<Value>,
}

pub async fn create(
    State(state): State<SharedState>,
    Body(body): Body<CreateTask>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let kind = TaskKind::parse(&body.kind).ok_or_else(|| {
        ApiError::Invalid(format!("kind '{}' is not one of quick_scan, full_scan, update", body.kind))
    })?;
    if state.role() == Role::Master {
        return fanout::create_task(state, body.name, kind, body.target).await;
    }
    let target = body
        .target
        .ok_or_else(|| ApiError::Invalid("target is required: give all, groups, virtual_groups or endpoints".into()))?;
    let target: TaskTarget = serde_json::from_value(target).map_err(|e| ApiError::Invalid(format!("target: {e}")))?;
    let t = &target;
    if !t.all && t.groups.is_empty() && t.virtual_groups.is_empty() && t.endpoints.is_empty() {
        return Err(ApiError::Invalid("target is empty: give all, groups, virtual_groups or endpoints".into()));
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
    let unknown: Vec<&str> = t.endpoints.iter().filter(|e| !endpoints.contains(e)).map(String::as_str).collect();
    if !unknown.is_empty() {
        return Err(ApiError::Invalid(format!("unknown endpoints in target: {}", unknown.join(", "))));
    }
    if endpoints.is_empty() {
        return Err(ApiError::Invalid("the target matches no endpoint".into()));
    }
    let id = Uuid::new_v4();
    let name = body.name.unwrap_or_else(|| {
        format!("{} {}", kind.as_str().replace('_', " "), chrono::Utc::now().format("%Y-%m-%d %H:%M"))
    });
    tx.execute(
        "INSERT INTO tasks (id, name, kind, owner, target) VALUES ($1, $2, $3, 'local', $4)",
        &[&id, &name, &kind.as_str(), &serde_json::to_value(t).expect("target serializes")],
    )
    .await?;
    let commands = tasks::dispatch(&tx, &state.site, id, kind, &endpoints).await?;
    outbox::enqueue(&tx, &commands).await?;
    let task = load(&tx, id).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    tracing::info!(task_id = %id, kind = kind.as_str(), endpoints = endpoints.len(), "Created task.");
    Ok((StatusCode::CREATED, Json(task)))
}

pub async fn cancel(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Value> {
    let id: Uuid = parse_id(&id, "task")?;
    if state.role() == Role::Master {
        return fanout::cancel_task(state, id).await;
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let task = load(&tx, id).await?;
    if task["owner"] == "master" {
        return Err(ApiError::ReadOnly(format!("task {id} is owned by the master and cannot be cancelled here")));
    }
    tx.execute("UPDATE tasks SET cancelled_at = COALESCE(cancelled_at, now()) WHERE id = $1", &[&id]).await?;
    let cancelled = tasks::cancel_open(&tx, &state.site, &[id], "cancelled by operator").await?;
    outbox::enqueue(&tx, &cancelled.commands).await?;
    let task = load(&tx, id).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    tracing::info!(task_id = %id, endpoints = cancelled.commands.len(), "Cancelled task.");
    Ok(Json(task))
}
