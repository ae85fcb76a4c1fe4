//! The hierarchy. On a stand-alone or slave: this server's role and master,
//! **Register to master server** (host, port defaulting to 7073, token) and
//! **Unregister from master server**, through the same domain operations
//! and with the same messages as `rampartctl register`/`unregister`. On a
//! master: the slaves (state, last seen, computers, lag, rows behind) with
//! *replicate now* ([`super::slaves`]), and the registration tokens.

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Extension, Form, Router,
};
use maud::html;
use rampart_http::ApiError;
use serde::Deserialize;

use super::{layout, page::ConsoleError, session::may, session::Session};
use crate::{
    hierarchy::{
        link::{self, DEFAULT_MASTER_PORT},
        tokens,
    },
    operators::Actor,
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
    Router::new().route("/hierarchy", get(master_page)).route("/registration-tokens", post(create_token))
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

/// The master's page: its registration tokens, and a token just created
/// (shown this once).
async fn master_view(
    state: &AppState,
    session: &Session,
    created: Option<tokens::IssuedToken>,
) -> Result<Response, ConsoleError> {
    let tokens = tokens::list(&state.pool.get().await?).await?;
    let creates = may(session, "POST", "/registration-tokens");
    let body = html! {
        p { "This server is the " strong id="instance-role" { "master" } " of its slaves: see " a href="/console/slaves" { "Slaves" } "." }
        @if let Some(t) = &created {
            div.notice role="status" {
                p { "New registration token, valid until " (layout::time(Some(t.expires_at))) "; it registers one site and is shown only now:" }
                p { code id="new-token" { (t.token) } }
            }
        }
        h2 { "Registration tokens" }
        @if creates {
            form.inline method="post" action="/console/registration-tokens" id="new-token-form" {
                (layout::csrf_field(session))
                button type="submit" { "Create a registration token" }
            }
        }
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
    Ok(layout::page(state, session, "Hierarchy", body).await?.into_response())
}

/// `GET /console/hierarchy` on a master.
async fn master_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> Result<Response, ConsoleError> {
    master_view(&state, &session, None).await
}

/// `POST /console/registration-tokens` on a master.
async fn create_token(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
) -> Result<Response, ConsoleError> {
    let issued =
        tokens::issue(&mut state.pool.get().await?, &actor, tokens::DEFAULT_LIFETIME_SECONDS, state.api_fingerprint)
            .await?;
    tracing::info!(token_id = %issued.id, expires_at = %issued.expires_at, "Created a registration token from the console.");
    master_view(&state, &session, Some(issued)).await
}
