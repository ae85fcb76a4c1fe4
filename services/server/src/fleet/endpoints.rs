//! A site's endpoints: the list, one endpoint with its latest detections,
//! and moving one to another network group.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    filter::{EndpointFilter, FilterError, Page},
    offline_after, wake_outbox,
};
use crate::{
    operators::{activity, Actor},
    policies,
    role::Role,
    state::AppState,
};

/// Columns read by [`EndpointView::from_row`], with `e` = endpoints and `g` = its group.
pub(super) const COLUMNS: &str = "e.id, e.hostname, host(e.ip), e.os, e.group_id, g.name, e.agent_version,
    e.signatures_version, e.signatures_date, e.realtime_protection, e.active_threats, e.status, e.licensed,
    e.last_seen, e.enrolled_at, e.policy_id, p.name, e.policy_version, e.applied_policy_id, e.applied_policy_version";
/// Tables of [`COLUMNS`].
pub(super) const FROM: &str =
    "endpoints e JOIN network_groups g ON g.id = e.group_id LEFT JOIN policies p ON p.id = e.policy_id";

/// An endpoint as the API shows it.
#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub active_threats: i32,
    pub agent_version: String,
    /// What the agent last said it applies; `null` before it said anything.
    pub applied_policy: Option<AppliedPolicy>,
    /// The latest detections, when one endpoint is shown (not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detections: Option<Vec<DetectionView>>,
    pub enrolled_at: DateTime<Utc>,
    /// The network group's name.
    pub group: String,
    pub group_id: i64,
    pub hostname: String,
    pub id: String,
    pub ip: String,
    pub last_seen: DateTime<Utc>,
    pub licensed: bool,
    /// Heard from within the offline delay.
    pub online: bool,
    pub os: String,
    pub policy: PolicyRef,
    pub realtime_protection: bool,
    pub signatures_date: NaiveDate,
    pub signatures_version: String,
    pub status: String,
}

impl EndpointView {
    /// One row of [`COLUMNS`].
    pub(super) fn from_row(row: &Row, offline_after_secs: i64) -> Self {
        let last_seen: DateTime<Utc> = row.get(13);
        let applied_id: Option<Uuid> = row.get(18);
        let applied_version: Option<i32> = row.get(19);
        Self {
            id: row.get(0),
            hostname: row.get(1),
            ip: row.get(2),
            os: row.get(3),
            group_id: row.get(4),
            group: row.get(5),
            agent_version: row.get(6),
            signatures_version: row.get(7),
            signatures_date: row.get(8),
            realtime_protection: row.get(9),
            active_threats: row.get(10),
            status: row.get(11),
            licensed: row.get(12),
            online: (Utc::now() - last_seen).num_seconds() <= offline_after_secs,
            last_seen,
            enrolled_at: row.get(14),
            policy: PolicyRef::of(row.get(15), row.get(16), row.get(17)),
            applied_policy: (applied_id.is_some() || applied_version.is_some())
                .then_some(AppliedPolicy { id: applied_id, version: applied_version }),
            detections: None,
        }
    }
}

/// The policy that governs an endpoint.
#[derive(Debug, Serialize)]
pub struct PolicyRef {
    /// `null` for the built-in default.
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub version: Option<i32>,
}

impl PolicyRef {
    /// The policy `id`, or the built-in default when there is none.
    pub(super) fn of(id: Option<Uuid>, name: Option<String>, version: Option<i32>) -> Self {
        match id {
            Some(_) => Self { id, name, version },
            None => Self { id: None, name: Some(policies::DEFAULT_POLICY_NAME.to_owned()), version: Some(0) },
        }
    }
}

/// The policy an agent says it applies.
#[derive(Debug, Serialize)]
pub struct AppliedPolicy {
    pub id: Option<Uuid>,
    pub version: Option<i32>,
}

/// A detection as an endpoint's page shows it. Read from a site's own
/// table every field is there; read from a master's replicated copy (JSON)
/// a field a slave did not send is `null`.
#[derive(Debug, Serialize)]
pub struct DetectionView {
    pub action: Option<String>,
    pub detected_at: Option<DateTime<Utc>>,
    pub detection_id: Option<Uuid>,
    pub malware: Option<String>,
    pub path: Option<String>,
    pub task_id: Option<Uuid>,
}

impl DetectionView {
    /// From `SELECT detection_id, malware, path, action, detected_at, task_id`.
    pub fn from_row(d: &tokio_postgres::Row) -> Self {
        Self {
            detection_id: d.get(0),
            malware: d.get(1),
            path: d.get(2),
            action: d.get(3),
            detected_at: d.get(4),
            task_id: d.get(5),
        }
    }
}

