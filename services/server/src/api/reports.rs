//! Reports: made here on a stand-alone or slave, forwarded to the report
//! service on a master; a master's resend; scheduled reports.

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
use rampart_shared::report::{Format, Kind};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{ApiError, ApiResult, Body, Params};
use crate::{
    reports::{events, local, proxy, schedules},
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
    let body = local::make(&state, kind, format).await.map_err(|e| match e {
        local::ReportError::NotHere(m) => ApiError::FeatureUnavailable(m),
        local::ReportError::Database(m) => ApiError::Unavailable(format!("the database did not answer: {m}")),
    })?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

/// `POST /api/reports/resend`: a master sends its report service everything again.
async fn resend(State(state): State<SharedState>) -> ApiResult<Value> {
    if !events::enabled(&state) {
        return Err(ApiError::Conflict(
            "this master publishes no report events: set <Reports><EventKey> in server.xml".into(),
        ));
    }
    let slaves = events::resend(&state).await?;
    Ok(Json(
        json!({"slaves": slaves, "message": format!("queued the roster and the full summary of {slaves} slave(s) for the report service")}),
    ))
}

async fn list_schedules(State(state): State<SharedState>) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    Ok(Json(json!({"schedules": schedules::list(&client).await?,
                   "directory": state.settings.reports.directory.as_ref().map(|d| d.display().to_string())})))
}

async fn create_schedule(
    State(state): State<SharedState>,
    Body(new): Body<schedules::NewSchedule>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (kind, format, every) = schedules::check(&new).map_err(ApiError::Invalid)?;
    if state.settings.reports.directory.is_none() {
        return Err(ApiError::Conflict(
            "scheduled reports need a directory to write to: set <Reports><Directory> in server.xml and restart".into(),
        ));
    }
    let client = state.pool.get().await?;
    if new.email && crate::settings_store::get(&client, crate::settings_store::EMAIL).await?.is_none() {
        return Err(ApiError::Conflict(
            "e-mail is asked but no e-mail settings are stored: PUT /api/settings/email first".into(),
        ));
    }
    let id = match schedules::create(&client, &new, kind, format, every).await {
        Ok(id) => id,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            return Err(ApiError::Conflict(format!("a schedule named '{}' exists", new.name.trim())))
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(schedule_id = %id, schedule = %new.name.trim(), kind = kind.as_str(), "Created a report schedule.");
    state.wakes.report_schedules.wake();
    let created = schedules::list(&client).await?.into_iter().find(|s| s["id"] == json!(id)).unwrap_or(Value::Null);
    Ok((StatusCode::CREATED, Json(created)))
}

async fn delete_schedule(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Value> {
    let id = parse_id(&id)?;
    let deleted = state.pool.get().await?.execute("DELETE FROM report_schedules WHERE id = $1", &[&id]).await?;
    if deleted == 0 {
        return Err(ApiError::NotFound(format!("no report schedule {id}")));
    }
    Ok(Json(json!({"id": id, "deleted": true})))
}

/// `POST /api/reports/schedules/{id}/run`: run it now (then on its schedule).
async fn run_schedule(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Value> {
    let id = parse_id(&id)?;
    let changed =
        state.pool.get().await?.execute("UPDATE report_schedules SET next_run = now() WHERE id = $1", &[&id]).await?;
    if changed == 0 {
        return Err(ApiError::NotFound(format!("no report schedule {id}")));
    }
    state.wakes.report_schedules.wake();
    Ok(Json(json!({"id": id, "message": "the report is being made; see last_run and last_file in the schedule list"})))
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound(format!("no report schedule '{id}' (ids are UUIDs)")))
}
