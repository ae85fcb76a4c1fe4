//! Replication routes: where it stands, replicate now, verify.
//!
//! On a slave, `replicate now` wakes the local replicator; on a master it
//! asks every active slave (or one: `POST /api/slaves/{id}/replicate`).
//! Verifications exist only on a master: it asks the slaves and compares.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Extension, Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{error::parse_id, hierarchy::master_only, ApiError, ApiResult, Body};
use crate::{
    hierarchy::slaves,
    operators::Actor,
    replication::{
        changes, replicator,
        requests::{self, RequestError},
        verify::{self, Verification, VerifyError},
    },
    state::SharedState,
};

/// The master's replication routes (under `/api`).
pub(super) fn master_routes() -> Router<SharedState> {
    Router::new()
        .route("/slaves/{id}/replicate", post(replicate_slave))
        .route("/replication", get(show_copies))
        .route("/replication/now", post(ask_slaves))
        .route("/verifications", post(create_verification))
        .route("/verifications/{id}", get(show_verification))
}

/// A site's replication routes (under `/api`).
pub(super) fn site_routes() -> Router<SharedState> {
    Router::new()
        .route("/slaves/{id}/replicate", post(master_only_slaves))
        .route("/replication", get(show_stream))
        .route("/replication/now", post(now))
        .route("/verifications", post(master_only_verifications))
        .route("/verifications/{id}", get(master_only_verifications))
}

async fn master_only_slaves(State(state): State<SharedState>) -> ApiError {
    master_only(&state, "Slaves")
}

async fn master_only_verifications(State(state): State<SharedState>) -> ApiError {
    master_only(&state, "Verifications")
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Database(e) => e.into(),
            RequestError::Pool(e) => e.into(),
            RequestError::UnknownSlave(_) => Self::NotFound(e.to_string()),
            RequestError::InactiveSlave { .. } | RequestError::NotRegistered(_) => Self::Conflict(e.to_string()),
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Database(e) => e.into(),
            VerifyError::Pool(e) => e.into(),
            VerifyError::Unknown(_) => Self::NotFound(e.to_string()),
            VerifyError::NoActiveSlave => Self::Conflict(e.to_string()),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NowBody {
    /// Ship every row again and replace the master's copy (a new epoch).
    full: Option<bool>,
}

/// `GET /api/replication` on a master: its copy of each slave.
async fn show_copies(State(state): State<SharedState>) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    let copies: Vec<Value> = slaves::list(&client)
        .await?
        .into_iter()
        .map(|s| json!({"slave": s.id, "state": s.state, "replication": s.replication}))
        .collect();
    Ok(Json(json!({"role": "master", "interval_seconds": null, "slaves": copies})))
}

/// `GET /api/replication` on a site: its stream to the master, if any.
async fn show_stream(State(state): State<SharedState>) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    let stream = match replicator::stream(&client).await? {
        Some(s) => json!({
            "epoch": s.epoch, "watermark": s.acked.to_string(), "acked_at": s.acked_at,
            "batches_sent": s.sent_batch, "verification_pending": s.verification,
            "rows_behind": changes::backlog(&client, s.acked).await?,
        }),
        None => Value::Null,
    };
    Ok(Json(json!({
        "role": state.role().to_string(),
        "interval_seconds": state.settings.replication_interval,
        "batch_size": state.settings.replication_batch_size,
        "stream": stream,
        // A slave on a broker of its own: the links its batches cross.
        "links": crate::hierarchy::broker_links::report(&state).await,
    })))
}

/// `POST /api/replication/now` on a master: every active slave.
async fn ask_slaves(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<NowBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let full = body.full.unwrap_or(false);
    let active = requests::active_slaves(&state.pool.get().await?, None).await?;
    requests::replicate_now(&state, &actor, &active, full).await?;
    let message = format!("asked {} slave(s) to replicate now", active.len());
    Ok((StatusCode::ACCEPTED, Json(json!({"slaves": active, "full": full, "message": message}))))
}

/// `POST /api/replication/now` on a site.
async fn now(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<NowBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let full = body.full.unwrap_or(false);
    requests::request_now(&state, &actor, full).await?;
    let message = if full { "full replication started (a new epoch)" } else { "replication started" };
    Ok((StatusCode::ACCEPTED, Json(json!({"full": full, "message": message}))))
}

/// `POST /api/slaves/{id}/replicate` on a master.
async fn replicate_slave(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<NowBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let full = body.full.unwrap_or(false);
    let slave = requests::active_slaves(&state.pool.get().await?, Some(&id)).await?;
    requests::replicate_now(&state, &actor, &slave, full).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"slave": id, "full": full, "message": format!("asked slave '{id}' to replicate now")})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// One slave; every active slave when absent.
    slave: Option<String>,
}

/// `POST /api/verifications` on a master: one verification per slave.
async fn create_verification(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<VerifyBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let slaves = requests::active_slaves(&state.pool.get().await?, body.slave.as_deref()).await?;
    let requested = verify::request(&state, &actor, &slaves).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"verifications": requested}))))
}

/// `GET /api/verifications/{id}`.
async fn show_verification(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Verification> {
    let id: Uuid = parse_id(&id, "verification")?;
    Ok(Json(verify::show(&state.pool.get().await?, id).await?))
}
