//! Policies: authoring, assignment, and pushing them to endpoints.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use rampart_shared::messages::PolicySettings;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{error::parse_id, fanout, ApiError, ApiResult, Body};
use crate::{policies, role::Role, state::SharedState};

/// Settings as sent by operators: any subset; the rest keep their value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    realtime_protection: Option<bool>,
    scan_schedule: Option<String>,
    update_interval_minutes: Option<u32>,
}

impl SettingsPatch {
    fn apply(self, mut settings: PolicySettings) -> Result<PolicySettings, ApiError> {
        if let Some(v) = self.realtime_protection {
            settings.realtime_protection = v;
        }
        if let Some(v) = self.scan_schedule {
            validate_schedule(&v)?;
            settings.scan_schedule = v;
        }
        if let Some(v) = self.update_interval_minutes {
            if !(5..=10_080).contains(&v) {
                return Err(ApiError::Invalid("settings.update_interval_minutes must be between 5 and 10080".into()));
            }
            settings.update_interval_minutes = v;
        }
        Ok(settings)
    }
}

/// `off`, `daily HH:MM` or `weekly <mon..sun> HH:MM`.
fn validate_schedule(s: &str) -> Result<(), ApiError> {
    let bad = || {
        ApiError::Invalid(format!(
            "settings.scan_schedule '{s}' must be 'off', 'daily HH:MM' or 'weekly mon..sun HH:MM'"
        ))
    };
    let time_ok = |t: &str| {
        t.split_once(':').is_some_and(|(h, m)| {
            h.len() == 2
                && m.len() == 2
                && h.parse::<u8>().is_ok_and(|h| h < 24)
                && m.parse::<u8>().is_ok_and(|m| m < 60)
        })
    };
    let parts: Vec<&str> = s.split_whitespace().collect();
    match parts.as_slice() {
        ["off"] => Ok(()),
        ["daily", t] if time_ok(t) => Ok(()),
        ["weekly", d, t] if ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].contains(d) && time_ok(t) => Ok(()),
        _ => Err(bad()),
    }
}

const POLICY_SELECT: &str = "SELECT p.id, p.name, p.owner, p.version, p.settings, p.created_at, p.updated_at,
    COALESCE((SELECT json_agg(json_build_object('target', a.target_kind, 'id', NULLIF(a.target_id, '')) ORDER BY a.assigned_at)
                FROM policy_assignments a WHERE a.policy_id = p.id), '[]'::json),
    p.target
    FROM policies p";

fn policy_json(r: &tokio_postgres::Row) -> Value {
    json!({"id": r.get::<_, Uuid>(0), "name": r.get::<_, String>(1), "owner": r.get::<_, String>(2),
           "version": r.get::<_, i32>(3), "settings": r.get::<_, Value>(4),
           "created_at": r.get::<_, chrono::DateTime<chrono::Utc>>(5), "updated_at": r.get::<_, chrono::DateTime<chrono::Utc>>(6),
           "assignments": r.get::<_, Value>(7), "target": r.get::<_, Option<Value>>(8)})
}

pub(super) async fn load<C: deadpool_postgres::GenericClient>(client: &C, id: Uuid) -> Result<Value, ApiError> {
    let row = client
        .query_opt(&format!("{POLICY_SELECT} WHERE p.id = $1"), &[&id])
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no policy {id}")))?;
    Ok(policy_json(&row))
}

fn refuse_master_owned(policy: &Value) -> Result<(), ApiError> {
    if policy["owner"] == "master" {
        return Err(ApiError::ReadOnly(format!(
            "policy {} is owned by the master and is read-only on this server; change it on the master",
            policy["id"].as_str().unwrap_or_default()
        )));
    }
    Ok(())
}

pub async fn list(State(state): State<SharedState>) -> ApiResult<Vec<Value>> {
    let client = state.pool.get().await?;
    let rows = client.query(&format!("{POLICY_SELECT} ORDER BY p.created_at"), &[]).await?;
    Ok(Json(rows.iter().map(policy_json).collect()))
}

pub async fn show(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Value> {
    let id: Uuid = parse_id(&id, "policy")?;
    let client = state.pool.get().await?;
    if state.role() == Role::Master {
        return Ok(Json(fanout::show_policy_with(&client, id).await?));
    }
    let mut policy = load(&client, id).await?;
    let counts = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE applied_policy_id = policy_id AND applied_policy_version = policy_version)
               FROM endpoints WHERE policy_id = $1",
            &[&id],
        )
        .await?;
    policy["endpoints"] = json!({"assigned": counts.get::<_, i64>(0), "applied": counts.get::<_, i64>(1)});
    Ok(Json(policy))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePolicy {
    name: String,
    #[serde(default)]
    settings: SettingsPatch,
    /// On a master: the slaves (and groups inside them) it is for.
    target: Option<Value>,
}

