//! The CSRF check of every form a signed-in operator posts: the form's
//! `csrf` field must be its session's token (derived from the session's
//! secret, `operators::sessions::csrf_token`), and a browser's `Origin`,
//! when sent, must be this server. The body is read once (bounded) and
//! handed on unchanged.

use axum::{
    body::{to_bytes, Body},
    extract::{FromRequest, Request},
    http::header,
    Form,
};
use rampart_http::ApiError;

use maud::{html, Markup};

use super::page::ConsoleError;
use crate::operators::sessions::same_token;
use crate::operators::sessions::Session;

/// The name of the field every console form carries.
pub const FIELD: &str = "csrf";

/// The hidden field every form carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name=(FIELD) value=(session.csrf); }
}

/// The largest form the console takes.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Refuses a form a browser says it posts from another site (`Origin`),
/// the sign-in form included (no one is signed in through another site).
pub fn same_origin(request: &Request) -> Result<(), ConsoleError> {
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    let Some(origin) = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let from_here = host
        .is_some_and(|host| origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) == Some(host));
    if from_here {
        Ok(())
    } else {
        Err(ConsoleError(ApiError::Forbidden(format!(
            "a form from {origin} is refused: the console only takes its own forms"
        ))))
    }
}

/// `request` again when its form carries the session's token, else the refusal.
pub async fn check(request: Request, session: &Session) -> Result<Request, ConsoleError> {
    same_origin(&request)?;
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| {
        ConsoleError(ApiError::PayloadTooLarge(format!("a console form is at most {MAX_FORM_BYTES} bytes")))
    })?;
    let probe = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
    let fields: Vec<(String, String)> = match Form::<Vec<(String, String)>>::from_request(probe, &()).await {
        Ok(Form(fields)) => fields,
        Err(e) => return Err(ConsoleError(ApiError::BadRequest(format!("the form could not be read: {e}")))),
    };
    let presented = fields.iter().find(|(name, _)| name == FIELD).map(|(_, v)| v.as_str()).unwrap_or_default();
    if !same_token(&session.csrf, presented) {
        tracing::warn!(operator = session.principal.operator, session = %session.id, "Console form refused: wrong CSRF token.");
        return Err(ConsoleError(ApiError::Forbidden(
            "the form's CSRF token is missing or not this session's; reload the page and try again".into(),
        )));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}
