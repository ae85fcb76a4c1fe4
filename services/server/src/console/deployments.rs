//! The deployment tool and status: the agent installations and their state
//! (the table keeps itself current, so a deployment moves from pending to
//! its result without a reload), and for the roles the access table
//! allows, a form to install agents on computers discovered on the network
//! and not managed yet, as `POST /api/deployments` does
//! (`deployments::deploy`: all of them or none).

use axum::{
    extract::{Query, State},
    http::HeaderMap,
    response::{IntoResponse, Redirect, Response},
    routing::get,
    Extension, Form, Router,
};
use maud::html;
use serde::Deserialize;

use super::{
    forms::{self, FormError},
    layout,
    page::ConsoleError,
    session::{is_refresh, may, Session},
};
use crate::{
    deployments,
    fleet::audit,
    operators::Actor,
    state::{AppState, SharedState},
};

/// The id of the deployment form.
const FORM: &str = "new-deployment";

/// Most computers the form offers at once (the rest after these are deployed).
const OFFERED: usize = 200;

/// The deployments' page and form (a stand-alone's or slave's).
pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/deployments", get(deployments_page).post(deploy))
}

/// What the last action did, carried over the redirect after it.
#[derive(Default, Deserialize)]
pub struct Outcome {
    requested: Option<usize>,
}

async fn page(
    state: &AppState,
    session: &Session,
    refresh: bool,
    requested: Option<usize>,
    error: Option<FormError>,
    chosen: &[String],
) -> Result<Response, ConsoleError> {
    let list = deployments::list(state).await?;
    let deploys = may(session, "POST", "/deployments");
    // A refresh takes only the status table: the form's list is not read again.
    let mut candidates: Vec<_> = if deploys && !refresh {
        audit::audit(state).await?.computers.into_iter().filter(|c| !c.managed).collect()
    } else {
        Vec::new()
    };
    let not_offered = candidates.len().saturating_sub(OFFERED);
    candidates.truncate(OFFERED);
    let notice = requested.map(|n| format!("Requested {n} deployment(s); their state follows below."));
    let error = error.as_ref();
    let body = html! {
        (forms::notice(notice.as_deref()))
        div id="deployments" data-refresh="3" {
            @if list.is_empty() { p.empty { "No deployment yet." } } @else {
                table {
                    thead { tr { th { "Computer" } th { "State" } th { "Automatic" } th { "Requested" } th { "Finished" } th { "Message" } } }
                    tbody { @for d in &list { tr data-computer=(d.computer_id) {
                        td.name { (d.hostname.as_deref().unwrap_or(&d.computer_id)) } td.state { (d.state) }
                        td { (if d.automatic { "yes" } else { "no" }) }
                        td { (layout::time(Some(d.requested_at))) } td { (layout::time(d.finished_at)) }
                        td { (d.message.as_deref().unwrap_or_default()) }
                    } } }
                }
            }
        }
        @if !deploys {
            p.readonly { "Deploying agents needs the operator role." }
        } @else {
            h2 { "Deploy the agent" }
            form.stack method="post" action="/console/deployments" id=(FORM) {
                (layout::csrf_field(session))
                @if candidates.is_empty() {
                    p.empty { "Every computer discovered on the network is managed: there is nothing to deploy to." }
                } @else {
                    fieldset aria-describedby=(forms::error_id(FORM)) {
                        legend { "Computers discovered and not managed" }
                        @for c in &candidates {
                            label.inline {
                                input type="checkbox" name="computers" value=(c.computer_id)
                                    checked[chosen.contains(&c.computer_id)];
                                (c.hostname) " (" (c.ip) ", " (c.computer_id) ")"
                            }
                        }
                    }
                    @if not_offered > 0 {
                        p { (not_offered) " more are not listed: deploy these first, or name them to "
                            code { "rampartctl deploy run" } "." }
                    }
                }
                (forms::error_for(error, FORM))
                button type="submit" disabled[candidates.is_empty()] { "Deploy" }
            }
        }
    };
    Ok(forms::answer(error, layout::page(state, session, "Deployments", body).await?))
}

/// `GET /console/deployments`.
async fn deployments_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Query(outcome): Query<Outcome>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    page(&state, &session, is_refresh(&headers), outcome.requested, None, &[]).await
}

/// `POST /console/deployments`: as `POST /api/deployments`.
async fn deploy(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let computers = forms::values(&fields, "computers");
    let refused = match deployments::deploy(&state, &actor, &computers).await {
        Ok(done) => {
            let to = format!("/console/deployments?requested={}", done.deployments.len());
            return Ok(Redirect::to(&to).into_response());
        }
        Err(deployments::DeployError::NoComputers) => FormError::new(FORM, "choose at least one computer"),
        Err(e) => FormError::of(FORM, e)?,
    };
    page(&state, &session, false, None, Some(refused), &computers).await
}
