//! Agent identities (stand-alone and slave; a master refuses them as a
//! site feature): enrolment tokens, the enrolment call an agent process
//! makes with one, and the identities it made (list, show, revoke).

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, post},
    Extension, Json, Router,
};
use rampart_shared::enrolment::{Enrolment, EnrolmentRequest};
use serde::Deserialize;
use uuid::Uuid;

use super::{access::ClientAddress, ApiError, ApiResult, Body};
use crate::{
    agents::{
        enrol,
        identities::{self, AgentDetail, AgentView},
        tokens::{self, EnrolmentTokenView, IssuedEnrolmentToken},
        AgentError,
    },
    operators::Actor,
    state::SharedState,
};

/// Served by every server; a master refuses them before they run.
pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/agents", get(list))
        .route("/agents/enrol", post(accept_enrolment))
        .route("/agents/enrolment-tokens", get(list_tokens).post(create_token))
        .route("/agents/enrolment-tokens/{id}", delete(revoke_token))
        .route("/agents/{id}", get(show))
        .route("/agents/{id}/revoke", post(revoke))
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Database(e) => e.into(),
            AgentError::Pool(e) => e.into(),
            AgentError::UnknownToken
            | AgentError::TokenUsed { .. }
            | AgentError::TokenExpired(_)
            | AgentError::TokenRevoked(_) => Self::Forbidden(e.to_string()),
            AgentError::BeyondAllowance { .. } | AgentError::Invalid(_) => Self::Invalid(e.to_string()),
            AgentError::AlreadyOwned { .. } | AgentError::AlreadyRevoked(..) => Self::Conflict(e.to_string()),
            AgentError::NotFound(_) | AgentError::TokenNotFound(_) => Self::NotFound(e.to_string()),
            AgentError::NoBrokerManagement | AgentError::Broker { .. } => Self::Unavailable(e.to_string()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    endpoints: Option<u32>,
    expires_in_seconds: Option<u64>,
}

async fn create_token(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<CreateToken>,
) -> Result<(StatusCode, Json<IssuedEnrolmentToken>), ApiError> {
    let endpoints = body.endpoints.unwrap_or(tokens::DEFAULT_ENDPOINTS);
    let lifetime = body.expires_in_seconds.unwrap_or(tokens::DEFAULT_LIFETIME_SECONDS);
    let issued =
        tokens::issue(&mut state.pool.get().await?, &actor, endpoints, lifetime, state.api_fingerprint).await?;
    tracing::info!(token_id = %issued.id, endpoints, expires_at = %issued.expires_at, "Created an enrolment token.");
    Ok((StatusCode::CREATED, Json(issued)))
}

async fn list_tokens(State(state): State<SharedState>) -> ApiResult<Vec<EnrolmentTokenView>> {
    Ok(Json(tokens::list(&state.pool.get().await?).await?))
}

async fn revoke_token(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: Uuid = super::error::parse_id(&id, "enrolment token")?;
    tokens::revoke(&mut state.pool.get().await?, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Called by an agent process; the enrolment token in the body is the credential.
async fn accept_enrolment(
    State(state): State<SharedState>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    Body(body): Body<EnrolmentRequest>,
) -> Result<(StatusCode, Json<Enrolment>), ApiError> {
    let name = body.name.clone();
    match enrol::enrol(&state, body, address.clone()).await {
        Ok(enrolment) => Ok((StatusCode::CREATED, Json(enrolment))),
        Err(e) => {
            tracing::warn!(name, address = address.as_deref().unwrap_or("-"), error = %e, "Refused an agent enrolment.");
            Err(e.into())
        }
    }
}

async fn list(State(state): State<SharedState>) -> ApiResult<Vec<AgentView>> {
    Ok(Json(identities::list(&state.pool.get().await?).await?))
}

async fn show(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<AgentDetail> {
    Ok(Json(identities::show(&state.pool.get().await?, &id).await?))
}

async fn revoke(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<AgentView> {
    Ok(Json(identities::revoke(&state, &actor, &id).await?))
}