/// One page of an endpoint list, and how many endpoints match in all.
#[derive(Debug, Serialize)]
pub struct EndpointPage<E> {
    pub endpoints: Vec<E>,
    pub total: i64,
}

/// Why an endpoint operation of a site failed.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("slave filters exist only on a master; this server is a {0}")]
    SlaveFilter(Role),
    #[error("no endpoint '{0}'")]
    NotFound(String),
    #[error("group_id {0} does not exist")]
    UnknownGroup(i64),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// The endpoints matching `filter`, by id.
pub async fn list(
    state: &AppState,
    filter: &EndpointFilter,
    page: Page,
) -> Result<EndpointPage<EndpointView>, EndpointError> {
    if filter.slave.is_some() {
        return Err(EndpointError::SlaveFilter(state.role()));
    }
    let search = filter.search_pattern();
    let status = filter.status_text();
    let matching = "($1::bigint IS NULL OR e.group_id = $1) AND ($2::text IS NULL OR e.status = $2)
        AND ($3::boolean IS NULL OR e.licensed = $3) AND ($4::text IS NULL OR e.hostname ILIKE $4 OR host(e.ip) LIKE $4)";
    let client = state.pool.get().await?;
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM endpoints e WHERE {matching}"),
            &[&filter.group, &status, &filter.licensed, &search],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM {FROM} WHERE {matching} ORDER BY e.id LIMIT $5 OFFSET $6"),
            &[&filter.group, &status, &filter.licensed, &search, &page.limit, &page.offset],
        )
        .await?;
    let offline = offline_after(&state.settings);
    Ok(EndpointPage { total, endpoints: rows.iter().map(|r| EndpointView::from_row(r, offline)).collect() })
}

/// One endpoint, with its 20 latest detections.
pub async fn show(state: &AppState, id: &str) -> Result<EndpointView, EndpointError> {
    let client = state.pool.get().await?;
    let row = client
        .query_opt(&format!("SELECT {COLUMNS} FROM {FROM} WHERE e.id = $1"), &[&id])
        .await?
        .ok_or_else(|| EndpointError::NotFound(id.to_owned()))?;
    let mut endpoint = EndpointView::from_row(&row, offline_after(&state.settings));
    let detections = client
        .query(
            "SELECT detection_id, malware, path, action, detected_at, task_id FROM detections
              WHERE endpoint_id = $1 ORDER BY detected_at DESC LIMIT 20",
            &[&id],
        )
        .await?;
    endpoint.detections = Some(detections.iter().map(DetectionView::from_row).collect());
    Ok(endpoint)
}

/// Moves endpoint `id` into network group `group_id` and pushes the policy
/// that now governs it; answers the endpoint as it is after the move.
pub async fn move_to_group(
    state: &AppState,
    actor: &Actor,
    id: &str,
    group_id: i64,
) -> Result<EndpointView, EndpointError> {
    move_all_to_group(state, actor, &[id.to_owned()], group_id).await?;
    show(state, id).await
}

/// Moves endpoints `ids` to group `group_id`, all of them or none when one
/// is unknown; each move is in the activity log. How many moved.
pub async fn move_all_to_group(
    state: &AppState,
    actor: &Actor,
    ids: &[String],
    group_id: i64,
) -> Result<usize, EndpointError> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if tx.query_opt("SELECT 1 FROM network_groups WHERE id = $1", &[&group_id]).await?.is_none() {
        return Err(EndpointError::UnknownGroup(group_id));
    }
    // Locked in id order: two moves of the same computers never wait on each other in a circle.
    let rows =
        tx.query("SELECT id, group_id FROM endpoints WHERE id = ANY($1) ORDER BY id FOR UPDATE", &[&ids]).await?;
    if let Some(unknown) = ids.iter().find(|id| !rows.iter().any(|r| r.get::<_, &str>(0) == id.as_str())) {
        return Err(EndpointError::NotFound(unknown.clone()));
    }
    tx.execute("UPDATE endpoints SET group_id = $2 WHERE id = ANY($1)", &[&ids, &group_id]).await?;
    let queued = policies::refresh(&tx, &state.site, Some(&ids), false).await?;
    for row in &rows {
        let (id, before): (&str, i64) = (row.get(0), row.get(1));
        let (b, a) = (serde_json::json!({"group_id": before}), serde_json::json!({"group_id": group_id}));
        activity::record(&tx, actor, "endpoint.move", &format!("endpoint:{id}"), Some(b), Some(a)).await?;
    }
    tx.commit().await?;
    wake_outbox(state, queued);
    tracing::info!(group_id, endpoints = rows.len(), "Moved endpoints to a network group.");
    Ok(rows.len())
}
