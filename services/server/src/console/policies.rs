//! Policies with their Owner column. On a slave a policy the master owns is
//! read-only: no action is offered on it (and the domain refuses one all
//! the same). Creating is offered to the roles the access table allows;
//! on a master a new policy goes to every slave.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use maud::{html, Markup};
use rampart_http::ApiError;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{layout, page::ConsoleError, session::may, session::Session};
use crate::{
    operators::Actor,
    owner::Owner,
    policies::{master, site, CreatePolicy, Policy},
    role::Role,
    state::{AppState, SharedState},
};

async fn all(state: &AppState) -> Result<Vec<Policy>, ConsoleError> {
    Ok(match state.role() {
        Role::Master => master::list(state).await?,
        Role::Standalone | Role::Slave => site::list(state).await?,
    })
}

/// The page: the table and, for who may, the form (with `error` next to it).
async fn page(
    state: &AppState,
    session: &Session,
    name: &str,
    error: Option<String>,
) -> Result<Response, ConsoleError> {
    let policies = all(state).await?;
    let creates = may(session, "POST", "/policies");
    let deletes = may(session, "POST", "/policies/{id}/delete");
    let body = html! {
        @if policies.is_empty() { p.empty { "No policies yet; computers follow the built-in default policy." } } @else {
            table {
                thead { tr { th { "Name" } th { "Owner" } th { "Version" } th { "Updated" } th { "Actions" } } }
                tbody { @for p in &policies { tr data-policy=(p.name) {
                    td { a href={"/console/policies/" (p.id)} { (p.name) } }
                    td.owner { (p.owner.as_str()) }
                    td { (p.version) }
                    td { (layout::time(Some(p.updated_at))) }
                    td { (actions(session, p, deletes)) }
                } } }
            }
        }
        @if creates {
            h2 { "New policy" }
            form.stack method="post" action="/console/policies" id="new-policy" {
                (layout::csrf_field(session))
                label { "Name" input name="name" required value=(name) aria-describedby="policy-error"; }
                @if let Some(error) = &error { p.error role="alert" id="policy-error" { (error) } }
                @if state.role() == Role::Master { p { "The policy goes to every slave." } }
                button type="submit" { "Create policy" }
            }
        }
    };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, layout::page(state, session, "Policies", body).await?).into_response())
}

/// What may be done to policy `p` here: nothing on a master-owned one.
fn actions(session: &Session, p: &Policy, deletes: bool) -> Markup {
    if p.owner == Owner::Master {
        return html! { span.readonly { "read-only (owned by the master)" } };
    }
    if !deletes {
        return html! { span.readonly { "—" } };
    }
    html! {
        form.inline method="post" action={"/console/policies/" (p.id) "/delete"} data-confirm={"Delete policy " (p.name) "?"} {
            (layout::csrf_field(session))
            button type="submit" { "Delete" }
        }
    }
}

/// `GET /console/policies`.
pub async fn list(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> Result<Response, ConsoleError> {
    page(&state, &session, "", None).await
}

#[derive(Deserialize)]
pub struct NewPolicy {
    name: String,
}

/// `POST /console/policies`: the domain's own checks; a refused name is
/// shown next to the form.
pub async fn create(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
    Form(form): Form<NewPolicy>,
) -> Result<Response, ConsoleError> {
    let body = match state.role() {
        Role::Master => json!({"name": form.name, "target": {"slaves": "all"}}),
        Role::Standalone | Role::Slave => json!({"name": form.name}),
    };
    let request: CreatePolicy = serde_json::from_value(body)
        .map_err(|e| ConsoleError(ApiError::Invalid(format!("the policy could not be read: {e}"))))?;
    let created: Result<(), ApiError> = match state.role() {
        Role::Master => master::create(&state, &actor, request).await.map(drop).map_err(Into::into),
        Role::Standalone | Role::Slave => site::create(&state, &actor, request).await.map(drop).map_err(Into::into),
    };
    match created {
        Ok(()) => Ok(Redirect::to("/console/policies").into_response()),
        Err(ApiError::Invalid(message) | ApiError::Conflict(message)) => {
            page(&state, &session, &form.name, Some(message)).await
        }
        Err(e) => Err(ConsoleError(e)),
    }
}

/// `POST /console/policies/{id}/delete`.
pub async fn delete(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let id: Uuid = rampart_http::parse_id(&id, "policy")?;
    match state.role() {
        Role::Master => master::delete(&state, &actor, id).await?,
        Role::Standalone | Role::Slave => site::delete(&state, &actor, id).await?,
    }
    Ok(Redirect::to("/console/policies").into_response())
}

/// `GET /console/policies/{id}`: on a master, where the policy stands on
/// each slave (refreshing itself); on a site, the computers it governs.
pub async fn show(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let id: Uuid = rampart_http::parse_id(&id, "policy")?;
    let policy = match state.role() {
        Role::Master => master::show(&state, id).await?,
        Role::Standalone | Role::Slave => site::show(&state, id).await?,
    };
    let body = html! {
        p { "Owner " strong.owner { (policy.owner.as_str()) } ", version " (policy.version) ", updated " (layout::time(Some(policy.updated_at))) "." }
        @if let Some(counts) = &policy.endpoints {
            p id="reach" { (counts.applied) " of " (counts.assigned) " computer(s) it governs run this version." }
        }
        @if let Some(receipts) = &policy.slaves {
            div id="receipts" data-refresh="5" {
                @if receipts.is_empty() { p.empty { "No slave is targeted." } } @else {
                    table {
                        thead { tr { th { "Slave" } th { "State" } th { "Version" } th { "Computers applying it" } th { "Updated" } th { "Reason" } } }
                        tbody { @for r in receipts { tr data-slave=(r.slave) {
                            td { (r.slave) } td.state { (r.state) } td { (r.version) }
                            td { (r.progress.endpoints.applied) " of " (r.progress.endpoints.assigned) }
                            td { (layout::time(Some(r.updated_at))) }
                            td { (r.reason.as_deref().unwrap_or_default()) }
                        } } }
                    }
                }
            }
        }
        h2 { "Settings" }
        pre { (serde_json::to_string_pretty(&policy.settings).unwrap_or_default()) }
        p { a href="/console/policies" { "All policies" } }
    };
    Ok(layout::page(&state, &session, &format!("Policy {}", policy.name), body).await?.into_response())
}
