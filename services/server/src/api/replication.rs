//! Replication routes: where it stands, replicate now, verify.
//!
//! On a slave, `replicate now` wakes the local replicator; on a master it
//! asks every active slave (or one: `POST /api/slaves/{id}/replicate`).
//! Verifications exist only on a master: it asks the slaves and compares.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use rampart_shared::{hierarchy::MasterCommand, replication::ReplicateNow};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{error::parse_id, hierarchy::require_master, ApiError, ApiResult, Body};
use crate::{
    hierarchy::{fanout, slaves},
    replication::{changes, replicator, verify},
    role::Role,
    state::{AppState, SharedState},
};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NowBody {
    /// Ship every row again and replace the master's copy (a new epoch).
    full: Option<bool>,
}

/// `GET /api/replication`: the slave's stream, or the master's copies.
pub async fn show(State(state): State<SharedState>) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    match state.role() {
        Role::Master => {
            let copies: Vec<Value> = slaves::list(&client)
                .await?
                .into_iter()
                .map(|s| json!({"slave": s["id"], "state": s["state"], "replication": s["replication"]}))
                .collect();
            Ok(Json(json!({"role": "master", "interval_seconds": null, "slaves": copies})))
        }
        role => {
            let stream = match replicator::stream(&client).await? {
                Some(s) => json!({
                    "epoch": s.epoch, "watermark": s.acked.to_string(), "acked_at": s.acked_at,
                    "batches_sent": s.sent_batch, "verification_pending": s.verification,
                    "rows_behind": changes::backlog(&client, s.acked).await?,
                }),
                None => Value::Null,
            };
            Ok(Json(json!({
                "role": role.to_string(),
                "interval_seconds": state.settings.replication_interval,
                "batch_size": state.settings.replication_batch_size,
                "stream": stream,
            })))
        }
    }
}

/// `POST /api/replication/now`.
pub async fn now(
    State(state): State<SharedState>,
    Body(body): Body<NowBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let full = body.full.unwrap_or(false);
    match state.role() {
        Role::Master => {
            let mut client = state.pool.get().await?;
            let tx = client.transaction().await?;
            let active = fanout::active_slaves(&tx).await?;
            fanout::send(&tx, &state, &active, &MasterCommand::ReplicateNow(ReplicateNow { full })).await?;
            tx.commit().await?;
            state.outbox_wake.notify_one();
            tracing::info!(slaves = ?active, full, "Asked every slave to replicate now.");
            let message = format!("asked {} slave(s) to replicate now", active.len());
            Ok((StatusCode::ACCEPTED, Json(json!({"slaves": active, "full": full, "message": message}))))
        }
        Role::Slave => {
            let mut client = state.pool.get().await?;
            let tx = client.transaction().await?;
            replicator::request(&tx, None, full).await?;
            tx.commit().await?;
            state.replication_wake.notify_one();
            tracing::info!(full, "Replication requested by the operator.");
            let message = if full { "full replication started (a new epoch)" } else { "replication started" };
            Ok((StatusCode::ACCEPTED, Json(json!({"full": full, "message": message}))))
        }
        Role::Standalone => Err(ApiError::Conflict(format!(
            "this server ('{}') is a stand-alone: it replicates only once registered to a master",
            state.site.instance
        ))),
    }
}

/// `POST /api/slaves/{id}/replicate` on a master.
pub async fn replicate_slave(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Body(body): Body<NowBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_master(&state, "Slaves")?;
    let full = body.full.unwrap_or(false);
    let slave = active_slaves(&state, Some(&id)).await?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    fanout::send(&tx, &state, &slave, &MasterCommand::ReplicateNow(ReplicateNow { full })).await?;
    tx.commit().await?;
    state.outbox_wake.notify_one();
    tracing::info!(slave_id = %id, full, "Asked a slave to replicate now.");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"slave": id, "full": full, "message": format!("asked slave '{id}' to replicate now")})),
    ))
}

/// The active slaves: all, or the one named (which must be active).
async fn active_slaves(state: &AppState, only: Option<&str>) -> Result<Vec<String>, ApiError> {
    let client = state.pool.get().await?;
    if let Some(id) = only {
        let row = client.query_opt("SELECT state FROM slaves WHERE id = $1", &[&id]).await?;
        return match row.map(|r| r.get::<_, String>(0)) {
            None => Err(ApiError::NotFound(format!("no slave '{id}'"))),
            Some(s) if s == "active" => Ok(vec![id.to_owned()]),
            Some(s) => Err(ApiError::Conflict(format!("slave '{id}' is {s}: only an active slave replicates"))),
        };
    }
    Ok(fanout::active_slaves(&client).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// One slave; every active slave when absent.
    slave: Option<String>,
}

/// `POST /api/verifications` on a master: one verification per slave.
pub async fn create_verification(
    State(state): State<SharedState>,
    Body(body): Body<VerifyBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_master(&state, "Verifications")?;
    let slaves = active_slaves(&state, body.slave.as_deref()).await?;
    if slaves.is_empty() {
        return Err(ApiError::Conflict("this master has no active slave to verify".into()));
    }
    let requested = verify::request(&state, &slaves).await?;
    let list: Vec<Value> =
        requested.iter().map(|(slave, id)| json!({"id": id, "slave": slave, "state": "pending"})).collect();
    Ok((StatusCode::ACCEPTED, Json(json!({"verifications": list}))))
}

/// `GET /api/verifications/{id}`.
pub async fn show_verification(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Value> {
    require_master(&state, "Verifications")?;
    let id: Uuid = parse_id(&id, "verification")?;
    Ok(Json(verify::show(&state.pool.get().await?, id).await?))
}
