//! The hierarchy. On a stand-alone or slave: this server's role and master,
//! **Register to master server** (host, port defaulting to 7073, token) and
//! **Unregister from master server**, through the same domain operations
//! and with the same messages as `rampartctl register`/`unregister`. On a
//! master: the slaves (state, last seen, computers, lag, rows behind) with
//! *replicate now*, and the registration tokens.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Extension, Form, Router,
};
use maud::html;
use rampart_http::ApiError;
use serde::Deserialize;

use super::{layout, session::may, ConsoleError, PageResult, Session};
use crate::{
    hierarchy::{
        link::{self, DEFAULT_MASTER_PORT},
        slaves, tokens,
    },
    operators::Actor,
    replication::requests,
    role::Role,
    state::{AppState, SharedState},
};

/// A stand-alone's or slave's hierarchy pages.
pub(super) fn site_routes() -> Router<SharedState> {
    Router::new()
        .route("/hierarchy", get(site_page))
        .route("/hierarchy/register", post(register))
        .route("/hierarchy/unregister", post(unregister))
}

/// A master's hierarchy pages.
pub(super) fn master_routes() -> Router<SharedState> {
    Router::new()
        .route("/hierarchy", get(master_page))
        .route("/slaves", get(slaves_page))
        .route("/slaves/{id}/replicate", post(replicate))
}

/// What the last action did, carried over the redirect after it.
#[derive(Default, Deserialize)]
pub struct Outcome {
    done: Option<String>,
    policies: Option<u64>,
    tasks: Option<usize>,
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The page of a site, with the register form (and `error` next to it).
async fn site_view(
    state: &AppState,
    session: &Session,
    outcome: Outcome,
    host: &str,
    port: &str,
    error: Option<String>,
) -> Result<Response, ConsoleError> {
    let role = state.role();
    let master = state.keyring.master_view();
    let changes = may(session, "POST", "/hierarchy/register");
    let notice = match (outcome.done.as_deref(), &master) {
        (Some("registered"), Some(m)) => {
            Some(format!("Registered to master {} at {}; this server is now a slave.", m.id, m.address))
        }
        (Some("unregistered"), _) => Some(format!(
            "Unregistered from the master: removed {} master {}, cancelled {}; this server is now stand-alone.",
            outcome.policies.unwrap_or(0),
            if outcome.policies == Some(1) { "policy" } else { "policies" },
            plural(outcome.tasks.unwrap_or(0) as u64, "task", "tasks"),
        )),
        _ => None,
    };
    let body = html! {
        @if let Some(notice) = &notice { p.notice role="status" id="hierarchy-notice" { (notice) } }
        p { "This server is a " strong id="instance-role" { (role.as_str()) } "." }
        @if let Some(m) = &master {
            p { "Its master is " strong { (m.id) } " at " (m.address) ", since " (layout::time(Some(m.registered_at))) "." }
        }
        @if !changes {
            p.readonly { "Registering and unregistering need the administrator role." }
        } @else if role == Role::Standalone {
            h2 id="register" { "Register to master server" }
            form.stack method="post" action="/console/hierarchy/register" id="register-form" {
                (layout::csrf_field(session))
                label { "Master host" input name="host" required value=(host) aria-describedby="register-error"; }
                label { "Port" input name="port" inputmode="numeric" value=(port); }
                label { "Registration token" input name="token" required autocomplete="off"; }
                @if let Some(error) = &error { p.error role="alert" id="register-error" { (error) } }
                button type="submit" { "Register" }
            }
        } @else if role == Role::Slave {
            h2 id="unregister" { "Unregister from master server" }
            form.stack method="post" action="/console/hierarchy/unregister" id="unregister-form"
                data-confirm="Unregister from the master? Its policies and tasks leave this server." {
                (layout::csrf_field(session))
                p { "The master's policies and tasks leave this server; its computers fall back to its own policies." }
                @if let Some(error) = &error { p.error role="alert" id="unregister-error" { (error) } }
                button type="submit" { "Unregister" }
            }
        }
    };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, layout::page(state, session, "Hierarchy", body).await?).into_response())
}

/// `GET /console/hierarchy` on a site.
async fn site_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Query(outcome): Query<Outcome>,
) -> Result<Response, ConsoleError> {
    site_view(&state, &session, outcome, "", &DEFAULT_MASTER_PORT.to_string(), None).await
}

#[derive(Deserialize)]
struct RegisterForm {
    host: String,
    port: String,
    token: String,
}

