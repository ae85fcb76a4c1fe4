//! Endpoints, network groups (network builder), virtual groups, and the tree.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_postgres::Row;

use super::{consolidated, error::parse_id, ApiError, ApiResult, Body, Params};
use crate::{policies, role::Role, state::SharedState};

/// Columns read by [`endpoint_json`], with `e` = endpoints and `g` = its group.
pub const ENDPOINT_COLUMNS: &str = "e.id, e.hostname, host(e.ip), e.os, e.group_id, g.name, e.agent_version,
    e.signatures_version, e.signatures_date, e.realtime_protection, e.active_threats, e.status, e.licensed,
    e.last_seen, e.enrolled_at, e.policy_id, p.name, e.policy_version, e.applied_policy_id, e.applied_policy_version";
pub const ENDPOINT_FROM: &str =
    "endpoints e JOIN network_groups g ON g.id = e.group_id LEFT JOIN policies p ON p.id = e.policy_id";

pub fn endpoint_json(row: &Row, offline_after_secs: i64) -> Value {
    let last_seen: chrono::DateTime<chrono::Utc> = row.get(13);
    let policy_id: Option<uuid::Uuid> = row.get(15);
    let applied_id: Option<uuid::Uuid> = row.get(18);
    let applied_version: Option<i32> = row.get(19);
    json!({
        "id": row.get::<_, String>(0), "hostname": row.get::<_, String>(1), "ip": row.get::<_, String>(2),
        "os": row.get::<_, String>(3), "group_id": row.get::<_, i64>(4), "group": row.get::<_, String>(5),
        "agent_version": row.get::<_, String>(6), "signatures_version": row.get::<_, String>(7),
        "signatures_date": row.get::<_, chrono::NaiveDate>(8), "realtime_protection": row.get::<_, bool>(9),
        "active_threats": row.get::<_, i32>(10), "status": row.get::<_, String>(11), "licensed": row.get::<_, bool>(12),
        "online": (chrono::Utc::now() - last_seen).num_seconds() <= offline_after_secs,
        "last_seen": last_seen, "enrolled_at": row.get::<_, chrono::DateTime<chrono::Utc>>(14),
        "policy": match policy_id {
            Some(id) => json!({"id": id, "name": row.get::<_, Option<String>>(16), "version": row.get::<_, Option<i32>>(17)}),
            None => json!({"id": null, "name": policies::DEFAULT_POLICY_NAME, "version": 0}),
        },
        "applied_policy": if applied_id.is_some() || applied_version.is_some() {
            json!({"id": applied_id, "version": applied_version})
        } else { Value::Null },
    })
}