pub async fn create(
    State(state): State<SharedState>,
    Body(body): Body<CreatePolicy>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = body.name.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError::Invalid("name is required".into()));
    }
    let settings = body.settings.apply(PolicySettings::default())?;
    if state.role() == Role::Master {
        return fanout::create_policy(state, name, settings, body.target).await;
    }
    if body.target.is_some() {
        return Err(ApiError::Invalid(
            "target applies to policies created on a master; here, assign the policy with POST /api/policies/{id}/assignments".into(),
        ));
    }
    let id = Uuid::new_v4();
    let client = state.pool.get().await?;
    client
        .execute(
            "INSERT INTO policies (id, name, owner, settings) VALUES ($1, $2, 'local', $3)",
            &[&id, &name, &serde_json::to_value(&settings).expect("settings serialize")],
        )
        .await?;
    tracing::info!(policy_id = %id, name, "Created policy.");
    Ok((StatusCode::CREATED, Json(load(&client, id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditPolicy {
    name: Option<String>,
    #[serde(default)]
    settings: SettingsPatch,
}

pub async fn edit(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Body(body): Body<EditPolicy>,
) -> ApiResult<Value> {
    let id: Uuid = parse_id(&id, "policy")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let current = load(&tx, id).await?;
    refuse_master_owned(&current)?;
    let settings: PolicySettings = serde_json::from_value(current["settings"].clone()).unwrap_or_default();
    let settings = body.settings.apply(settings)?;
    let name = body.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    tx.execute(
        "UPDATE policies SET name = COALESCE($2, name), settings = $3, version = version + 1, updated_at = now() WHERE id = $1",
        &[&id, &name, &serde_json::to_value(&settings).expect("settings serialize")],
    )
    .await?;
    let queued = if state.role() == Role::Master {
        fanout::push_new_version(&tx, &state, id).await?
    } else {
        policies::refresh(&tx, &state.site, None, false).await?
    };
    let policy = load(&tx, id).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    tracing::info!(policy_id = %id, version = %policy["version"], queued, "Edited policy.");
    Ok(Json(policy))
}

pub async fn delete(State(state): State<SharedState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let id: Uuid = parse_id(&id, "policy")?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    refuse_master_owned(&load(&tx, id).await?)?;
    if state.role() == Role::Master {
        crate::hierarchy::fanout::remove_policy(&tx, &state, id).await?;
    }
    tx.execute("DELETE FROM policies WHERE id = $1", &[&id]).await?;
    let queued = policies::refresh(&tx, &state.site, None, false).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    tracing::info!(policy_id = %id, endpoints = queued, "Deleted policy.");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    target: String,
    id: Option<String>,
}

async fn change_assignment(state: SharedState, id: String, a: Assignment, assign: bool) -> ApiResult<Value> {
    let id: Uuid = parse_id(&id, "policy")?;
    if state.role() == Role::Master {
        return Err(ApiError::Conflict(
            "a master assigns policies to slaves through the policy's target, set when it is created".into(),
        ));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    refuse_master_owned(&load(&tx, id).await?)?;
    let target_id = match (a.target.as_str(), a.id) {
        ("all", None) => String::new(),
        ("all", Some(_)) => return Err(ApiError::Invalid("target 'all' takes no id".into())),
        ("group" | "virtual_group" | "endpoint", None) => {
            return Err(ApiError::Invalid(format!("target '{}' needs an id", a.target)))
        }
        ("group", Some(g)) => {
            let gid: i64 = g.parse().map_err(|_| ApiError::Invalid(format!("group id '{g}' is not a number")))?;
            if tx.query_opt("SELECT 1 FROM network_groups WHERE id = $1", &[&gid]).await?.is_none() {
                return Err(ApiError::Invalid(format!("group {gid} does not exist")));
            }
            gid.to_string()
        }
        ("virtual_group", Some(v)) => {
            let vid: i64 =
                v.parse().map_err(|_| ApiError::Invalid(format!("virtual group id '{v}' is not a number")))?;
            if tx.query_opt("SELECT 1 FROM virtual_groups WHERE id = $1", &[&vid]).await?.is_none() {
                return Err(ApiError::Invalid(format!("virtual group {vid} does not exist")));
            }
            vid.to_string()
        }
        ("endpoint", Some(e)) => {
            if tx.query_opt("SELECT 1 FROM endpoints WHERE id = $1", &[&e]).await?.is_none() {
                return Err(ApiError::Invalid(format!("endpoint '{e}' does not exist")));
            }
            e
        }
        (other, _) => {
            return Err(ApiError::Invalid(format!(
                "target '{other}' is not one of all, group, virtual_group, endpoint"
            )))
        }
    };
    if assign {
        tx.execute(
            "INSERT INTO policy_assignments (policy_id, target_kind, target_id) VALUES ($1, $2, $3)
             ON CONFLICT (policy_id, target_kind, target_id) DO UPDATE SET assigned_at = clock_timestamp()",
            &[&id, &a.target, &target_id],
        )
        .await?;
    } else {
        tx.execute(
            "DELETE FROM policy_assignments WHERE policy_id = $1 AND target_kind = $2 AND target_id = $3",
            &[&id, &a.target, &target_id],
        )
        .await?;
    }
    let queued = policies::refresh(&tx, &state.site, None, false).await?;
    let policy = load(&tx, id).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    tracing::info!(policy_id = %id, target = %a.target, target_id, assign, endpoints = queued, "Changed policy assignment.");
    Ok(Json(policy))
}

pub async fn assign(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Body(a): Body<Assignment>,
) -> ApiResult<Value> {
    change_assignment(state, id, a, true).await
}

pub async fn unassign(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Body(a): Body<Assignment>,
) -> ApiResult<Value> {
    change_assignment(state, id, a, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_checked() {
        for ok in ["off", "daily 02:00", "weekly sun 23:59"] {
            assert!(validate_schedule(ok).is_ok(), "{ok}");
        }
        for bad in ["", "daily", "daily 24:00", "weekly xyz 01:00", "hourly"] {
            assert!(validate_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patches_keep_unset_settings() {
        let patch = SettingsPatch { realtime_protection: Some(false), ..Default::default() };
        let s = patch.apply(PolicySettings::default()).unwrap();
        assert!(!s.realtime_protection);
        assert_eq!(s.scan_schedule, PolicySettings::default().scan_schedule);
    }
}
