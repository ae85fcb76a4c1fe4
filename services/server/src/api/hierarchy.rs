//! Hierarchy routes: registration tokens and slaves (master), registering
//! and unregistering (stand-alone / slave), and the registration call one
//! server makes to another.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use rampart_shared::hierarchy::{RegisterRequest, RegisterResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiResult, Body, Params};
use crate::{
    hierarchy::{link, slaves, tokens},
    role::Role,
    state::{AppState, SharedState},
};

/// Refuses master-only routes elsewhere, naming what was asked.
pub(super) fn require_master(state: &AppState, what: &str) -> Result<(), ApiError> {
    match state.role() {
        Role::Master => Ok(()),
        role => Err(ApiError::FeatureUnavailable(format!("{what} exist only on a master; this server is a {role}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    expires_in_seconds: Option<u64>,
}

pub async fn create_token(
    State(state): State<SharedState>,
    Body(body): Body<CreateToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    require_master(&state, "Registration tokens")?;
    let lifetime = body.expires_in_seconds.unwrap_or(tokens::DEFAULT_LIFETIME_SECONDS);
    if !(1..=tokens::MAX_LIFETIME_SECONDS).contains(&lifetime) {
        return Err(ApiError::Invalid(format!(
            "expires_in_seconds must be between 1 and {} (30 days)",
            tokens::MAX_LIFETIME_SECONDS
        )));
    }
    let issued = tokens::create(&state.pool.get().await?, lifetime).await?;
    tracing::info!(token_id = %issued.id, expires_at = %issued.expires_at, "Created a registration token.");
    Ok((StatusCode::CREATED, Json(json!({"id": issued.id, "token": issued.token, "expires_at": issued.expires_at}))))
}

pub async fn list_tokens(State(state): State<SharedState>) -> ApiResult<Vec<Value>> {
    require_master(&state, "Registration tokens")?;
    Ok(Json(tokens::list(&state.pool.get().await?).await?))
}

/// Called by a stand-alone on this master; the token in the body is the credential.
pub async fn accept_registration(
    State(state): State<SharedState>,
    Body(body): Body<RegisterRequest>,
) -> ApiResult<RegisterResponse> {
    let slave_id = body.slave_id.clone();
    match slaves::register(&state, body).await {
        Ok(answer) => Ok(Json(answer)),
        Err(e) => {
            tracing::warn!(slave_id, error = %e, "Refused a registration.");
            Err(e)
        }
    }
}

pub async fn list_slaves(State(state): State<SharedState>) -> ApiResult<Vec<Value>> {
    require_master(&state, "Slaves")?;
    Ok(Json(slaves::list(&state.pool.get().await?).await?))
}

pub async fn show_slave(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Value> {
    require_master(&state, "Slaves")?;
    Ok(Json(slaves::show(&state.pool.get().await?, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Also delete the slave's replicated data.
    purge: Option<bool>,
}

pub async fn remove_slave(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Params(q): Params<RemoveQuery>,
) -> ApiResult<Value> {
    require_master(&state, "Slaves")?;
    Ok(Json(slaves::remove(&state, &id, q.purge.unwrap_or(false)).await?))
}

fn link_json(state: &AppState) -> Value {
    match state.keyring.link() {
        Some(l) => json!({"id": l.master_id, "address": l.address, "registered_at": l.registered_at}),
        None => Value::Null,
    }
}

pub async fn show(State(state): State<SharedState>) -> Json<Value> {
    Json(json!({"role": state.role(), "master": link_json(&state)}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    master: String,
    token: String,
}

pub async fn register(State(state): State<SharedState>, Body(body): Body<Register>) -> ApiResult<Value> {
    link::register(&state, &body.master, &body.token).await?;
    Ok(Json(json!({"role": state.role(), "master": link_json(&state)})))
}

pub async fn unregister(State(state): State<SharedState>) -> ApiResult<Value> {
    let departure = link::unregister(&state).await?;
    Ok(Json(json!({"role": state.role(), "removed_policies": departure.removed_policies,
                   "cancelled_tasks": departure.cancelled_tasks})))
}
