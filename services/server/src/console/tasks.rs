//! Tasks with their Owner column and progress. On a slave a task the master
//! owns is read-only (no cancel offered). The table refreshes itself every
//! few seconds (the script's `data-refresh`), so progress moves without a
//! reload. Creating a task (a kind, on every computer, or on a master on
//! every slave) is offered to the roles the access table allows.

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
    role::Role,
    state::{AppState, SharedState},
    tasks::{master, progress::TaskProgress, site, CreateTask},
};

/// The kinds a task may have, as the domain names them.
const KINDS: [(&str, &str); 3] = [("quick_scan", "Quick scan"), ("full_scan", "Full scan"), ("update", "Update")];

/// One task as the table shows it, from a site or a master.
struct Line {
    id: Uuid,
    name: String,
    kind: String,
    owner: Owner,
    state: String,
    progress: TaskProgress,
    created_at: chrono::DateTime<chrono::Utc>,
}

fn state_text(state: &impl serde::Serialize) -> String {
    serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

async fn lines(state: &AppState) -> Result<Vec<Line>, ConsoleError> {
    Ok(match state.role() {
        Role::Master => master::list(state)
            .await?
            .into_iter()
            .map(|t| Line {
                state: state_text(&t.state),
                id: t.id,
                name: t.name,
                kind: t.kind,
                owner: t.owner,
                progress: t.progress,
                created_at: t.created_at,
            })
            .collect(),
        Role::Standalone | Role::Slave => site::list(state)
            .await?
            .into_iter()
            .map(|t| Line {
                state: state_text(&t.state),
                id: t.id,
                name: t.name,
                kind: t.kind,
                owner: t.owner,
                progress: t.progress,
                created_at: t.created_at,
            })
            .collect(),
    })
}

async fn page(state: &AppState, session: &Session, error: Option<String>) -> Result<Response, ConsoleError> {
    let tasks = lines(state).await?;
    let creates = may(session, "POST", "/tasks");
    let cancels = may(session, "POST", "/tasks/{id}/cancel");
    let body = html! {
        div id="tasks" data-refresh="5" {
            @if tasks.is_empty() { p.empty { "No tasks yet." } } @else {
                table {
                    thead { tr {
                        th { "Name" } th { "Kind" } th { "Owner" } th { "State" } th { "Progress" } th { "Created" } th { "Actions" }
                    } }
                    tbody { @for t in &tasks { tr data-task=(t.name) {
                        td { a href={"/console/tasks/" (t.id)} { (t.name) } } td { (t.kind) } td.owner { (t.owner.as_str()) } td.state { (t.state) }
                        td.progress { (t.progress.finished()) " of " (t.progress.total) " computer(s) finished" }
                        td { (layout::time(Some(t.created_at))) }
                        td { (actions(session, t, cancels)) }
                    } } }
                }
            }
        }
        @if creates {
            h2 { "New task" }
            form.stack method="post" action="/console/tasks" id="new-task" {
                (layout::csrf_field(session))
                label { "Kind"
                    select name="kind" aria-describedby="task-error" {
                        @for (kind, label) in KINDS { option value=(kind) { (label) } }
                    }
                }
                label { "Name (optional)" input name="name"; }
                @if let Some(error) = &error { p.error role="alert" id="task-error" { (error) } }
                p { @if state.role() == Role::Master { "The task goes to every slave." } @else { "The task runs on every computer." } }
                button type="submit" { "Create task" }
            }
        }
    };
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    Ok((status, layout::page(state, session, "Tasks", body).await?).into_response())
}

/// What may be done to a task here: nothing on a master-owned one.
fn actions(session: &Session, t: &Line, cancels: bool) -> Markup {
    if t.owner == Owner::Master {
        return html! { span.readonly { "read-only (owned by the master)" } };
    }
    if !cancels || t.state != "running" {
        return html! { span.readonly { "—" } };
    }
    html! {
        form.inline method="post" action={"/console/tasks/" (t.id) "/cancel"} data-confirm={"Cancel task " (t.name) "?"} {
            (layout::csrf_field(session))
            button type="submit" { "Cancel" }
        }
    }
}

/// `GET /console/tasks`.
pub async fn list(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
) -> Result<Response, ConsoleError> {
    page(&state, &session, None).await
}

#[derive(Deserialize)]
pub struct NewTask {
    kind: String,
    name: Option<String>,
}

/// `POST /console/tasks`.
pub async fn create(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
    Form(form): Form<NewTask>,
) -> Result<Response, ConsoleError> {
    let name = form.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    let body = match state.role() {
        Role::Master => json!({"kind": form.kind, "name": name, "target": {"slaves": "all"}}),
        Role::Standalone | Role::Slave => json!({"kind": form.kind, "name": name, "target": {"all": true}}),
    };
    let request: CreateTask = serde_json::from_value(body)
        .map_err(|e| ConsoleError(ApiError::Invalid(format!("the task could not be read: {e}"))))?;
    let created: Result<(), ApiError> = match state.role() {
        Role::Master => master::create(&state, &actor, request).await.map(drop).map_err(Into::into),
        Role::Standalone | Role::Slave => site::create(&state, &actor, request).await.map(drop).map_err(Into::into),
    };
    match created {
        Ok(()) => Ok(Redirect::to("/console/tasks").into_response()),
        Err(ApiError::Invalid(message) | ApiError::Conflict(message)) => page(&state, &session, Some(message)).await,
        Err(e) => Err(ConsoleError(e)),
    }
}

/// `POST /console/tasks/{id}/cancel`.
pub async fn cancel(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let id: Uuid = rampart_http::parse_id(&id, "task")?;
    match state.role() {
        Role::Master => drop(master::cancel(&state, &actor, id).await?),
        Role::Standalone | Role::Slave => drop(site::cancel(&state, &actor, id).await?),
    }
    Ok(Redirect::to("/console/tasks").into_response())
}

/// `GET /console/tasks/{id}`: on a master, its progress on each slave; on a
/// site, its result on each computer. Refreshes itself while it runs.
pub async fn show(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let id: Uuid = rampart_http::parse_id(&id, "task")?;
    let (title, detail) = match state.role() {
        Role::Master => {
            let t = master::show(&state, id).await?;
            let receipts = t.slaves.unwrap_or_default();
            let detail = html! {
                p { "Owner " (t.owner.as_str()) "; " (state_text(&t.state)) "; " (t.progress.finished()) " of " (t.progress.total) " computer(s) finished." }
                table {
                    thead { tr { th { "Slave" } th { "State" } th { "Finished" } th { "Failed" } th { "Updated" } } }
                    tbody { @for r in &receipts { tr data-slave=(r.slave) {
                        td { (r.slave) } td.state { (r.state) }
                        td.progress { (r.progress.progress.finished()) " of " (r.progress.progress.total) }
                        td { (r.progress.progress.failed) } td { (layout::time(Some(r.updated_at))) }
                    } } }
                }
            };
            (t.name, detail)
        }
        Role::Standalone | Role::Slave => {
            let t = site::show(&state, id).await?;
            let results = t.results.unwrap_or_default();
            let detail = html! {
                p { "Owner " (t.owner.as_str()) "; " (state_text(&t.state)) "; " (t.progress.finished()) " of " (t.progress.total) " computer(s) finished." }
                @if results.is_empty() { p.empty { "No computer is targeted." } } @else {
                    table {
                        thead { tr { th { "Computer" } th { "State" } th { "Files scanned" } th { "Detections" } th { "Message" } th { "Updated" } } }
                        tbody { @for r in &results { tr {
                            td.name { (r.hostname.as_deref().unwrap_or(&r.endpoint_id)) } td { (r.state) } td { (r.scanned_files) }
                            td { (r.detections) } td { (r.message.as_deref().unwrap_or_default()) } td { (layout::time(Some(r.updated_at))) }
                        } } }
                    }
                }
            };
            (t.name, detail)
        }
    };
    let body = html! {
        div id="task" data-refresh="5" { (detail) }
        p { a href="/console/tasks" { "All tasks" } }
    };
    Ok(layout::page(&state, &session, &format!("Task {title}"), body).await?.into_response())
}
