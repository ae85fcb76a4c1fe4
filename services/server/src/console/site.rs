//! The home page, the switch between the tree's views, and the site features: the dashboard on a stand-alone or slave; on a
//! master every site feature answers, as the API does, that it is not
//! available there (409, naming the feature and the role).

use axum::{
    extract::State,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Extension, Form, Router,
};
use maud::html;
use rampart_http::ApiError;
use serde::Deserialize;

use super::{layout, page::ConsoleError, page::PageResult, session::Session};
use crate::{
    fleet::{dashboard, tree::TreeView},
    operators::sessions,
    role::{Feature, Role},
    state::SharedState,
};

/// The site features of a stand-alone or slave.
pub(super) fn site_routes() -> Router<SharedState> {
    Router::new().route("/dashboard", get(dashboard_page)).merge(super::features::routes())
}

/// On a master, every site feature's page and form refuses, naming the
/// feature as the API does.
pub(super) fn master_routes() -> Router<SharedState> {
    let refuse = |feature: Feature| move || async move { unavailable(feature) };
    Router::new()
        .route("/dashboard", get(refuse(Feature::Dashboard)))
        .route("/audit", get(refuse(Feature::NetworkAudit)))
        .route("/groups", get(refuse(Feature::NetworkBuilder)).post(refuse(Feature::NetworkBuilder)))
        .route("/groups/{id}/rename", post(refuse(Feature::NetworkBuilder)))
        .route("/groups/{id}/delete", post(refuse(Feature::NetworkBuilder)))
        .route("/groups/move", post(refuse(Feature::NetworkBuilder)))
        .route("/deployments", get(refuse(Feature::DeploymentStatus)).post(refuse(Feature::DeploymentTool)))
        .route("/settings/email", get(refuse(Feature::EmailSettings)).post(refuse(Feature::EmailSettings)))
        .route("/license", get(refuse(Feature::Registration)).post(refuse(Feature::Registration)))
}

fn unavailable(feature: Feature) -> ConsoleError {
    ConsoleError(ApiError::FeatureUnavailable(Role::Master.check(feature).expect_err("a master has no fleet")))
}

/// `GET /console`: where this server stands.
pub async fn home(State(state): State<SharedState>, Extension(session): Extension<Session>) -> PageResult {
    let role = state.role();
    let master = state.keyring.master_view();
    let body = html! {
        p { "Signed in as " strong { (session.principal.operator) } ", " (session.principal.role) "." }
        p { "This server, " strong { (state.site.instance.as_str()) } ", is a " strong { (role.as_str()) } "." }
        @if let Some(m) = &master { p { "Its master is " (m.id) " at " (m.address) "." } }
        ul {
            li { a href="/console/computers" { @if role == Role::Master { "Computers of every site" } @else { "Computers" } } }
            li { a href="/console/policies" { "Policies" } }
            @if role == Role::Master { li { a href="/console/slaves" { "Slaves" } } } @else { li { a href="/console/dashboard" { "Dashboard" } } }
            li { a href="/console/activity" { "Activity log" } }
        }
    };
    layout::page(&state, &session, "Home", body).await
}

#[derive(Deserialize)]
pub struct ViewForm {
    view: String,
}

/// `POST /console/tree-view`: remembers the operator's view of the tree.
pub async fn switch_view(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Form(form): Form<ViewForm>,
) -> Result<Response, ConsoleError> {
    let view = TreeView::parse(Some(&form.view)).map_err(|e| ConsoleError(ApiError::Invalid(e.to_string())))?;
    sessions::remember_tree_view(&state, &session.principal.operator, view).await?;
    Ok(Redirect::to("/console").into_response())
}

/// `GET /console/dashboard` on a stand-alone or slave.
async fn dashboard_page(State(state): State<SharedState>, Extension(session): Extension<Session>) -> PageResult {
    let d = dashboard::dashboard(&state).await?;
    let c = &d.endpoints;
    let counts = [
        ("Computers", c.total),
        ("Protected", c.protected),
        ("At risk", c.at_risk),
        ("Infected", c.infected),
        ("Unprotected", c.unprotected),
        ("Offline", c.offline),
        ("Unlicensed", c.unlicensed),
    ];
    let body = html! {
        table { tbody { @for (name, n) in counts { tr { th scope="row" { (name) } td { (n) } } } } }
        p { (d.tasks_running) " task(s) running; " (d.outdated_signatures.count) " computer(s) with signatures older than "
            (d.outdated_signatures.threshold_days) " days." }
        h2 { "Latest detections" }
        @if d.recent_detections.is_empty() { p.empty { "No detections." } } @else {
            table {
                thead { tr { th { "When" } th { "Computer" } th { "Malware" } th { "Path" } th { "Action" } } }
                tbody { @for x in &d.recent_detections { tr {
                    td { (layout::time(Some(x.detected_at))) }
                    td.name { (x.hostname.as_deref().unwrap_or(&x.endpoint_id)) }
                    td.name { (x.malware) } td.name { (x.path) } td { (x.action) }
                } } }
            }
        }
    };
    layout::page(&state, &session, "Dashboard", body).await
}
