//! The license: its state, seats and their use, and for the roles the
//! access table allows, a form that applies a license key as
//! `PUT /api/license` and `rampartctl license` do (`licensing::install_key`:
//! the key is verified, then the seats are handed out again). The key is
//! never shown back.

use axum::{
    extract::{Query, State},
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
    session::{may, Session},
};
use crate::{
    licensing,
    operators::Actor,
    state::{AppState, SharedState},
};

/// The id of the license form.
const FORM: &str = "apply-license";

/// The license's page and form (a stand-alone's or slave's).
pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/license", get(license_page).post(apply))
}

/// What the last action did, carried over the redirect after it.
#[derive(Default, Deserialize)]
pub struct Outcome {
    applied: Option<String>,
}

async fn page(
    state: &AppState,
    session: &Session,
    applied: bool,
    error: Option<FormError>,
) -> Result<Response, ConsoleError> {
    let l = licensing::current(state).await?;
    let applies = may(session, "POST", "/license");
    let error = error.as_ref();
    let body = html! {
        (forms::notice(applied.then_some("Applied the license; the seats below are handed out again.")))
        table id="license" { tbody {
            tr { th scope="row" { "State" } td id="license-state" { (l.state) } }
            tr { th scope="row" { "Customer" } td id="license-customer" { (l.customer.as_deref().unwrap_or_default()) } }
            tr { th scope="row" { "Seats" } td id="license-seats" { (l.seats) } }
            tr { th scope="row" { "Used" } td id="license-used" { (l.used) } }
            tr { th scope="row" { "Unlicensed computers" } td id="license-unlicensed" { (l.unlicensed) } }
            tr { th scope="row" { "Expires on" } td { (l.expires_on.map(|d| d.to_string()).unwrap_or_default()) } }
        } }
        @if !applies {
            p.readonly { "Applying a license needs the administrator role." }
        } @else {
            h2 { "Apply a license" }
            form.stack method="post" action="/console/license" id=(FORM) {
                (layout::csrf_field(session))
                label { "License key (as issued)"
                    textarea name="key" rows="4" required autocomplete="off" spellcheck="false"
                        aria-describedby=(forms::error_id(FORM)) {}
                }
                (forms::error_for(error, FORM))
                button type="submit" { "Apply" }
            }
        }
    };
    Ok(forms::answer(error, layout::page(state, session, "License", body).await?))
}

/// `GET /console/license`.
async fn license_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Query(outcome): Query<Outcome>,
) -> Result<Response, ConsoleError> {
    page(&state, &session, outcome.applied.is_some(), None).await
}

#[derive(Deserialize)]
struct Key {
    #[serde(default)]
    key: String,
}

/// `POST /console/license`: as `PUT /api/license`.
async fn apply(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
    Form(form): Form<Key>,
) -> Result<Response, ConsoleError> {
    let key = form.key.trim();
    let refused = if key.is_empty() {
        FormError::new(FORM, "paste the license key")
    } else {
        match licensing::install_key(&state, &actor, key).await {
            Ok(_) => return Ok(Redirect::to("/console/license?applied").into_response()),
            Err(e) => FormError::of(FORM, e)?,
        }
    };
    page(&state, &session, false, Some(refused)).await
}
