//! The session cookie, and the layer in front of every console page: the
//! cookie resolves to an operator and their current role
//! ([`crate::operators::sessions`]), the console's rows of the access table
//! (`api/access.rs`) say what the page needs, and a form's CSRF token is
//! checked ([`super::csrf`]) before any handler runs. Handlers receive the
//! [`Session`] and the acting [`Actor`] the domain logs changes under.

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{header, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use rampart_http::ApiError;

use super::{csrf, page::ConsoleError};
use crate::{
    api::{
        access::{self, Access},
        listener::PeerAddress,
    },
    operators::{
        sessions::{self, SessionError},
        Actor,
    },
    state::{AppState, SharedState},
};

pub use crate::operators::sessions::Session;

/// The cookie that carries a session's secret.
pub const COOKIE: &str = "rampart_session";
/// Sent by the script when a page part refreshes itself: such a request
/// does not count as the operator being active.
const REFRESH_HEADER: &str = "x-rampart-refresh";

/// Whether a request is the script refreshing a part of a page (which needs
/// only that part).
pub fn is_refresh(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(REFRESH_HEADER)
}

/// The secret of the session cookie a request presents.
pub fn presented(request: &Request) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// `Set-Cookie` for a new session (`Secure` when the API serves TLS).
pub fn set_cookie(state: &AppState, secret: &str) -> HeaderValue {
    let secure = if state.api_fingerprint.is_some() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/{secure}"))
        .expect("a session secret is a valid header value")
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"))
        .expect("a valid header value")
}

/// The address a request came from, as the activity log records it.
pub fn client_address(request: &Request) -> Option<String> {
    request.extensions().get::<ConnectInfo<PeerAddress>>().map(|c| c.0 .0.ip().to_string())
}

/// The route of a request relative to `/console`, as the access table names it.
fn console_route(request: &Request) -> String {
    let matched = request.extensions().get::<MatchedPath>().map(|m| m.as_str()).unwrap_or_default();
    match matched.strip_prefix("/console").unwrap_or(matched) {
        "" => "/".to_owned(),
        route => route.to_owned(),
    }
}

/// The layer in front of every console page (a `route_layer`, so after routing).
pub async fn authorize(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let route = console_route(&request);
    let needed = match access::console_required(request.method(), &route) {
        Some(Access::Public) => return next.run(request).await,
        Some(Access::Role(role)) => role,
        // No console page is opened by an agent's enrolment token.
        Some(Access::EnrolmentToken) | None => {
            let message =
                format!("{} {route} has no entry in the access table; it is refused to everyone", request.method());
            return ConsoleError(ApiError::Forbidden(message)).into_response();
        }
    };
    let session = match presented(&request) {
        Some(secret) => sessions::resolve(&state, &secret, !request.headers().contains_key(REFRESH_HEADER)).await,
        None => Err(SessionError::Unknown),
    };
    let session = match session {
        Ok(session) => session,
        Err(SessionError::Database(e)) => return ConsoleError::from(e).into_response(),
        Err(SessionError::Pool(e)) => return ConsoleError::from(e).into_response(),
        Err(e) if request.method() == Method::GET => {
            let reason = if matches!(e, SessionError::Expired(_)) { "?expired" } else { "" };
            return Redirect::to(&format!("/console/sign-in{reason}")).into_response();
        }
        Err(e) => return ConsoleError(ApiError::Unauthorized(e.to_string())).into_response(),
    };
    if !session.principal.role.allows(needed) {
        return ConsoleError(access::refusal(&session.principal, needed)).into_response();
    }
    let request = if request.method() == Method::POST {
        match csrf::check(request, &session).await {
            Ok(request) => request,
            Err(refused) => return refused.into_response(),
        }
    } else {
        request
    };
    let mut request = request;
    let actor = Actor::new(session.principal.operator.clone(), client_address(&request));
    request.extensions_mut().insert(actor);
    request.extensions_mut().insert(session);
    next.run(request).await
}

/// Whether the signed-in operator may use `method` on console `route`
/// (what a page offers follows the same table the layer enforces).
pub fn may(session: &Session, method: &str, route: &str) -> bool {
    let method: Method = method.parse().unwrap_or(Method::GET);
    match access::console_required(&method, route) {
        Some(Access::Public) => true,
        Some(Access::Role(role)) => session.principal.role.allows(role),
        Some(Access::EnrolmentToken) | None => false,
    }
}
