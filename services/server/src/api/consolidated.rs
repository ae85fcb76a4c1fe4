//! A master's consolidated view, from its copy of every slave's data
//! (`replica_*` views): the endpoint list with a slave column, one endpoint,
//! and the trees master -> slaves -> groups -> computers.
//!
//! Group and endpoint ids are a slave's own, so they are shown (and
//! filtered) together with the slave they belong to.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio_postgres::Row;

use super::ApiError;
use crate::{policies, state::AppState};

/// Columns read by [`endpoint_json`], `e` = replica_endpoints.
const COLUMNS: &str =
    "e.slave_id, e.id, e.hostname, e.ip, e.os, e.group_id, g.name, e.agent_version, e.signatures_version,
    e.signatures_date, e.realtime_protection, e.active_threats, e.status, e.licensed, e.last_seen, e.enrolled_at,
    e.policy_id, p.name, e.policy_version, e.applied_policy_id, e.applied_policy_version";
const FROM: &str = "replica_endpoints e
    LEFT JOIN replica_network_groups g ON g.slave_id = e.slave_id AND g.id = e.group_id
    LEFT JOIN policies p ON p.id = e.policy_id";

fn endpoint_json(r: &Row, offline_after_secs: i64) -> Value {
    let last_seen: Option<DateTime<Utc>> = r.get(14);
    let policy_id: Option<uuid::Uuid> = r.get(16);
    json!({
        "slave": r.get::<_, String>(0), "id": r.get::<_, Option<String>>(1), "hostname": r.get::<_, Option<String>>(2),
        "ip": r.get::<_, Option<String>>(3), "os": r.get::<_, Option<String>>(4), "group_id": r.get::<_, Option<i64>>(5),
        "group": r.get::<_, Option<String>>(6), "agent_version": r.get::<_, Option<String>>(7),
        "signatures_version": r.get::<_, Option<String>>(8), "signatures_date": r.get::<_, Option<chrono::NaiveDate>>(9),
        "realtime_protection": r.get::<_, Option<bool>>(10), "active_threats": r.get::<_, Option<i32>>(11),
        "status": r.get::<_, Option<String>>(12), "licensed": r.get::<_, Option<bool>>(13),
        "online": last_seen.is_some_and(|t| (Utc::now() - t).num_seconds() <= offline_after_secs),
        "last_seen": last_seen, "enrolled_at": r.get::<_, Option<DateTime<Utc>>>(15),
        "policy": match policy_id {
            // A slave's own policy has no name here; a master policy has.
            Some(id) => json!({"id": id, "name": r.get::<_, Option<String>>(17), "version": r.get::<_, Option<i32>>(18)}),
            None => json!({"id": null, "name": policies::DEFAULT_POLICY_NAME, "version": 0}),
        },
        "applied_policy": json!({"id": r.get::<_, Option<uuid::Uuid>>(19), "version": r.get::<_, Option<i32>>(20)}),
    })
}

/// Filters of the consolidated endpoint list.
pub struct Filter {
    pub slave: Option<String>,
    pub group: Option<i64>,
    pub status: Option<String>,
    pub licensed: Option<bool>,
    pub search: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

pub async fn endpoints(state: &AppState, f: Filter, offline_after_secs: i64) -> Result<Value, ApiError> {
    if f.group.is_some() && f.slave.is_none() {
        return Err(ApiError::Invalid("group ids are per slave: give slave together with group".into()));
    }
    let search = f.search.map(|s| format!("%{}%", s.replace('%', "\\%").replace('_', "\\_")));
    let filter = "($1::text IS NULL OR e.slave_id = $1) AND ($2::bigint IS NULL OR e.group_id = $2)
        AND ($3::text IS NULL OR e.status = $3) AND ($4::boolean IS NULL OR e.licensed = $4)
        AND ($5::text IS NULL OR e.hostname ILIKE $5 OR e.ip LIKE $5)";
    let client = state.pool.get().await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [&f.slave, &f.group, &f.status, &f.licensed, &search];
    let total: i64 =
        client.query_one(&format!("SELECT count(*) FROM replica_endpoints e WHERE {filter}"), &params).await?.get(0);
    let mut paged = params.to_vec();
    paged.extend_from_slice(&[&f.limit, &f.offset]);
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM {FROM} WHERE {filter} ORDER BY e.slave_id, e.id LIMIT $6 OFFSET $7"),
            &paged,
        )
        .await?;
    let list: Vec<Value> = rows.iter().map(|r| endpoint_json(r, offline_after_secs)).collect();
    Ok(json!({"total": total, "endpoints": list}))
}

