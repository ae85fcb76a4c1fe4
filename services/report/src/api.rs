//! The report service's HTTP API.
//!
//! * `GET /api/reports/{kind}?slave=ID&format=json|csv|html|text`
//! * `GET /api/status`: what the read model holds.
//!
//! Both need a bearer token: the service token of `report.xml` or a
//! master's operator's own ([`crate::auth`]).
//! * `GET /health`, `GET /metrics` (no token).
//!
//! Errors are JSON `{"error": {"code", "message"}}`, from `rampart-http` as
//! on the server.

use std::sync::{atomic::Ordering, Arc};

use axum::{
    extract::{Extension, Path, State},
    http::header,
    middleware,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use rampart_http::{ApiError, Params};
use rampart_shared::report::{self, Format, Kind};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{auth::Reader, read_model, state::AppState};

/// A failed query: the report database's trouble, not the request's.
fn database_error(e: tokio_postgres::Error) -> ApiError {
    tracing::error!(error = %e, "A report query failed.");
    ApiError::Unavailable("the report database did not answer; see the report service's log".into())
}

fn pool_error(e: deadpool_postgres::PoolError) -> ApiError {
    ApiError::Unavailable(format!("the report database is unreachable: {e}"))
}

pub fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/reports/{kind}", get(show))
        .route("/status", get(status))
        .fallback(|| rampart_http::no_such_route("no such API route"))
        .route_layer(middleware::from_fn_with_state(state.clone(), crate::auth::authorize));
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok", "service": "rampart-report"})) }))
        .route("/metrics", get(metrics))
        .nest("/api", api)
        .with_state(state)
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
    Extension(reader): Extension<Reader>,
    Params(q): Params<ReportQuery>,
) -> Result<Response, ApiError> {
    let kind = Kind::parse(&kind).map_err(ApiError::NotFound)?;
    let format = Format::parse(q.format.as_deref().unwrap_or("json")).map_err(ApiError::BadRequest)?;
    let started = std::time::Instant::now();
    let client = state.pool.get().await.map_err(pool_error)?;
    let input =
        read_model::input(&client, kind, q.slave.as_deref(), &state.source).await.map_err(database_error)?.ok_or_else(
            || ApiError::NotFound(format!("no slave '{}' in the report data", q.slave.clone().unwrap_or_default())),
        )?;
    let built = report::build(kind, &input).map_err(ApiError::FeatureUnavailable)?;
    let body = report::render::render(&built, format);
    tracing::debug!(
        kind = kind.as_str(),
        format = format.as_str(),
        reader = reader.name(),
        slave = q.slave.as_deref().unwrap_or(""),
        sites = input.sites.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "Served a report."
    );
    state.reports_served.fetch_add(1, Ordering::Relaxed);
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}

async fn status(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let client = state.pool.get().await.map_err(pool_error)?;
    let r = client
        .query_one(
            "SELECT (SELECT count(*) FROM slaves), (SELECT seq FROM roster), (SELECT as_of FROM roster),
                    (SELECT max(GREATEST(health_seq, site_seq)) FROM slaves)",
            &[],
        )
        .await
        .map_err(database_error)?;
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