/// `POST /console/hierarchy/register`.
async fn register(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
    Form(form): Form<RegisterForm>,
) -> Result<Response, ConsoleError> {
    let port = form.port.trim();
    let port = if port.is_empty() { DEFAULT_MASTER_PORT.to_string() } else { port.to_owned() };
    let address = format!("{}:{port}", form.host.trim());
    match link::register(&state, &actor, &address, &form.token).await {
        Ok(_) => Ok(Redirect::to("/console/hierarchy?done=registered").into_response()),
        Err(e) => match ApiError::from(e) {
            ApiError::Internal(e) => Err(ConsoleError(ApiError::Internal(e))),
            refused => {
                site_view(&state, &session, Outcome::default(), &form.host, &port, Some(refused.to_string())).await
            }
        },
    }
}

/// `POST /console/hierarchy/unregister`.
async fn unregister(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
) -> Result<Response, ConsoleError> {
    match link::unregister(&state, &actor).await {
        Ok(d) => Ok(Redirect::to(&format!(
            "/console/hierarchy?done=unregistered&policies={}&tasks={}",
            d.removed_policies, d.cancelled_tasks
        ))
        .into_response()),
        Err(e) => match ApiError::from(e) {
            ApiError::Internal(e) => Err(ConsoleError(ApiError::Internal(e))),
            refused => {
                let port = DEFAULT_MASTER_PORT.to_string();
                site_view(&state, &session, Outcome::default(), "", &port, Some(refused.to_string())).await
            }
        },
    }
}

/// `GET /console/hierarchy` on a master: its registration tokens.
async fn master_page(State(state): State<SharedState>, Extension(session): Extension<Session>) -> PageResult {
    let tokens = tokens::list(&state.pool.get().await?).await?;
    let body = html! {
        p { "This server is the " strong id="instance-role" { "master" } " of its slaves: see " a href="/console/slaves" { "Slaves" } "." }
        h2 { "Registration tokens" }
        p { "Create one with " code { "rampartctl token create" } "; a site registers with it once." }
        @if tokens.is_empty() { p.empty { "No registration tokens." } } @else {
            table {
                thead { tr { th { "Id" } th { "State" } th { "Created" } th { "Expires" } th { "Used by" } } }
                tbody { @for t in &tokens { tr {
                    td { (t.id) } td { (t.state) } td { (layout::time(Some(t.created_at))) }
                    td { (layout::time(Some(t.expires_at))) } td { (t.used_by.as_deref().unwrap_or_default()) }
                } } }
            }
        }
    };
    layout::page(&state, &session, "Hierarchy", body).await
}

/// `GET /console/slaves` on a master.
async fn slaves_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Query(outcome): Query<Outcome>,
) -> PageResult {
    let slaves = slaves::list(&state.pool.get().await?).await?;
    let replicates = may(&session, "POST", "/slaves/{id}/replicate");
    let body = html! {
        @if let Some(done) = outcome.done.as_deref() { p.notice role="status" { "Asked slave '" (done) "' to replicate now." } }
        @if slaves.is_empty() { p.empty { "No slaves yet: a site registers with a registration token." } } @else {
            table id="slaves" data-refresh="5" {
                thead { tr {
                    th { "Slave" } th { "State" } th { "Last seen" } th { "Computers" } th { "Last replication" }
                    th { "Lag" } th { "Rows behind" } th { "Actions" }
                } }
                tbody { @for s in &slaves { tr data-slave=(s.id) {
                    td { a href={"/console/computers?slave=" (s.id)} { (s.id) } }
                    td { span class={"badge " (s.state)} { (s.state) } }
                    td { (layout::time(s.last_seen)) }
                    td { (s.endpoints.map(|n| n.to_string()).unwrap_or_default()) }
                    td.last-replication { (layout::time(s.replication.last_replication)) }
                    td { (s.replication.lag_seconds.map(|l| format!("{l} s")).unwrap_or_default()) }
                    td { (s.replication.rows_behind.map(|n| n.to_string()).unwrap_or_default()) }
                    td {
                        @if replicates && s.state != "removed" {
                            form.inline method="post" action={"/console/slaves/" (s.id) "/replicate"} {
                                (layout::csrf_field(&session))
                                button type="submit" { "Replicate now" }
                            }
                        }
                    }
                } } }
            }
        }
    };
    layout::page(&state, &session, "Slaves", body).await
}

/// `POST /console/slaves/{id}/replicate`.
async fn replicate(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let slave = requests::active_slaves(&state.pool.get().await?, Some(&id)).await?;
    requests::replicate_now(&state, &actor, &slave, false).await?;
    tracing::info!(slave = id, operator = actor.operator, "Asked a slave to replicate now from the console.");
    let done: String = url_safe(&id);
    Ok(Redirect::to(&format!("/console/slaves?done={done}")).into_response())
}

/// A slave id as a query value (ids are name segments; anything else is dropped).
fn url_safe(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect()
}
