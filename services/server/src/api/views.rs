//! Read-only views: health, status, dashboard, detections, network audit,
//! and the audit of refused messages.

use axum::{extract::State, routing::get, Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Params};
use crate::{
    fleet::{
        audit::{self, NetworkAudit},
        dashboard::{self, Dashboard, Detection},
        filter::Page,
        status::{self, Health, SiteStatus},
    },
    refused::{self, AuditError, RefusedPage},
    state::SharedState,
};

/// The views of a stand-alone or slave.
pub(super) fn site_routes() -> Router<SharedState> {
    Router::new().route("/status", get(site_status)).merge(fleet_views())
}

/// The views of a master (the feature check refuses its dashboard and
/// network audit: a master has no fleet).
pub(super) fn master_routes() -> Router<SharedState> {
    Router::new().route("/status", get(master_status)).merge(fleet_views())
}

fn fleet_views() -> Router<SharedState> {
    Router::new()
        .route("/dashboard", get(show_dashboard))
        .route("/detections", get(detections))
        .route("/audit", get(show_audit))
        .route("/refused-messages", get(refused_messages))
}

pub async fn health(State(state): State<SharedState>) -> Json<Health> {
    Json(status::health(&state))
}

async fn site_status(State(state): State<SharedState>) -> ApiResult<SiteStatus> {
    Ok(Json(status::site(&state).await?))
}

async fn master_status(State(state): State<SharedState>) -> ApiResult<status::MasterStatus<impl Serialize>> {
    Ok(Json(status::master(&state).await?))
}

async fn show_dashboard(State(state): State<SharedState>) -> ApiResult<Dashboard> {
    Ok(Json(dashboard::dashboard(&state).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectionQuery {
    endpoint: Option<String>,
    limit: Option<i64>,
}

async fn detections(State(state): State<SharedState>, Params(q): Params<DetectionQuery>) -> ApiResult<Vec<Detection>> {
    let page = Page::new(q.limit, None, 50)?;
    Ok(Json(dashboard::detections(&state, q.endpoint.as_deref(), page.limit).await?))
}

async fn show_audit(State(state): State<SharedState>) -> ApiResult<NetworkAudit> {
    Ok(Json(audit::audit(&state).await?))
}

/// `GET /api/refused-messages?queue=&slave=&sender=&limit=`: what this
/// server refused or ignored, newest first.
async fn refused_messages(
    State(state): State<SharedState>,
    Params(filter): Params<refused::Filter>,
) -> ApiResult<RefusedPage> {
    let page = Page::new(filter.limit, None, 100)?;
    Ok(Json(refused::list(&state, &filter, page.limit).await?))
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Database(e) => e.into(),
            AuditError::Pool(e) => e.into(),
        }
    }
}