/// Seconds of silence after which an endpoint counts as offline.
pub fn offline_after(state: &SharedState) -> i64 {
    3 * state.settings.heartbeat_seconds as i64
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointFilter {
    /// On a master: only this slave's endpoints.
    slave: Option<String>,
    group: Option<i64>,
    status: Option<String>,
    licensed: Option<bool>,
    search: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

pub async fn list_endpoints(State(state): State<SharedState>, Params(f): Params<EndpointFilter>) -> ApiResult<Value> {
    if let Some(s) = &f.status {
        if crate::security::SecurityStatus::parse(s).is_none() {
            return Err(ApiError::Invalid(format!(
                "status '{s}' is not one of protected, at_risk, infected, unprotected"
            )));
        }
    }
    let limit = f.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::Invalid("limit must be between 1 and 10000".into()));
    }
    if f.offset.is_some_and(|o| o < 0) {
        return Err(ApiError::Invalid("offset must be 0 or more".into()));
    }
    if state.role() == Role::Master {
        let filter = consolidated::Filter {
            slave: f.slave,
            group: f.group,
            status: f.status,
            licensed: f.licensed,
            search: f.search,
            limit,
            offset: f.offset.unwrap_or(0),
        };
        return Ok(Json(consolidated::endpoints(&state, filter, offline_after(&state)).await?));
    }
    if f.slave.is_some() {
        return Err(ApiError::Invalid(format!(
            "slave filters exist only on a master; this server is a {}",
            state.role()
        )));
    }
    let search = f.search.map(|s| format!("%{}%", s.replace('%', "\\%").replace('_', "\\_")));
    let filter = "($1::bigint IS NULL OR e.group_id = $1) AND ($2::text IS NULL OR e.status = $2)
        AND ($3::boolean IS NULL OR e.licensed = $3) AND ($4::text IS NULL OR e.hostname ILIKE $4 OR host(e.ip) LIKE $4)";
    let client = state.pool.get().await?;
    let total: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM endpoints e WHERE {filter}"),
            &[&f.group, &f.status, &f.licensed, &search],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!("SELECT {ENDPOINT_COLUMNS} FROM {ENDPOINT_FROM} WHERE {filter} ORDER BY e.id LIMIT $5 OFFSET $6"),
            &[&f.group, &f.status, &f.licensed, &search, &limit, &f.offset.unwrap_or(0)],
        )
        .await?;
    let offline = offline_after(&state);
    Ok(Json(json!({ "total": total, "endpoints": rows.iter().map(|r| endpoint_json(r, offline)).collect::<Vec<_>>() })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EndpointQuery {
    /// On a master, when two slaves use the same endpoint id.
    slave: Option<String>,
}

pub async fn show_endpoint(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Params(q): Params<EndpointQuery>,
) -> ApiResult<Value> {
    if state.role() == Role::Master {
        return Ok(Json(consolidated::endpoint(&state, &id, q.slave.as_deref(), offline_after(&state)).await?));
    }
    let client = state.pool.get().await?;
    let row = client
        .query_opt(&format!("SELECT {ENDPOINT_COLUMNS} FROM {ENDPOINT_FROM} WHERE e.id = $1"), &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no endpoint '{id}'")))?;
    let mut endpoint = endpoint_json(&row, offline_after(&state));
    let detections = client
        .query(
            "SELECT detection_id, malware, path, action, detected_at, task_id FROM detections
              WHERE endpoint_id = $1 ORDER BY detected_at DESC LIMIT 20",
            &[&id],
        )
        .await?;
    endpoint["detections"] = detections
        .iter()
        .map(|d| json!({"detection_id": d.get::<_, uuid::Uuid>(0), "malware": d.get::<_, String>(1), "path": d.get::<_, String>(2),
                         "action": d.get::<_, String>(3), "detected_at": d.get::<_, chrono::DateTime<chrono::Utc>>(4),
                         "task_id": d.get::<_, Option<uuid::Uuid>>(5)}))
        .collect();
    Ok(Json(endpoint))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveEndpoint {
    group_id: i64,
}

pub async fn move_endpoint(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Body(body): Body<MoveEndpoint>,
) -> ApiResult<Value> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if tx.query_opt("SELECT 1 FROM network_groups WHERE id = $1", &[&body.group_id]).await?.is_none() {
        return Err(ApiError::Invalid(format!("group_id {} does not exist", body.group_id)));
    }
    let moved = tx.execute("UPDATE endpoints SET group_id = $2 WHERE id = $1", &[&id, &body.group_id]).await?;
    if moved == 0 {
        return Err(ApiError::NotFound(format!("no endpoint '{id}'")));
    }
    let queued = policies::refresh(&tx, &state.site, Some(std::slice::from_ref(&id)), false).await?;
    tx.commit().await?;
    if queued > 0 {
        state.outbox_wake.notify_one();
    }
    drop(client);
    show_endpoint(State(state), Path(id), Params(EndpointQuery::default())).await
}

fn group_json(r: &Row) -> Value {
    json!({"id": r.get::<_, i64>(0), "name": r.get::<_, String>(1), "parent_id": r.get::<_, Option<i64>>(2),
           "subnet": r.get::<_, Option<String>>(3), "endpoint_count": r.get::<_, i64>(4)})
}

const GROUP_SELECT: &str = "SELECT g.id, g.name, g.parent_id, g.subnet::text,
    (SELECT count(*) FROM endpoints e WHERE e.group_id = g.id) FROM network_groups g";

pub async fn list_groups(State(state): State<SharedState>) -> ApiResult<Vec<Value>> {
    let client = state.pool.get().await?;
    let rows = client.query(&format!("{GROUP_SELECT} ORDER BY g.id"), &[]).await?;
    Ok(Json(rows.iter().map(group_json).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    name: Option<String>,
    parent_id: Option<i64>,
    subnet: Option<String>,
}

fn check_subnet(subnet: &Option<String>) -> Result<(), ApiError> {
    if let Some(s) = subnet {
        let (addr, bits) = s
            .split_once('/')
            .ok_or_else(|| ApiError::Invalid(format!("subnet '{s}' must be in CIDR form, e.g. 10.1.0.0/16")))?;
        let ip: std::net::IpAddr =
            addr.parse().map_err(|_| ApiError::Invalid(format!("subnet '{s}': '{addr}' is not an IP address")))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match bits.parse::<u8>() {
            Ok(b) if b <= max => {}
            _ => return Err(ApiError::Invalid(format!("subnet '{s}': prefix length must be 0..{max}"))),
        }
    }
    Ok(())
}

async fn one_group(client: &deadpool_postgres::Client, id: i64) -> Result<Value, ApiError> {
    let row = client
        .query_opt(&format!("{GROUP_SELECT} WHERE g.id = $1"), &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no group {id}")))?;
    Ok(group_json(&row))
}

fn map_cidr_error(e: tokio_postgres::Error) -> ApiError {
    if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_TEXT_REPRESENTATION)
        || e.code() == Some(&tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE)
    {
        return ApiError::Invalid(format!(
            "subnet is not valid: {}",
            e.as_db_error().map(|d| d.message()).unwrap_or("")
        ));
    }
    e.into()
}

pub async fn create_group(
    State(state): State<SharedState>,
    Body(body): Body<GroupBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::Invalid("name is required".into()))?;
    check_subnet(&body.subnet)?;
    let parent = body.parent_id.unwrap_or(1);
    let client = state.pool.get().await?;
    if client.query_opt("SELECT 1 FROM network_groups WHERE id = $1", &[&parent]).await?.is_none() {
        return Err(ApiError::Invalid(format!("parent_id {parent} does not exist")));
    }
    let id: i64 = client
        .query_one(
            "INSERT INTO network_groups (name, parent_id, subnet) VALUES ($1, $2, $3::text::cidr) RETURNING id",
            &[&name, &parent, &body.subnet],
        )
        .await
        .map_err(map_cidr_error)?
        .get(0);
    tracing::info!(group_id = id, name, "Created network group.");
    Ok((StatusCode::CREATED, Json(one_group(&client, id).await?)))
}

pub async fn edit_group(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Body(body): Body<GroupBody>,
) -> ApiResult<Value> {
    let id: i64 = parse_id(&id, "group")?;
    check_subnet(&body.subnet)?;
    if body.parent_id.is_some() {
        return Err(ApiError::Invalid("parent_id cannot be changed; create a new group and move endpoints".into()));
    }
    let client = state.pool.get().await?;
    let n = client
        .execute(
            "UPDATE network_groups SET name = COALESCE($2, name), subnet = COALESCE($3::text::cidr, subnet) WHERE id = $1",
            &[&id, &body.name, &body.subnet],
        )
        .await
        .map_err(map_cidr_error)?;
    if n == 0 {
        return Err(ApiError::NotFound(format!("no group {id}")));
    }
    Ok(Json(one_group(&client, id).await?))
}

pub async fn delete_group(State(state): State<SharedState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id: i64 = parse_id(&id, "group")?;
    if id == 1 {
        return Err(ApiError::Conflict("the Default group cannot be deleted".into()));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    policies::lock_fleet(&tx).await?;
    let parent: i64 = tx
        .query_opt("SELECT COALESCE(parent_id, 1) FROM network_groups WHERE id = $1", &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no group {id}")))?
        .get(0);
    let moved: Vec<String> = tx
        .query("UPDATE endpoints SET group_id = $2 WHERE group_id = $1 RETURNING id", &[&id, &parent])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.execute("UPDATE network_groups SET parent_id = $2 WHERE parent_id = $1", &[&id, &parent]).await?;
    tx.execute("DELETE FROM policy_assignments WHERE target_kind = 'group' AND target_id = $1", &[&id.to_string()])
        .await?;
    tx.execute("DELETE FROM network_groups WHERE id = $1", &[&id]).await?;
    let queued = policies::refresh(&tx, &state.site, Some(&moved), false).await?;
    tx.commit().await?;
    if queued > 0 {
        state.outbox_wake.notify_one();
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_virtual_groups(State(state): State<SharedState>) -> ApiResult<Vec<Value>> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT v.id, v.name, v.description, (SELECT count(*) FROM virtual_group_members m WHERE m.virtual_group_id = v.id)
               FROM virtual_groups v ORDER BY v.id",
            &[],
        )
        .await?;
    Ok(Json(
        rows.iter()
            .map(|r| {
                json!({"id": r.get::<_, i64>(0), "name": r.get::<_, String>(1),
        "description": r.get::<_, String>(2), "member_count": r.get::<_, i64>(3)})
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualGroupBody {
    name: String,
    #[serde(default)]
    description: String,
}

pub async fn create_virtual_group(
    State(state): State<SharedState>,
    Body(body): Body<VirtualGroupBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::Invalid("name is required".into()));
    }
    let client = state.pool.get().await?;
    let id: i64 = client
        .query_one(
            "INSERT INTO virtual_groups (name, description) VALUES ($1, $2) RETURNING id",
            &[&name, &body.description],
        )
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => ApiError::Conflict(format!("a virtual group named '{name}' already exists")),
            other => other,
        })?
        .get(0);
    Ok((StatusCode::CREATED, Json(json!({"id": id, "name": name, "description": body.description, "member_count": 0}))))
}

pub async fn delete_virtual_group(
    State(state): State<SharedState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = parse_id(&id, "virtual group")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let members: Vec<String> = tx
        .query("SELECT endpoint_id FROM virtual_group_members WHERE virtual_group_id = $1", &[&id])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.execute(
        "DELETE FROM policy_assignments WHERE target_kind = 'virtual_group' AND target_id = $1",
        &[&id.to_string()],
    )
    .await?;
    if tx.execute("DELETE FROM virtual_groups WHERE id = $1", &[&id]).await? == 0 {
        return Err(ApiError::NotFound(format!("no virtual group {id}")));
    }
    let queued = policies::refresh(&tx, &state.site, Some(&members), false).await?;
    tx.commit().await?;
    if queued > 0 {
        state.outbox_wake.notify_one();
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn virtual_group_members(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Value> {
    let id: i64 = parse_id(&id, "virtual group")?;
    let client = state.pool.get().await?;
    if client.query_opt("SELECT 1 FROM virtual_groups WHERE id = $1", &[&id]).await?.is_none() {
        return Err(ApiError::NotFound(format!("no virtual group {id}")));
    }
    let rows = client
        .query(
            &format!(
                "SELECT {ENDPOINT_COLUMNS} FROM {ENDPOINT_FROM} JOIN virtual_group_members m ON m.endpoint_id = e.id
                       WHERE m.virtual_group_id = $1 ORDER BY e.id"
            ),
            &[&id],
        )
        .await?;
    let offline = offline_after(&state);
    Ok(Json(json!({"endpoints": rows.iter().map(|r| endpoint_json(r, offline)).collect::<Vec<_>>()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Members {
    endpoints: Vec<String>,
}

async fn change_members(state: SharedState, id: String, members: Vec<String>, add: bool) -> ApiResult<Value> {
    let id: i64 = parse_id(&id, "virtual group")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if tx.query_opt("SELECT 1 FROM virtual_groups WHERE id = $1", &[&id]).await?.is_none() {
        return Err(ApiError::NotFound(format!("no virtual group {id}")));
    }
    let known: Vec<String> =
        tx.query("SELECT id FROM endpoints WHERE id = ANY($1)", &[&members]).await?.iter().map(|r| r.get(0)).collect();
    let unknown: Vec<&String> = members.iter().filter(|m| !known.contains(m)).collect();
    if !unknown.is_empty() {
        return Err(ApiError::Invalid(format!(
            "unknown endpoints: {}",
            unknown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let changed = if add {
        tx.execute(
            "INSERT INTO virtual_group_members (virtual_group_id, endpoint_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
            &[&id, &members],
        )
        .await?
    } else {
        tx.execute(
            "DELETE FROM virtual_group_members WHERE virtual_group_id = $1 AND endpoint_id = ANY($2)",
            &[&id, &members],
        )
        .await?
    };
    let queued = policies::refresh(&tx, &state.site, Some(&members), false).await?;
    tx.commit().await?;
    if queued > 0 {
        state.outbox_wake.notify_one();
    }
    Ok(Json(if add { json!({"added": changed}) } else { json!({"removed": changed}) }))
}

pub async fn add_members(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Body(b): Body<Members>,
) -> ApiResult<Value> {
    change_members(state, id, b.endpoints, true).await
}

pub async fn remove_members(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Body(b): Body<Members>,
) -> ApiResult<Value> {
    change_members(state, id, b.endpoints, false).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeQuery {
    view: Option<String>,
}

pub async fn tree(State(state): State<SharedState>, Params(q): Params<TreeQuery>) -> ApiResult<Value> {
    let view = q.view.unwrap_or_else(|| "network".into());
    if state.role() == Role::Master {
        if view != "network" && view != "virtual" {
            return Err(ApiError::Invalid(format!("view '{view}' is not one of network, virtual")));
        }
        return Ok(Json(consolidated::tree(&state, &view).await?));
    }
    let client = state.pool.get().await?;
    let leaf = |r: &Row| json!({"id": r.get::<_, String>(1), "hostname": r.get::<_, String>(2), "status": r.get::<_, String>(3)});
    let children: Vec<Value> = match view.as_str() {
        "network" => {
            let groups = client.query("SELECT id, name, parent_id FROM network_groups ORDER BY id", &[]).await?;
            let members = client.query("SELECT group_id, id, hostname, status FROM endpoints ORDER BY id", &[]).await?;
            fn build(id: i64, groups: &[Row], members: &[Row], leaf: &dyn Fn(&Row) -> Value) -> Value {
                let name: String =
                    groups.iter().find(|g| g.get::<_, i64>(0) == id).map(|g| g.get(1)).unwrap_or_default();
                let children: Vec<Value> = groups
                    .iter()
                    .filter(|g| g.get::<_, Option<i64>>(2) == Some(id))
                    .map(|g| build(g.get(0), groups, members, leaf))
                    .collect();
                let endpoints: Vec<Value> = members.iter().filter(|m| m.get::<_, i64>(0) == id).map(leaf).collect();
                json!({"kind": "group", "id": id, "name": name, "children": children, "endpoints": endpoints})
            }
            groups
                .iter()
                .filter(|g| g.get::<_, Option<i64>>(2).is_none())
                .map(|g| build(g.get(0), &groups, &members, &leaf))
                .collect()
        }
        "virtual" => {
            let groups = client.query("SELECT id, name FROM virtual_groups ORDER BY id", &[]).await?;
            let members = client
                .query(
                    "SELECT m.virtual_group_id, e.id, e.hostname, e.status FROM virtual_group_members m
                       JOIN endpoints e ON e.id = m.endpoint_id ORDER BY e.id",
                    &[],
                )
                .await?;
            groups
                .iter()
                .map(|g| {
                    let id: i64 = g.get(0);
                    let endpoints: Vec<Value> = members.iter().filter(|m| m.get::<_, i64>(0) == id).map(leaf).collect();
                    json!({"kind": "virtual_group", "id": id, "name": g.get::<_, String>(1), "children": [], "endpoints": endpoints})
                })
                .collect()
        }
        other => return Err(ApiError::Invalid(format!("view '{other}' is not one of network, virtual"))),
    };
    Ok(Json(
        json!({"view": view, "root": {"kind": "site", "name": state.site.instance, "children": children, "endpoints": []}}),
    ))
}