/// One endpoint; `slave` is needed only when two slaves use the same id.
pub async fn endpoint(
    state: &AppState,
    id: &str,
    slave: Option<&str>,
    offline_after_secs: i64,
) -> Result<Value, ApiError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM {FROM} WHERE e.id = $1 AND ($2::text IS NULL OR e.slave_id = $2) ORDER BY e.slave_id"),
            &[&id, &slave],
        )
        .await?;
    let row = match rows.as_slice() {
        [] => return Err(ApiError::NotFound(format!("no endpoint '{id}' in the replicated data of any slave"))),
        [one] => one,
        many => {
            let slaves: Vec<String> = many.iter().map(|r| r.get(0)).collect();
            return Err(ApiError::Conflict(format!(
                "endpoint '{id}' exists on slaves {}: add ?slave=",
                slaves.join(", ")
            )));
        }
    };
    let mut endpoint = endpoint_json(row, offline_after_secs);
    let detections = client
        .query(
            "SELECT detection_id, malware, path, action, detected_at, task_id FROM replica_detections
              WHERE slave_id = $1 AND endpoint_id = $2 ORDER BY detected_at DESC LIMIT 20",
            &[&endpoint["slave"].as_str(), &id],
        )
        .await?;
    endpoint["detections"] = detections
        .iter()
        .map(|d| json!({"detection_id": d.get::<_, Option<uuid::Uuid>>(0), "malware": d.get::<_, Option<String>>(1),
                         "path": d.get::<_, Option<String>>(2), "action": d.get::<_, Option<String>>(3),
                         "detected_at": d.get::<_, Option<DateTime<Utc>>>(4), "task_id": d.get::<_, Option<uuid::Uuid>>(5)}))
        .collect();
    Ok(endpoint)
}

/// An endpoint leaf of a tree.
fn leaf(hostname: Option<String>, id: Option<String>, status: Option<String>) -> Value {
    json!({"id": id, "hostname": hostname, "status": status})
}

/// The master's tree: master -> slaves -> network groups (nested) ->
/// computers, or master -> slaves -> virtual groups -> computers.
pub async fn tree(state: &AppState, view: &str) -> Result<Value, ApiError> {
    let client = state.pool.get().await?;
    let slaves = client
        .query(
            "SELECT id, state, synced_as_of FROM slaves WHERE state <> 'removed' OR EXISTS
                  (SELECT 1 FROM replica_rows r WHERE r.slave_id = slaves.id) ORDER BY id",
            &[],
        )
        .await?;
    let mut children = Vec::new();
    for s in &slaves {
        let slave: String = s.get(0);
        let groups = match view {
            "network" => network_groups(&client, &slave).await?,
            _ => virtual_groups(&client, &slave).await?,
        };
        children.push(json!({"kind": "slave", "name": slave, "state": s.get::<_, String>(1),
                             "synced_as_of": s.get::<_, Option<DateTime<Utc>>>(2), "children": groups}));
    }
    Ok(json!({"view": view, "root": {"kind": "master", "name": state.site.instance, "children": children}}))
}

async fn network_groups(client: &deadpool_postgres::Client, slave: &str) -> Result<Vec<Value>, ApiError> {
    let groups = client
        .query("SELECT id, name, parent_id FROM replica_network_groups WHERE slave_id = $1 ORDER BY id", &[&slave])
        .await?;
    let members = client
        .query(
            "SELECT group_id, hostname, id, status FROM replica_endpoints WHERE slave_id = $1 ORDER BY id",
            &[&slave],
        )
        .await?;
    let mut by_group: BTreeMap<Option<i64>, Vec<Value>> = BTreeMap::new();
    for m in &members {
        by_group.entry(m.get(0)).or_default().push(leaf(m.get(1), m.get(2), m.get(3)));
    }
    let mut children_of: BTreeMap<Option<i64>, Vec<(i64, String)>> = BTreeMap::new();
    for g in &groups {
        children_of.entry(g.get(2)).or_default().push((g.get(0), g.get(1)));
    }
    fn build(
        id: i64,
        name: &str,
        children_of: &BTreeMap<Option<i64>, Vec<(i64, String)>>,
        by_group: &mut BTreeMap<Option<i64>, Vec<Value>>,
    ) -> Value {
        let children: Vec<Value> = children_of
            .get(&Some(id))
            .map(|c| c.iter().map(|(cid, cname)| build(*cid, cname, children_of, by_group)).collect())
            .unwrap_or_default();
        let endpoints = by_group.remove(&Some(id)).unwrap_or_default();
        json!({"kind": "group", "id": id, "name": name, "children": children, "endpoints": endpoints})
    }
    let roots = children_of.get(&None).cloned().unwrap_or_default();
    Ok(roots.iter().map(|(id, name)| build(*id, name, &children_of, &mut by_group)).collect())
}

async fn virtual_groups(client: &deadpool_postgres::Client, slave: &str) -> Result<Vec<Value>, ApiError> {
    let groups =
        client.query("SELECT id, name FROM replica_virtual_groups WHERE slave_id = $1 ORDER BY id", &[&slave]).await?;
    let members = client
        .query(
            "SELECT m.virtual_group_id, e.hostname, e.id, e.status FROM replica_virtual_group_members m
               JOIN replica_endpoints e ON e.slave_id = m.slave_id AND e.id = m.endpoint_id
              WHERE m.slave_id = $1 ORDER BY e.id",
            &[&slave],
        )
        .await?;
    let mut by_group: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
    for m in &members {
        by_group.entry(m.get(0)).or_default().push(leaf(m.get(1), m.get(2), m.get(3)));
    }
    Ok(groups
        .iter()
        .map(|g| {
            let id: i64 = g.get(0);
            json!({"kind": "virtual_group", "id": id, "name": g.get::<_, String>(1), "children": [],
                   "endpoints": by_group.remove(&id).unwrap_or_default()})
        })
        .collect())
}
