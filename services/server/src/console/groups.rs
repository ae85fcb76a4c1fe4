//! The network builder: the network groups as built, and for the roles the
//! access table allows, forms to create a group (name, parent, subnet),
//! rename or delete one, and move computers into one, through the domain
//! operations the API uses (`fleet::groups`, `fleet::endpoints`). A
//! refusal is shown next to the form that caused it.

use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Extension, Form, Router,
};
use maud::html;
use serde::Deserialize;

use super::{
    format::given,
    forms::{self, FormError},
    layout,
    page::ConsoleError,
    session::{may, Session},
};
use crate::{
    fleet::{
        endpoints,
        groups::{self, DEFAULT_GROUP},
    },
    operators::Actor,
    state::{AppState, SharedState},
};

/// The network builder's page and forms (a stand-alone's or slave's).
pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/groups", get(groups_page).post(create))
        .route("/groups/{id}/rename", post(rename))
        .route("/groups/{id}/delete", post(delete))
        .route("/groups/move", post(move_computers))
}

/// What the last action did, carried over the redirect after it.
#[derive(Default, Deserialize)]
pub struct Outcome {
    done: Option<String>,
    moved: Option<usize>,
}

impl Outcome {
    /// What the notice says (only what this page names; a link cannot
    /// make it say anything else).
    fn text(&self) -> Option<String> {
        Some(match self.done.as_deref()? {
            "created" => "Created the group.".to_owned(),
            "renamed" => "Renamed the group.".to_owned(),
            "deleted" => "Deleted the group; its computers and subgroups went to its parent.".to_owned(),
            "moved" => format!("Moved {} computer(s).", self.moved.unwrap_or(0)),
            _ => return None,
        })
    }
}

/// The page, with `error` next to the form that caused it and `typed` the
/// values the refused form held.
async fn page(
    state: &AppState,
    session: &Session,
    done: Option<&str>,
    error: Option<FormError>,
    typed: &Typed,
) -> Result<Response, ConsoleError> {
    let groups = groups::list(state).await?;
    let changes = may(session, "POST", "/groups");
    let name_of =
        |id: Option<i64>| groups.iter().find(|g| Some(g.id) == id).map(|g| g.name.clone()).unwrap_or_default();
    let error = error.as_ref();
    // A refusal about a group no longer listed (deleted meanwhile) goes on top.
    let placed = |form: &str| {
        ["new-group", "move-computers"].contains(&form)
            || groups.iter().any(|g| form == format!("rename-{}", g.id) || form == format!("delete-{}", g.id))
    };
    let unplaced = error.filter(|e| !placed(&e.form));
    let body = html! {
        (forms::notice(done))
        @if let Some(e) = unplaced { p.error role="alert" id=(forms::error_id(&e.form)) { (e.message) } }
        table id="groups" {
            thead { tr {
                th { "Group" } th { "Parent" } th { "Subnet" } th { "Computers" }
                @if changes { th { "Actions" } }
            } }
            tbody { @for g in &groups { tr data-group=(g.name) {
                td { a href={"/console/computers?group=" (g.id)} { (g.name) } }
                td { (name_of(g.parent_id)) }
                td { (g.subnet.as_deref().unwrap_or_default()) }
                td { (g.endpoint_count) }
                @if changes { td {
                    @let form = format!("rename-{}", g.id);
                    form.inline.rename method="post" action={"/console/groups/" (g.id) "/rename"} id=(form) {
                        (layout::csrf_field(session))
                        label.inline {
                            span.visually-hidden { "New name of " (g.name) }
                            input name="name" required value=(g.name) aria-describedby=(forms::error_id(&form));
                        }
                        button type="submit" { "Rename" }
                    }
                    @if g.id != DEFAULT_GROUP {
                        " "
                        form.inline.delete method="post" action={"/console/groups/" (g.id) "/delete"}
                            data-confirm={"Delete group " (g.name) "? Its computers and subgroups go to its parent."} {
                            (layout::csrf_field(session))
                            button type="submit" { "Delete" span.visually-hidden { " " (g.name) } }
                        }
                    }
                    (forms::error_for(error, &form))
                    (forms::error_for(error, &format!("delete-{}", g.id)))
                } }
            } } }
        }
        @if !changes {
            p.readonly { "Building groups needs the operator role." }
        } @else {
            h2 { "New group" }
            form.stack method="post" action="/console/groups" id="new-group" {
                (layout::csrf_field(session))
                label { "Name" input name="name" required value=(typed.name) aria-describedby="new-group-error"; }
                label { "Parent"
                    select name="parent_id" {
                        @for g in &groups { option value=(g.id) selected[typed.parent == Some(g.id)] { (g.name) } }
                    }
                }
                label { "Subnet (optional, e.g. 10.1.0.0/16)" input name="subnet" value=(typed.subnet); }
                (forms::error_for(error, "new-group"))
                button type="submit" { "Create group" }
            }
            h2 { "Move computers" }
            form.stack method="post" action="/console/groups/move" id="move-computers" {
                (layout::csrf_field(session))
                label { "Computers (ids, separated by commas, spaces or lines)"
                    textarea name="computers" rows="3" required aria-describedby="move-computers-error" { (typed.computers) }
                }
                label { "Into group"
                    select name="group_id" {
                        @for g in &groups { option value=(g.id) selected[typed.into == Some(g.id)] { (g.name) } }
                    }
                }
                (forms::error_for(error, "move-computers"))
                button type="submit" { "Move" }
            }
        }
    };
    Ok(forms::answer(error, layout::page(state, session, "Network groups", body).await?))
}

