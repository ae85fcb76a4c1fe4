//! Signing in and out. A sign-in goes through the operators' own
//! throttling and activity log (`operators::sessions::open`); a refusal is
//! shown next to the form, the same for a wrong name, a wrong password and
//! a disabled account.

use axum::{
    extract::{FromRequest, Query, Request, State},
    http::header,
    response::{IntoResponse, Redirect, Response},
    Extension, Form,
};
use maud::html;
use serde::Deserialize;

use super::{csrf, page::bare_page, page::ConsoleError, session, session::Session};
use crate::{
    operators::{
        sessions::{self, SessionError},
        sign_in::SignInError,
        Actor,
    },
    state::SharedState,
};

impl From<SessionError> for rampart_http::ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Unknown | SessionError::Expired(_) | SessionError::Disabled(_) => {
                Self::Unauthorized(e.to_string())
            }
            SessionError::Database(e) => e.into(),
            SessionError::Pool(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    expired: Option<String>,
}

#[derive(Deserialize)]
pub struct SignInForm {
    name: String,
    password: String,
}

fn sign_in_page(name: &str, error: Option<&str>) -> Response {
    bare_page(
        "Sign in",
        html! {
            main.sign-in {
                h1 { "Sign in to Rampart" }
                form.stack method="post" action="/console/sign-in" {
                    label { "Operator name" input name="name" autocomplete="username" required value=(name); }
                    label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                    @if let Some(error) = error { p.error role="alert" id="sign-in-error" { (error) } }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
    .into_response()
}

/// `GET /console/sign-in`.
pub async fn form(Query(query): Query<SignInQuery>) -> Response {
    let error = query.expired.map(|_| "Your session was idle too long; sign in again.");
    sign_in_page("", error)
}

/// `POST /console/sign-in`.
pub async fn submit(State(state): State<SharedState>, request: Request) -> Result<Response, ConsoleError> {
    csrf::same_origin(&request)?;
    let address = session::client_address(&request);
    let Form(form) = Form::<SignInForm>::from_request(request, &()).await.map_err(|e| {
        ConsoleError(rampart_http::ApiError::BadRequest(format!("the sign-in form could not be read: {e}")))
    })?;
    match sessions::open(&state, form.name.trim(), form.password, address).await {
        Ok(opened) => {
            let mut response = Redirect::to("/console").into_response();
            response.headers_mut().insert(header::SET_COOKIE, session::set_cookie(&state, &opened.secret));
            Ok(response)
        }
        Err(SignInError::Refused) => {
            let mut page = sign_in_page(form.name.trim(), Some(&SignInError::Refused.to_string()));
            *page.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
            Ok(page)
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /console/sign-out`.
pub async fn sign_out(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
) -> Result<Response, ConsoleError> {
    sessions::close(&state, &actor, session.id).await?;
    let mut response = Redirect::to("/console/sign-in").into_response();
    response.headers_mut().insert(header::SET_COOKIE, session::clear_cookie());
    Ok(response)
}
