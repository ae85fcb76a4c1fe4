//! A master's slaves: state, last seen, computers, last replication, lag and
//! rows behind (the table refreshes itself), with *replicate now*, *verify*
//! (its result on a page of its own) and *remove*, each through the domain
//! operation the API uses.

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Extension, Form, Router,
};
use maud::html;
use rampart_shared::replication::ReplicationProgress;
use serde::Deserialize;
use uuid::Uuid;

use super::{layout, page::ConsoleError, page::PageResult, session::may, session::Session};
use crate::{
    hierarchy::slaves,
    operators::Actor,
    replication::{requests, verify},
    state::SharedState,
};

/// A master's slave pages.
pub(super) fn master_routes() -> Router<SharedState> {
    Router::new()
        .route("/slaves", get(slaves_page))
        .route("/slaves/{id}/replicate", post(replicate))
        .route("/slaves/{id}/verify", post(ask_verification))
        .route("/slaves/{id}/remove", post(remove))
        .route("/verifications/{id}", get(verification_page))
}

/// What the last action did, carried over the redirect after it.
#[derive(Default, Deserialize)]
pub struct Outcome {
    replicating: Option<String>,
    removed: Option<String>,
}

/// `GET /console/slaves` on a master.
async fn slaves_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Query(outcome): Query<Outcome>,
) -> PageResult {
    let slaves = slaves::list_at_a_glance(&state.pool.get().await?).await?;
    let acts = may(&session, "POST", "/slaves/{id}/replicate");
    let body = html! {
        @if let Some(id) = outcome.replicating.as_deref() { p.notice role="status" { "Asked slave '" (id) "' to replicate now." } }
        @if let Some(id) = outcome.removed.as_deref() { p.notice role="status" { "Slave '" (id) "' is being removed." } }
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
                    td { (s.replication.rows_behind.map(ReplicationProgress::rows_behind_text).unwrap_or_default()) }
                    td {
                        @if acts && !matches!(s.state.as_str(), "removed" | "removing") {
                            form.inline.replicate method="post" action={"/console/slaves/" (s.id) "/replicate"} {
                                (layout::csrf_field(&session))
                                button type="submit" { "Replicate now" }
                            }
                            " "
                            form.inline.verify method="post" action={"/console/slaves/" (s.id) "/verify"} {
                                (layout::csrf_field(&session))
                                button type="submit" { "Verify" }
                            }
                            " "
                            form.inline.remove method="post" action={"/console/slaves/" (s.id) "/remove"}
                                data-confirm={"Remove slave " (s.id) "? It stops being managed from here."} {
                                (layout::csrf_field(&session))
                                label.inline { input type="checkbox" name="purge" value="true"; " and its data" }
                                " "
                                label.inline title="Do not wait for the slave to confirm (a slave gone for good)" {
                                    input type="checkbox" name="force" value="true"; " at once"
                                }
                                " "
                                button type="submit" { "Remove" }
                            }
                        }
                    }
                } } }
            }
        }
    };
    layout::page(&state, &session, "Slaves", body).await
}

/// A slave id as a query value (ids are name segments; anything else is dropped).
fn url_safe(id: &str) -> String {
    id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect()
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
    Ok(Redirect::to(&format!("/console/slaves?replicating={}", url_safe(&id))).into_response())
}

/// `POST /console/slaves/{id}/verify`: asks, then shows the verification.
async fn ask_verification(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let slave = requests::active_slaves(&state.pool.get().await?, Some(&id)).await?;
    let requested = verify::request(&state, &actor, &slave).await?;
    let asked = requested.first().map(|r| r.id).expect("one verification per slave asked");
    Ok(Redirect::to(&format!("/console/verifications/{asked}")).into_response())
}

#[derive(Deserialize)]
pub struct RemoveForm {
    purge: Option<String>,
    force: Option<String>,
}

/// `POST /console/slaves/{id}/remove`.
async fn remove(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Form(form): Form<RemoveForm>,
) -> Result<Response, ConsoleError> {
    let checked = |field: &Option<String>| field.as_deref() == Some("true");
    let removal = slaves::remove(&state, &actor, &id, checked(&form.purge), checked(&form.force)).await?;
    tracing::info!(slave = removal.id, operator = actor.operator, "Removed a slave from the console.");
    Ok(Redirect::to(&format!("/console/slaves?removed={}", url_safe(&id))).into_response())
}

/// `GET /console/verifications/{id}`: pending (the page refreshes its
/// result), or whether master and slave agree, table by table.
async fn verification_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> PageResult {
    let id: Uuid = rampart_http::parse_id(&id, "verification")?;
    let v = verify::show(&state.pool.get().await?, id).await?;
    let tables = v.result.as_ref().and_then(|r| r["tables"].as_array().cloned()).unwrap_or_default();
    let number = |t: &serde_json::Value, field: &str| t[field].as_u64().unwrap_or_default();
    let body = html! {
        div id="verification" data-refresh=[(v.state == "pending").then_some("2")] {
            p { "Slave " strong { (v.slave) } ", asked " (layout::time(Some(v.requested_at))) "." }
            @match v.in_sync {
                None => p.empty id="verdict" { "Waiting for the slave's answer…" },
                Some(true) => p.notice id="verdict" { "In sync: the master's copy matches the slave." },
                Some(false) => p.error id="verdict" { "Not in sync: see the tables below." },
            }
            @if !tables.is_empty() {
                table {
                    thead { tr {
                        th { "Table" } th { "In sync" } th { "Rows on the slave" } th { "Rows on the master" }
                        th { "Missing on the master" } th { "Extra on the master" } th { "Different" }
                    } }
                    tbody { @for t in &tables { tr {
                        td { (t["table"].as_str().unwrap_or_default()) }
                        td { (if t["in_sync"].as_bool() == Some(true) { "yes" } else { "no" }) }
                        td { (number(t, "slave_rows")) } td { (number(t, "master_rows")) }
                        td { (number(t, "missing_on_master")) } td { (number(t, "extra_on_master")) } td { (number(t, "different")) }
                    } } }
                }
            }
        }
        p { a href="/console/slaves" { "All slaves" } }
    };
    layout::page(&state, &session, "Verification", body).await
}
