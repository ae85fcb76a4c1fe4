//! Reports: made here on a stand-alone or slave, forwarded to the report
//! service on a master; a master's resend; scheduled reports.

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Extension, Json, Router,
};
use rampart_shared::report::{Format, Kind};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{ApiError, ApiResult, Body, Params};
use crate::{
    operators::Actor,
    reports::{
        events, local, proxy,
        schedules::{self, RunRequested, ScheduleDeleted, ScheduleError, ScheduleList, ScheduleView},
    },
    state::SharedState,
};

/// A master's reports: the report service's, forwarded (under `/api`).
pub(super) fn master_routes() -> Router<SharedState> {
    Router::new().route("/reports/resend", post(resend)).route("/reports/{kind}", get(forward))
}

/// A site's reports: made here (under `/api`).
pub(super) fn site_routes() -> Router<SharedState> {
    Router::new().route("/reports/resend", post(master_only_resend)).route("/reports/{kind}", get(show))
}

/// Scheduled reports: a site feature, refused on a master before its
/// handlers run.
pub(super) fn schedule_routes() -> Router<SharedState> {
    Router::new()
        .route("/reports/schedules", get(list_schedules).post(create_schedule))
        .route("/reports/schedules/{id}", delete(delete_schedule))
        .route("/reports/schedules/{id}/run", post(run_schedule))
}

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        match e {
            ScheduleError::Invalid(_) => Self::Invalid(e.to_string()),
            ScheduleError::NoDirectory | ScheduleError::NoEmailSettings | ScheduleError::NameTaken(_) => {
                Self::Conflict(e.to_string())
            }
            ScheduleError::NotFound(_) => Self::NotFound(e.to_string()),
            ScheduleError::Database(e) => e.into(),
            ScheduleError::Pool(e) => e.into(),
        }
    }
}

impl From<local::ReportError> for ApiError {
    fn from(e: local::ReportError) -> Self {
        match e {
            local::ReportError::NotHere(m) => Self::FeatureUnavailable(m),
            local::ReportError::Database(e) => Self::Unavailable(format!("the database did not answer: {e}")),
            local::ReportError::Pool(e) => Self::Unavailable(format!("the database did not answer: {e}")),
        }
    }
}

async fn master_only_resend(State(state): State<SharedState>) -> ApiError {
    super::hierarchy::master_only(&state, "Report event resends")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    slave: Option<String>,
    format: Option<String>,
}

impl ReportQuery {
    /// The report asked for and its format (JSON unless named).
    fn read(&self, kind: &str) -> Result<(Kind, Format), ApiError> {
        let kind = Kind::parse(kind).map_err(ApiError::NotFound)?;
        let format = Format::parse(self.format.as_deref().unwrap_or("json")).map_err(ApiError::BadRequest)?;
        Ok((kind, format))
    }
}

/// `GET /api/reports/{kind}?slave=&format=` on a master: the report service's answer.
async fn forward(
    State(state): State<SharedState>,
    Path(kind): Path<String>,
    Params(q): Params<ReportQuery>,
) -> Result<Response, ApiError> {
    let (kind, format) = q.read(&kind)?;
    let mut query = format!("/{}?format={}", kind.as_str(), format.as_str());
    if let Some(slave) = &q.slave {
        rampart_shared::topology::NameSegment::parse(slave).map_err(|e| ApiError::BadRequest(format!("slave: {e}")))?;
        query.push_str(&format!("&slave={slave}"));
    }
    let answer = proxy::forward(&state.settings.reports, &query).await.map_err(|e| match e {
        proxy::ProxyError::NotConfigured => ApiError::Conflict(e.to_string()),
        proxy::ProxyError::Unreachable { .. } => ApiError::BadGateway(e.to_string()),
    })?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((status, [(header::CONTENT_TYPE, answer.content_type)], answer.body).into_response())
}

/// `GET /api/reports/{kind}?format=` on a site: made here.
async fn show(
    State(state): State<SharedState>,
    Path(kind): Path<String>,
    Params(q): Params<ReportQuery>,
) -> Result<Response, ApiError> {
    let (kind, format) = q.read(&kind)?;
    if let Some(slave) = q.slave {
        return Err(ApiError::BadRequest(format!(
            "slave '{slave}': only a master reports per slave; this {} server reports on its own computers",
            state.role()
        )));
    }
    let body = local::make(&state, kind, format).await?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// `POST /api/reports/resend`: a master sends its report service everything again.
async fn resend(State(state): State<SharedState>, Extension(actor): Extension<Actor>) -> ApiResult<Value> {
    if !events::enabled(&state) {
        return Err(ApiError::Conflict(
            "this master publishes no report events: set <Reports><EventKey> in server.xml".into(),
        ));
    }
    let slaves = events::resend(&state, &actor).await?;
    Ok(Json(
        json!({"slaves": slaves, "message": format!("queued the roster and the full summary of {slaves} slave(s) for the report service")}),
    ))
}

async fn list_schedules(State(state): State<SharedState>) -> ApiResult<ScheduleList> {
    Ok(Json(schedules::list(&state).await?))
}

async fn create_schedule(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(new): Body<schedules::NewSchedule>,
) -> Result<(StatusCode, Json<Option<ScheduleView>>), ApiError> {
    Ok((StatusCode::CREATED, Json(schedules::create(&state, &actor, &new).await?)))
}

async fn delete_schedule(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<ScheduleDeleted> {
    Ok(Json(schedules::delete(&state, &actor, schedule_id(&id)?).await?))
}

/// `POST /api/reports/schedules/{id}/run`: run it now (then on its schedule).
async fn run_schedule(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<RunRequested> {
    Ok(Json(schedules::run_now(&state, &actor, schedule_id(&id)?).await?))
}

fn schedule_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound(format!("no report schedule '{id}' (ids are UUIDs)")))
}
