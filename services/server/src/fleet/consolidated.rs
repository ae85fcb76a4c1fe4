//! A master's consolidated endpoints, from its copy of every slave's data
//! (`replica_*`): the list with a slave column, the members of a slave's
//! virtual group, and one endpoint.
//!
//! Group and endpoint ids are a slave's own, so they are shown (and
//! filtered) together with the slave they belong to.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use tokio_postgres::Row;

use super::{
    endpoints::{AppliedPolicy, DetectionView, EndpointPage, PolicyRef},
    filter::{EndpointFilter, FilterError, Page},
    offline_after,
};
use crate::state::AppState;

/// Columns read by [`ReplicaEndpoint::from_row`], `e` = replica_endpoints.
const COLUMNS: &str =
    "e.slave_id, e.id, e.hostname, e.ip, e.os, e.group_id, g.name, e.agent_version, e.signatures_version,
    e.signatures_date, e.realtime_protection, e.active_threats, e.status, e.licensed, e.last_seen, e.enrolled_at,
    e.policy_id, p.name, e.policy_version, e.applied_policy_id, e.applied_policy_version";
const FROM: &str = "replica_endpoints e
    LEFT JOIN replica_network_groups g ON g.slave_id = e.slave_id AND g.id = e.group_id
    LEFT JOIN policies p ON p.id = e.policy_id";

/// A slave's endpoint as the master shows it; replicated columns may be
/// missing.
#[derive(Debug, Serialize)]
pub struct ReplicaEndpoint {
    pub active_threats: Option<i32>,
    pub agent_version: Option<String>,
    pub applied_policy: AppliedPolicy,
    /// The latest detections, when one endpoint is shown (not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detections: Option<Vec<DetectionView>>,
    pub enrolled_at: Option<DateTime<Utc>>,
    pub group: Option<String>,
    pub group_id: Option<i64>,
    pub hostname: Option<String>,
    pub id: Option<String>,
    pub ip: Option<String>,
    pub last_seen: Option<DateTime<Utc>>,
    pub licensed: Option<bool>,
    pub online: bool,
    pub os: Option<String>,
    /// A slave's own policy has no name here; a master policy has.
    pub policy: PolicyRef,
    pub realtime_protection: Option<bool>,
    pub signatures_date: Option<NaiveDate>,
    pub signatures_version: Option<String>,
    pub slave: String,
    pub status: Option<String>,
}

impl ReplicaEndpoint {
    fn from_row(r: &Row, offline_after_secs: i64) -> Self {
        let last_seen: Option<DateTime<Utc>> = r.get(14);
        Self {
            slave: r.get(0),
            id: r.get(1),
            hostname: r.get(2),
            ip: r.get(3),
            os: r.get(4),
            group_id: r.get(5),
            group: r.get(6),
            agent_version: r.get(7),
            signatures_version: r.get(8),
            signatures_date: r.get(9),
            realtime_protection: r.get(10),
            active_threats: r.get(11),
            status: r.get(12),
            licensed: r.get(13),
            online: last_seen.is_some_and(|t| (Utc::now() - t).num_seconds() <= offline_after_secs),
            last_seen,
            enrolled_at: r.get(15),
            policy: PolicyRef::of(r.get(16), r.get(17), r.get(18)),
            applied_policy: AppliedPolicy { id: r.get(19), version: r.get(20) },
            detections: None,
        }
    }
}

/// Why a consolidated read failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsolidatedError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("group ids are per slave: give slave together with group")]
    GroupWithoutSlave,
    #[error("no endpoint '{0}' in the replicated data of any slave")]
    NotReplicated(String),
    /// Two slaves use the id: the caller must name the slave.
    #[error("endpoint '{id}' exists on slaves {}: add ?slave=", .slaves.join(", "))]
    Ambiguous { id: String, slaves: Vec<String> },
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Every slave's endpoints matching `filter`, by slave and id.
pub async fn list(
    state: &AppState,
    filter: &EndpointFilter,
    page: Page,
) -> Result<EndpointPage<ReplicaEndpoint>, ConsolidatedError> {
    if filter.group.is_some() && filter.slave.is_none() {
        return Err(ConsolidatedError::GroupWithoutSlave);
    }
    let search = filter.search_pattern();
    let status = filter.status_text();
    let matching = "($1::text IS NULL OR e.slave_id = $1) AND ($2::bigint IS NULL OR e.group_id = $2)
        AND ($3::text IS NULL OR e.status = $3) AND ($4::boolean IS NULL OR e.licensed = $4)
        AND ($5::text IS NULL OR e.hostname ILIKE $5 OR e.ip LIKE $5)";
    let client = state.pool.get().await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&filter.slave, &filter.group, &status, &filter.licensed, &search];
    let total: i64 =
        client.query_one(&format!("SELECT count(*) FROM replica_endpoints e WHERE {matching}"), &params).await?.get(0);
    let mut paged = params.to_vec();
    paged.extend_from_slice(&[&page.limit, &page.offset]);
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM {FROM} WHERE {matching} ORDER BY e.slave_id, e.id LIMIT $6 OFFSET $7"),
            &paged,
        )
        .await?;
    let offline = offline_after(&state.settings);
    Ok(EndpointPage { total, endpoints: rows.iter().map(|r| ReplicaEndpoint::from_row(r, offline)).collect() })
}

/// One page of the members of `slave`'s virtual group `group` in the copy,
/// by id, and how many it holds (the console's tree opens a slave's virtual
/// group a page at a time).
pub async fn virtual_group_members(
    state: &AppState,
    slave: &str,
    group: i64,
    page: Page,
) -> Result<EndpointPage<ReplicaEndpoint>, ConsolidatedError> {
    let client = state.pool.get().await?;
    let members = "replica_virtual_group_members m WHERE m.slave_id = $1 AND m.virtual_group_id = $2";
    let total: i64 = client.query_one(&format!("SELECT count(*) FROM {members}"), &[&slave, &group]).await?.get(0);
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM {FROM} WHERE e.slave_id = $1 AND e.id IN (SELECT m.endpoint_id FROM {members})
                  ORDER BY e.id LIMIT $3 OFFSET $4"
            ),
            &[&slave, &group, &page.limit, &page.offset],
        )
        .await?;
    let offline = offline_after(&state.settings);
    Ok(EndpointPage { total, endpoints: rows.iter().map(|r| ReplicaEndpoint::from_row(r, offline)).collect() })
}

/// One endpoint with its 20 latest detections; `slave` is needed only when
/// two slaves use the same id.
pub async fn show(state: &AppState, id: &str, slave: Option<&str>) -> Result<ReplicaEndpoint, ConsolidatedError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM {FROM} WHERE e.id = $1 AND ($2::text IS NULL OR e.slave_id = $2) ORDER BY e.slave_id"),
            &[&id, &slave],
        )
        .await?;
    let row = match rows.as_slice() {
        [] => return Err(ConsolidatedError::NotReplicated(id.to_owned())),
        [one] => one,
        many => {
            let slaves = many.iter().map(|r| r.get(0)).collect();
            return Err(ConsolidatedError::Ambiguous { id: id.to_owned(), slaves });
        }
    };
    let mut endpoint = ReplicaEndpoint::from_row(row, offline_after(&state.settings));
    let detections = client
        .query(
            "SELECT detection_id, malware, path, action, detected_at, task_id FROM replica_detections
              WHERE slave_id = $1 AND endpoint_id = $2 ORDER BY detected_at DESC LIMIT 20",
            &[&endpoint.slave, &id],
        )
        .await?;
    endpoint.detections = Some(detections.iter().map(DetectionView::from_row).collect());
    Ok(endpoint)
}
