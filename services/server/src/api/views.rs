//! Read-only views: health, status, dashboard, detections, network audit,
//! and the audit of refused messages.

use axum::{extract::State, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

use super::{fleet, ApiError, ApiResult, Params};
use crate::{licensing, outbox, refused, state::SharedState};

pub async fn health(State(state): State<SharedState>) -> Json<Value> {
    Json(json!({"status": "ok", "instance": state.site.instance, "role": state.role()}))
}

async fn status_counts(client: &deadpool_postgres::Client, offline_after: i64) -> Result<Value, ApiError> {
    let r = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE status = 'protected'), count(*) FILTER (WHERE status = 'at_risk'),
                    count(*) FILTER (WHERE status = 'infected'), count(*) FILTER (WHERE status = 'unprotected'),
                    count(*) FILTER (WHERE NOT licensed),
                    count(*) FILTER (WHERE last_seen < now() - make_interval(secs => $1::bigint))
               FROM endpoints",
            &[&offline_after],
        )
        .await?;
    Ok(json!({"total": r.get::<_, i64>(0), "protected": r.get::<_, i64>(1), "at_risk": r.get::<_, i64>(2),
              "infected": r.get::<_, i64>(3), "unprotected": r.get::<_, i64>(4), "unlicensed": r.get::<_, i64>(5),
              "offline": r.get::<_, i64>(6)}))
}

pub async fn status(State(state): State<SharedState>) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    let (m, h) = (&state.inbox_metrics, &state.hierarchy_metrics);
    let license = if state.role().has_fleet() { Some(licensing::summary(&client).await?) } else { None };
    let mut status = json!({
        "instance": state.site.instance, "role": state.role(), "version": env!("CARGO_PKG_VERSION"),
        "namespace": state.site.topology.namespace(),
        "endpoints": status_counts(&client, fleet::offline_after(&state)).await?,
        "license": license,
        "messages": {"applied": m.applied.load(Ordering::Relaxed), "dead_lettered": m.dead_lettered.load(Ordering::Relaxed),
                     "outbox_depth": outbox::depth(&client).await?,
                     "hierarchy": {"applied": h.applied.load(Ordering::Relaxed), "dead_lettered": h.dead_lettered.load(Ordering::Relaxed)}},
    });
    // `master` on a stand-alone or slave, `slaves` counts on a master.
    if let (Some(status), Value::Object(part)) = (status.as_object_mut(), super::hierarchy::status_part(&state).await?)
    {
        status.extend(part);
    }
    Ok(Json(status))
}

const DETECTION_SELECT: &str =
    "SELECT d.detection_id, d.endpoint_id, e.hostname, d.malware, d.path, d.action, d.detected_at, d.task_id
    FROM detections d LEFT JOIN endpoints e ON e.id = d.endpoint_id";

fn detection_json(r: &tokio_postgres::Row) -> Value {
    json!({"detection_id": r.get::<_, uuid::Uuid>(0), "endpoint_id": r.get::<_, String>(1), "hostname": r.get::<_, Option<String>>(2),
           "malware": r.get::<_, String>(3), "path": r.get::<_, String>(4), "action": r.get::<_, String>(5),
           "detected_at": r.get::<_, chrono::DateTime<chrono::Utc>>(6), "task_id": r.get::<_, Option<uuid::Uuid>>(7)})
}

pub async fn dashboard(State(state): State<SharedState>) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    let detections = client.query(&format!("{DETECTION_SELECT} ORDER BY d.detected_at DESC LIMIT 10"), &[]).await?;
    let days = i32::try_from(state.settings.outdated_after_days).unwrap_or(i32::MAX);
    let outdated_count: i64 = client
        .query_one("SELECT count(*) FROM endpoints WHERE signatures_date < current_date - $1::int", &[&days])
        .await?
        .get(0);
    let outdated = client
        .query(
            &format!("SELECT {} FROM {} WHERE e.signatures_date < current_date - $1::int ORDER BY e.signatures_date, e.id LIMIT 10",
                     fleet::ENDPOINT_COLUMNS, fleet::ENDPOINT_FROM),
            &[&days],
        )
        .await?;
    let running: i64 = client
        .query_one(
            "SELECT count(DISTINCT t.id) FROM tasks t JOIN task_results r ON r.task_id = t.id
              WHERE t.cancelled_at IS NULL AND r.state IN ('pending', 'running')",
            &[],
        )
        .await?
        .get(0);
    let offline = fleet::offline_after(&state);
    Ok(Json(json!({
        "endpoints": status_counts(&client, offline).await?,
        "recent_detections": detections.iter().map(detection_json).collect::<Vec<_>>(),
        "outdated_signatures": {"threshold_days": days, "count": outdated_count,
                                "endpoints": outdated.iter().map(|r| fleet::endpoint_json(r, offline)).collect::<Vec<_>>()},
        "tasks_running": running,
        "license": licensing::summary(&client).await?,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionQuery {
    endpoint: Option<String>,
    limit: Option<i64>,
}

pub async fn detections(State(state): State<SharedState>, Params(q): Params<DetectionQuery>) -> ApiResult<Vec<Value>> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::Invalid("limit must be between 1 and 10000".into()));
    }
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "{DETECTION_SELECT} WHERE $1::text IS NULL OR d.endpoint_id = $1 ORDER BY d.detected_at DESC LIMIT $2"
            ),
            &[&q.endpoint, &limit],
        )
        .await?;
    Ok(Json(rows.iter().map(detection_json).collect()))
}

pub async fn audit(State(state): State<SharedState>) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT c.computer_id, c.hostname, host(c.ip), c.mac, c.os, c.third_party_protection,
                    EXISTS (SELECT 1 FROM endpoints e WHERE e.id = c.computer_id),
                    (SELECT d.state FROM deployments d WHERE d.computer_id = c.computer_id ORDER BY d.requested_at DESC LIMIT 1),
                    c.first_seen, c.last_seen
               FROM discovered_computers c ORDER BY c.computer_id",
            &[],
        )
        .await?;
    let (mut managed, mut unprotected) = (0, 0);
    let computers: Vec<Value> = rows
        .iter()
        .map(|r| {
            let is_managed: bool = r.get(6);
            let third_party: bool = r.get(5);
            managed += i64::from(is_managed);
            unprotected += i64::from(!is_managed && !third_party);
            json!({"computer_id": r.get::<_, String>(0), "hostname": r.get::<_, String>(1), "ip": r.get::<_, String>(2),
                   "mac": r.get::<_, String>(3), "os": r.get::<_, String>(4), "third_party_protection": third_party,
                   "managed": is_managed, "deployment": r.get::<_, Option<String>>(7).unwrap_or_else(|| "none".into()),
                   "first_seen": r.get::<_, chrono::DateTime<chrono::Utc>>(8), "last_seen": r.get::<_, chrono::DateTime<chrono::Utc>>(9)})
        })
        .collect();
    Ok(Json(json!({"summary": {"discovered": computers.len(), "managed": managed,
                               "unmanaged": computers.len() as i64 - managed, "unprotected": unprotected},
                   "computers": computers})))
}

/// `GET /api/refused-messages?queue=&slave=&sender=&limit=`: what this
/// server refused or ignored, newest first.
pub async fn refused_messages(
    State(state): State<SharedState>,
    Params(filter): Params<refused::Filter>,
) -> ApiResult<Value> {
    let limit = filter.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::Invalid("limit must be between 1 and 10000".into()));
    }
    Ok(Json(refused::list(&state.pool.get().await?, &filter, limit).await?))
}
