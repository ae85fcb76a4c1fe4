//! What the server has recorded: reports (made here on a site, by the
//! report service on a master) to download as CSV or as HTML with charts,
//! the messages it refused, and the activity log. Reports are downloaded,
//! not shown inside the console: their HTML carries its own styles, which
//! the console's Content-Security-Policy does not allow.

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Extension, Router,
};
use maud::html;
use rampart_http::ApiError;
use rampart_shared::report::{Format, Kind};
use serde::Deserialize;

use super::{layout, page::ConsoleError, page::PageResult, session::Session};
use crate::{
    operators::activity,
    refused,
    reports::{local, proxy},
    role::Role,
    state::SharedState,
};

/// The record pages of every server.
pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/reports", get(reports_page))
        .route("/reports/{kind}", get(download))
        .route("/refused-messages", get(refused_page))
        .route("/activity", get(activity_page))
}

/// `GET /console/reports`.
async fn reports_page(State(state): State<SharedState>, Extension(session): Extension<Session>) -> PageResult {
    let scope = match state.role() {
        Role::Master => "every slave, from the report service",
        Role::Standalone | Role::Slave => "this site's computers, made now",
    };
    let body = html! {
        p { "Reports over " (scope) "." }
        table {
            thead { tr { th { "Report" } th { "Download" } } }
            tbody { @for kind in Kind::ALL { tr data-report=(kind.as_str()) {
                td { (kind.title()) }
                td {
                    a href={"/console/reports/" (kind.as_str()) "?format=html"} download { "HTML with charts" }
                    " · "
                    a href={"/console/reports/" (kind.as_str()) "?format=csv"} download { "CSV" }
                }
            } } }
        }
    };
    layout::page(&state, &session, "Reports", body).await
}

#[derive(Deserialize)]
pub struct DownloadQuery {
    format: Option<String>,
}

/// `GET /console/reports/{kind}?format=csv|html`: the report as a file.
async fn download(
    State(state): State<SharedState>,
    Path(kind): Path<String>,
    Query(query): Query<DownloadQuery>,
) -> Result<Response, ConsoleError> {
    let kind = Kind::parse(&kind).map_err(|e| ConsoleError(ApiError::NotFound(e)))?;
    let format =
        Format::parse(query.format.as_deref().unwrap_or("html")).map_err(|e| ConsoleError(ApiError::Invalid(e)))?;
    let (content_type, body) = match state.role() {
        Role::Master => {
            let path = format!("/{}?format={}", kind.as_str(), format.as_str());
            let answer = proxy::forward(&state.settings.reports, &path).await.map_err(|e| match e {
                proxy::ProxyError::NotConfigured => ConsoleError(ApiError::Conflict(e.to_string())),
                proxy::ProxyError::Unreachable { .. } => ConsoleError(ApiError::BadGateway(e.to_string())),
            })?;
            if answer.status != 200 {
                let message = String::from_utf8_lossy(&answer.body).into_owned();
                return Err(ConsoleError(ApiError::BadGateway(format!(
                    "the report service answered {}: {message}",
                    answer.status
                ))));
            }
            (answer.content_type, answer.body)
        }
        Role::Standalone | Role::Slave => (format.content_type().to_owned(), local::make(&state, kind, format).await?),
    };
    let file =
        format!("attachment; filename=\"{}-{}.{}\"", state.site.instance.as_str(), kind.as_str(), format.extension());
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&file).expect("a file name of name segments"));
    Ok(response)
}

/// `GET /console/refused-messages`: the newest 100.
async fn refused_page(State(state): State<SharedState>, Extension(session): Extension<Session>) -> PageResult {
    let page = refused::list(&state, &refused::Filter::default(), 100).await?;
    let body = html! {
        p { (page.total) " message(s) refused in all; the newest first." }
        @if page.messages.is_empty() { p.empty { "No message was refused." } } @else {
            table {
                thead { tr { th { "When" } th { "Queue" } th { "Sender" } th { "Slave" } th { "Kind" } th { "Reason" } } }
                tbody { @for m in &page.messages { tr {
                    td { (layout::time(Some(m.refused_at))) }
                    td { (m.queue.as_deref().unwrap_or_default()) }
                    td { (m.sender.as_deref().unwrap_or_default()) }
                    td { (m.slave.as_deref().unwrap_or_default()) }
                    td { (m.kind.as_deref().unwrap_or_default()) }
                    td { (m.reason) }
                } } }
            }
        }
    };
    layout::page(&state, &session, "Refused messages", body).await
}

/// `GET /console/activity`: the newest 100 entries.
async fn activity_page(State(state): State<SharedState>, Extension(session): Extension<Session>) -> PageResult {
    let entries = activity::list(&state, &activity::Filter { limit: 100, ..Default::default() }).await?;
    let body = html! {
        @if entries.is_empty() { p.empty { "Nothing recorded yet." } } @else {
            table {
                thead { tr { th { "When" } th { "Site" } th { "Operator" } th { "Action" } th { "Object" } th { "From" } } }
                tbody { @for e in &entries { tr {
                    td { (layout::time(Some(e.at))) } td { (e.site) } td { (e.operator) }
                    td { (e.action) } td { (e.object) } td { (e.address.as_deref().unwrap_or_default()) }
                } } }
            }
        }
    };
    layout::page(&state, &session, "Activity log", body).await
}
