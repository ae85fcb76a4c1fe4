//! Tasks on a stand-alone or slave: `/api/tasks*`, handed to
//! [`crate::tasks::site`]; its errors mapped to HTTP here.

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
    state::SharedState,
    tasks::{
        site::{self, Task, TaskError},
        CreateTask, UnknownKind,
    },
};

/// The task routes of a server that manages endpoints.
pub(super) fn site_routes() -> Router<SharedState> {
    Router::new()
        .route("/tasks", get(list).post(create))
        .route("/tasks/{id}", get(show))
        .route("/tasks/{id}/cancel", post(cancel))
}

impl From<UnknownKind> for ApiError {
    fn from(e: UnknownKind) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::NotFound(_) => Self::NotFound(e.to_string()),
            TaskError::OwnedByMaster(_) => Self::ReadOnly(e.to_string()),
            TaskError::UnknownKind(e) => e.into(),
            TaskError::TargetRequired
            | TaskError::MalformedTarget(_)
            | TaskError::EmptyTarget
            | TaskError::UnknownEndpoints(_)
            | TaskError::NoEndpoint => Self::Invalid(e.to_string()),
            TaskError::Database(e) => e.into(),
            TaskError::Pool(e) => e.into(),
        }
    }
}

fn task_id(raw: &str) -> Result<Uuid, ApiError> {
    parse_id(raw, ReceiptObject::Task.as_str())
}

async fn list(State(state): State<SharedState>) -> ApiResult<Vec<Task>> {
    Ok(Json(site::list(&state).await?))
}

async fn show(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Task> {
    Ok(Json(site::show(&state, task_id(&id)?).await?))
}

async fn create(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<CreateTask>,
) -> Result<(StatusCode, Json<Task>), ApiError> {
    Ok((StatusCode::CREATED, Json(site::create(&state, &actor, body).await?)))
}

async fn cancel(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<Task> {
    Ok(Json(site::cancel(&state, &actor, task_id(&id)?).await?))
}
