//! The report service's HTTP API.
//!
//! * `GET /api/reports/{kind}?slave=ID&format=json|csv|html|text` (bearer token)
//! * `GET /api/status` (bearer token): what the read model holds.
//! * `GET /health`, `GET /metrics` (no token).
//!
//! Errors are JSON `{"error": {"code", "message"}}`, as on the server.

use std::sync::{atomic::Ordering, Arc};

use axum::{
    extract::{Path, Query, Request, State},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use rampart_shared::report::{self, Format, Kind};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{read_model, startup::AppState};

/// An error for a person, with its HTTP status.
pub struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": {"code": self.1, "message": self.2}}))).into_response()
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        tracing::error!(error = %e, "A report query failed.");
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the report database did not answer; see the report service's log".into(),
        )
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ApiError(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("the report database is unreachable: {e}"))
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/reports/{kind}", get(show))
        .route("/status", get(status))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "not_found", "no such API route".into()) })
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok", "service": "rampart-report"})) }))
        .route("/metrics", get(metrics))
        .nest("/api", api)
        .with_state(state)
}

async fn authorize(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if state.settings.service.api_token.matches(token) => Ok(next.run(request).await),
        Some(_) => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not valid for this report service".into(),
        )),
        None => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send 'Authorization: Bearer <token>' (the API token of report.xml)".into(),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    slave: Option<String>,
    format: Option<String>,
}

async fn show(
    State(state): State<Arc<AppState>>,
    Path(kind): Path<String>,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let kind = Kind::parse(&kind).map_err(|e| ApiError(StatusCode::NOT_FOUND, "not_found", e))?;
    let format = Format::parse(q.format.as_deref().unwrap_or("json"))
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, "bad_request", e))?;
    let started = std::time::Instant::now();
    let client = state.pool.get().await?;
    let input = read_model::input(&client, kind, q.slave.as_deref(), &state.source).await?.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no slave '{}' in the report data", q.slave.clone().unwrap_or_default()),
        )
    })?;
    let built = report::build(kind, &input).map_err(|e| ApiError(StatusCode::CONFLICT, "unavailable", e))?;
    let body = report::render::render(&built, format);
    tracing::debug!(
        kind = kind.as_str(),
        format = format.as_str(),
        slave = q.slave.as_deref().unwrap_or(""),
        sites = input.sites.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Served a report."
    );
    state.reports_served.fetch_add(1, Ordering::Relaxed);
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

async fn status(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let client = state.pool.get().await?;
    let r = client
        .query_one(
            "SELECT (SELECT count(*) FROM slaves), (SELECT seq FROM roster), (SELECT as_of FROM roster),
                    (SELECT max(GREATEST(health_seq, site_seq)) FROM slaves)",
            &[],
        )
        .await?;
    let m = &state.metrics;
    Ok(Json(json!({
        "slaves": r.get::<_, i64>(0), "roster_seq": r.get::<_, i64>(1),
        "roster_as_of": r.get::<_, Option<chrono::DateTime<chrono::Utc>>>(2), "last_seq": r.get::<_, Option<i64>>(3),
        "events": {"applied": m.applied.load(Ordering::Relaxed), "dead_lettered": m.dead_lettered.load(Ordering::Relaxed)},
    })))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let m = &state.metrics;
    let text = format!(
        "# HELP rampart_report_events_applied_total Events applied to the read model.\n\
         # TYPE rampart_report_events_applied_total counter\n\
         rampart_report_events_applied_total {}\n\
         # HELP rampart_report_events_dead_lettered_total Events refused (bad signature, malformed, unknown kind).\n\
         # TYPE rampart_report_events_dead_lettered_total counter\n\
         rampart_report_events_dead_lettered_total {}\n\
         # HELP rampart_report_reports_served_total Reports served.\n\
         # TYPE rampart_report_reports_served_total counter\n\
         rampart_report_reports_served_total {}\n",
        m.applied.load(Ordering::Relaxed),
        m.dead_lettered.load(Ordering::Relaxed),
        state.reports_served.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
