//! Policies on a stand-alone or slave: `/api/policies*`, handed to
//! [`crate::policies::site`]; the errors of policy content and of site
//! policies mapped to HTTP here.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Extension, Json, Router,
};
use rampart_shared::hierarchy::ReceiptObject;
use uuid::Uuid;

use super::{error::parse_id, ApiError, ApiResult, Body};
use crate::{
    operators::Actor,
    policies::{
        site::{self, PolicyError},
        Assignment, ContentError, CreatePolicy, EditPolicy, Policy,
    },
    state::SharedState,
};

/// The policy routes of a server that manages endpoints.
pub(super) fn site_routes() -> Router<SharedState> {
    Router::new()
        .route("/policies", get(list).post(create))
        .route("/policies/{id}", get(show).patch(edit).delete(delete))
        .route("/policies/{id}/assignments", post(assign).delete(unassign))
}

impl From<ContentError> for ApiError {
    fn from(e: ContentError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::NotFound(_) => Self::NotFound(e.to_string()),
            PolicyError::OwnedByMaster(_) => Self::ReadOnly(e.to_string()),
            PolicyError::TargetOnSite | PolicyError::Assignment(_) => Self::Invalid(e.to_string()),
            PolicyError::Content(e) => e.into(),
            PolicyError::Database(e) => e.into(),
            PolicyError::Pool(e) => e.into(),
        }
    }
}

fn policy_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_id(raw, ReceiptObject::Policy.as_str())
}

async fn list(State(state): State<SharedState>) -> ApiResult<Vec<Policy>> {
    Ok(Json(site::list(&state).await?))
}

async fn show(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Policy> {
    Ok(Json(site::show(&state, policy_id(&id)?).await?))
}

async fn create(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<CreatePolicy>,
) -> Result<(StatusCode, Json<Policy>), ApiError> {
    Ok((StatusCode::CREATED, Json(site::create(&state, &actor, body).await?)))
}

async fn edit(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<EditPolicy>,
) -> ApiResult<Policy> {
    Ok(Json(site::edit(&state, &actor, policy_id(&id)?, body).await?))
}

async fn delete(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    site::delete(&state, &actor, policy_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn assign(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(a): Body<Assignment>,
) -> ApiResult<Policy> {
    Ok(Json(site::change_assignment(&state, &actor, policy_id(&id)?, a, true).await?))
}

async fn unassign(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(a): Body<Assignment>,
) -> ApiResult<Policy> {
    Ok(Json(site::change_assignment(&state, &actor, policy_id(&id)?, a, false).await?))
}
