//! Policies and tasks on a master: the same routes as on a stand-alone
//! (`/api/policies*`, `/api/tasks*`), handed to [`crate::policies::master`]
//! and [`crate::tasks::master`]; their errors mapped to HTTP here.

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
    hierarchy::fanout::TargetError,
    operators::Actor,
    policies::{
        master::{self as policies, MasterPolicyError},
        Assignment, CreatePolicy, EditPolicy, Policy,
    },
    state::SharedState,
    tasks::{
        master::{self as tasks, MasterTaskError, Task},
        CreateTask,
    },
};

/// The policy and task routes of a master.
pub(super) fn master_routes() -> Router<SharedState> {
    Router::new()
        .route("/policies", get(list_policies).post(create_policy))
        .route("/policies/{id}", get(show_policy).patch(edit_policy).delete(delete_policy))
        .route("/policies/{id}/assignments", post(change_assignment).delete(change_assignment))
        .route("/tasks", get(list_tasks).post(create_task))
        .route("/tasks/{id}", get(show_task))
        .route("/tasks/{id}/cancel", post(cancel_task))
}

impl From<TargetError> for ApiError {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::Database(e) => e.into(),
            TargetError::Missing
            | TargetError::Malformed(_)
            | TargetError::Invalid(_)
            | TargetError::UnknownSlaves(_) => Self::Invalid(e.to_string()),
        }
    }
}

impl From<MasterPolicyError> for ApiError {
    fn from(e: MasterPolicyError) -> Self {
        match e {
            MasterPolicyError::NotFound(_) => Self::NotFound(e.to_string()),
            MasterPolicyError::AssignedThroughTarget => Self::Conflict(e.to_string()),
            MasterPolicyError::Content(e) => e.into(),
            MasterPolicyError::Target(e) => e.into(),
            MasterPolicyError::Database(e) => e.into(),
            MasterPolicyError::Pool(e) => e.into(),
        }
    }
}

impl From<MasterTaskError> for ApiError {
    fn from(e: MasterTaskError) -> Self {
        match e {
            MasterTaskError::NotFound(_) => Self::NotFound(e.to_string()),
            MasterTaskError::NoSlave => Self::Invalid(e.to_string()),
            MasterTaskError::UnknownKind(e) => e.into(),
            MasterTaskError::Target(e) => e.into(),
            MasterTaskError::Database(e) => e.into(),
            MasterTaskError::Pool(e) => e.into(),
        }
    }
}

fn policy_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_id(raw, ReceiptObject::Policy.as_str())
}

fn task_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_id(raw, ReceiptObject::Task.as_str())
}

async fn list_policies(State(state): State<SharedState>) -> ApiResult<Vec<Policy>> {
    Ok(Json(policies::list(&state).await?))
}

async fn show_policy(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Policy> {
    Ok(Json(policies::show(&state, policy_id(&id)?).await?))
}

async fn create_policy(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<CreatePolicy>,
) -> Result<(StatusCode, Json<Policy>), ApiError> {
    Ok((StatusCode::CREATED, Json(policies::create(&state, &actor, body).await?)))
}

async fn edit_policy(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<EditPolicy>,
) -> ApiResult<Policy> {
    Ok(Json(policies::edit(&state, &actor, policy_id(&id)?, body).await?))
}

async fn delete_policy(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    policies::delete(&state, &actor, policy_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A master has no assignments: its policies reach slaves through their target.
async fn change_assignment(Path(id): Path<String>, Body(_): Body<Assignment>) -> Result<Json<Policy>, ApiError> {
    policy_id(&id)?;
    Err(MasterPolicyError::AssignedThroughTarget.into())
}

async fn list_tasks(State(state): State<SharedState>) -> ApiResult<Vec<Task>> {
    Ok(Json(tasks::list(&state).await?))
}

async fn show_task(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Task> {
    Ok(Json(tasks::show(&state, task_id(&id)?).await?))
}

async fn create_task(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<CreateTask>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    Ok((StatusCode::CREATED, Json(tasks::create(&state, &actor, body).await?)))
}

async fn cancel_task(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<Task> {
    Ok(Json(tasks::cancel(&state, &actor, task_id(&id)?).await?))
}