/// What a refused form held, typed again into it.
#[derive(Default)]
struct Typed {
    name: String,
    parent: Option<i64>,
    subnet: String,
    computers: String,
    into: Option<i64>,
}

/// `GET /console/groups`.
async fn groups_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Query(outcome): Query<Outcome>,
) -> Result<Response, ConsoleError> {
    page(&state, &session, outcome.text().as_deref(), None, &Typed::default()).await
}

/// Where the page goes after a change (`outcome`: the query saying what was done).
fn done(outcome: &str) -> Response {
    Redirect::to(&format!("/console/groups?done={outcome}")).into_response()
}

/// A group id the form sent, or `None` for an empty field.
fn group_id(value: &Option<String>, form: &str) -> Result<Option<i64>, FormError> {
    given(value)
        .map(|v| v.parse().map_err(|_| FormError::new(form, format!("group '{v}' is not a group id"))))
        .transpose()
}

#[derive(Deserialize)]
struct NewGroup {
    #[serde(default)]
    name: String,
    parent_id: Option<String>,
    subnet: Option<String>,
}

/// `POST /console/groups`: as `POST /api/groups`.
async fn create(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
    Form(form): Form<NewGroup>,
) -> Result<Response, ConsoleError> {
    let typed = Typed {
        name: form.name.clone(),
        parent: form.parent_id.as_deref().and_then(|p| p.parse().ok()),
        subnet: form.subnet.clone().unwrap_or_default(),
        ..Typed::default()
    };
    let refused = match group_id(&form.parent_id, "new-group") {
        Err(refused) => refused,
        Ok(parent) => match groups::create(&state, &actor, Some(&form.name), parent, given(&form.subnet)).await {
            Ok(_) => return Ok(done("created")),
            Err(e) => FormError::of("new-group", e)?,
        },
    };
    page(&state, &session, None, Some(refused), &typed).await
}

#[derive(Deserialize)]
struct Rename {
    #[serde(default)]
    name: String,
}

/// `POST /console/groups/{id}/rename`: as `PATCH /api/groups/{id}` with a name.
async fn rename(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Form(form): Form<Rename>,
) -> Result<Response, ConsoleError> {
    let id: i64 = rampart_http::parse_id(&id, "group")?;
    let form_id = format!("rename-{id}");
    let name = form.name.trim();
    let refused = if name.is_empty() {
        FormError::new(&form_id, "name is required")
    } else {
        match groups::edit(&state, &actor, id, Some(name), None, None).await {
            Ok(_) => return Ok(done("renamed")),
            Err(e) => FormError::of(&form_id, e)?,
        }
    };
    page(&state, &session, None, Some(refused), &Typed::default()).await
}

/// `POST /console/groups/{id}/delete`: as `DELETE /api/groups/{id}`.
async fn delete(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let id: i64 = rampart_http::parse_id(&id, "group")?;
    match groups::delete(&state, &actor, id).await {
        Ok(()) => Ok(done("deleted")),
        Err(e) => {
            let refused = FormError::of(&format!("delete-{id}"), e)?;
            page(&state, &session, None, Some(refused), &Typed::default()).await
        }
    }
}

/// `POST /console/groups/move`: as `POST /api/endpoints/{id}/move` for each
/// computer, all of them or none. The computers come typed into this page's
/// form, or ticked in the computers list (one `computers` field each); a
/// refusal is shown next to this page's form, with the computers in it.
async fn move_computers(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    const FORM: &str = "move-computers";
    let computers: Vec<String> = forms::values(&fields, "computers").iter().flat_map(|v| forms::list(v)).collect();
    let group = fields.iter().find(|(n, _)| n == "group_id").map(|(_, v)| v.clone());
    let into = group_id(&group, FORM);
    let typed =
        Typed { computers: computers.join("\n"), into: into.as_ref().ok().copied().flatten(), ..Typed::default() };
    let refused = match into {
        Err(refused) => refused,
        Ok(None) => FormError::new(FORM, "choose the group to move the computers into"),
        Ok(Some(_)) if computers.is_empty() => FormError::new(FORM, "name at least one computer to move"),
        Ok(Some(group)) => match endpoints::move_all_to_group(&state, &actor, &computers, group).await {
            Ok(moved) => return Ok(done(&format!("moved&moved={moved}"))),
            Err(e) => FormError::of(FORM, e)?,
        },
    };
    page(&state, &session, None, Some(refused), &typed).await
}
