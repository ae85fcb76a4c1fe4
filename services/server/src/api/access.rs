//! Who may call which route: one table over the route table (method + path
//! -> the role it needs), and the layer in front of every `/api` route that
//! resolves the bearer token to an operator, checks the table and hands the
//! handlers the acting [`Actor`]. A route missing from the table is refused
//! to everyone (the unit test below finds such a route by reading the
//! route declarations; `tests/tests/roles.rs` walks every route with every
//! role on a master and a site).

use axum::{
    extract::{ConnectInfo, MatchedPath, Request, State},
    http::{header, Method},
    middleware::Next,
    response::Response,
};

use rampart_http::ApiError;

use super::listener::PeerAddress;
use crate::{
    operators::{
        tokens::{self, Principal, TokenError},
        Actor, OperatorRole,
    },
    state::SharedState,
};

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No token: signing in.
    Public,
    /// A token of an operator with at least this role.
    Role(OperatorRole),
    /// No bearer token: the enrolment token in the body is the credential,
    /// checked by the domain (an agent process enrolling).
    EnrolmentToken,
}

use Access::{EnrolmentToken, Public};
const AUDITOR: Access = Access::Role(OperatorRole::Auditor);
const OPERATOR: Access = Access::Role(OperatorRole::Operator);
const ADMINISTRATOR: Access = Access::Role(OperatorRole::Administrator);

/// Every `/api` route of a master and of a site (paths relative to `/api`,
/// as the routers declare them). Reading needs an auditor; changing
/// policies, tasks, groups, deployments, reports and agents (enrolment
/// tokens, revocation) an operator; the
/// hierarchy, the license, the e-mail settings and the operators an administrator.
pub const TABLE: &[(&str, &str, Access)] = &[
    ("POST", "/login", Public),
    ("GET", "/me", AUDITOR),
    ("GET", "/tokens", AUDITOR),
    ("DELETE", "/tokens/{id}", AUDITOR),
    ("GET", "/operators", ADMINISTRATOR),
    ("POST", "/operators", ADMINISTRATOR),
    ("PATCH", "/operators/{name}", ADMINISTRATOR),
    ("GET", "/activity", AUDITOR),
    ("GET", "/agents", AUDITOR),
    ("POST", "/agents/enrol", EnrolmentToken),
    ("GET", "/agents/enrolment-tokens", AUDITOR),
    ("POST", "/agents/enrolment-tokens", OPERATOR),
    ("DELETE", "/agents/enrolment-tokens/{id}", OPERATOR),
    ("GET", "/agents/{id}", AUDITOR),
    ("POST", "/agents/{id}/revoke", OPERATOR),
    ("GET", "/status", AUDITOR),
    ("GET", "/site-key", AUDITOR),
    ("GET", "/dashboard", AUDITOR),
    ("GET", "/detections", AUDITOR),
    ("GET", "/audit", AUDITOR),
    ("GET", "/refused-messages", AUDITOR),
    ("GET", "/tree", AUDITOR),
    ("GET", "/endpoints", AUDITOR),
    ("GET", "/endpoints/{id}", AUDITOR),
    ("POST", "/endpoints/{id}/move", OPERATOR),
    ("GET", "/groups", AUDITOR),
    ("POST", "/groups", OPERATOR),
    ("PATCH", "/groups/{id}", OPERATOR),
    ("DELETE", "/groups/{id}", OPERATOR),
    ("GET", "/virtual-groups", AUDITOR),
    ("POST", "/virtual-groups", OPERATOR),
    ("DELETE", "/virtual-groups/{id}", OPERATOR),
    ("GET", "/virtual-groups/{id}/members", AUDITOR),
    ("POST", "/virtual-groups/{id}/members", OPERATOR),
    ("DELETE", "/virtual-groups/{id}/members", OPERATOR),
    ("GET", "/policies", AUDITOR),
    ("POST", "/policies", OPERATOR),
    ("GET", "/policies/{id}", AUDITOR),
    ("PATCH", "/policies/{id}", OPERATOR),
    ("DELETE", "/policies/{id}", OPERATOR),
    ("POST", "/policies/{id}/assignments", OPERATOR),
    ("DELETE", "/policies/{id}/assignments", OPERATOR),
    ("GET", "/tasks", AUDITOR),
    ("POST", "/tasks", OPERATOR),
    ("GET", "/tasks/{id}", AUDITOR),
    ("POST", "/tasks/{id}/cancel", OPERATOR),
    ("GET", "/deployments", AUDITOR),
    ("POST", "/deployments", OPERATOR),
    ("GET", "/settings/auto-deploy", AUDITOR),
    ("PUT", "/settings/auto-deploy", OPERATOR),
    ("GET", "/settings/email", AUDITOR),
    ("PUT", "/settings/email", ADMINISTRATOR),
    ("GET", "/license", AUDITOR),
    ("PUT", "/license", ADMINISTRATOR),
    ("GET", "/reports/{kind}", AUDITOR),
    ("POST", "/reports/resend", OPERATOR),
    ("GET", "/reports/schedules", AUDITOR),
    ("POST", "/reports/schedules", OPERATOR),
    ("DELETE", "/reports/schedules/{id}", OPERATOR),
    ("POST", "/reports/schedules/{id}/run", OPERATOR),
    ("GET", "/registration-tokens", AUDITOR),
    ("POST", "/registration-tokens", ADMINISTRATOR),
    ("GET", "/slaves", AUDITOR),
    ("GET", "/slaves/{id}", AUDITOR),
    ("DELETE", "/slaves/{id}", ADMINISTRATOR),
    ("POST", "/slaves/{id}/replicate", ADMINISTRATOR),
    ("GET", "/hierarchy", AUDITOR),
    ("POST", "/hierarchy/register", ADMINISTRATOR),
    ("POST", "/hierarchy/unregister", ADMINISTRATOR),
    ("GET", "/replication", AUDITOR),
    ("POST", "/replication/now", ADMINISTRATOR),
    ("POST", "/verifications", ADMINISTRATOR),
    ("GET", "/verifications/{id}", AUDITOR),
];

/// Every page and form of the web console (paths relative to `/console`,
/// as `console/` declares them): the same roles as the API routes that do
/// the same thing. Signing in and the script and style need no session.
pub const CONSOLE_TABLE: &[(&str, &str, Access)] = &[
    ("GET", "/", AUDITOR),
    ("GET", "/sign-in", Public),
    ("POST", "/sign-in", Public),
    ("POST", "/sign-out", AUDITOR),
    ("GET", "/assets/{file}", Public),
    // The operator's own choice of view, not a change to the server.
    ("POST", "/tree-view", AUDITOR),
    ("GET", "/tree/children", AUDITOR),
    ("GET", "/computers", AUDITOR),
    ("GET", "/computers/{id}", AUDITOR),
    ("GET", "/policies", AUDITOR),
    ("POST", "/policies", OPERATOR),
    ("GET", "/policies/{id}", AUDITOR),
    ("POST", "/policies/{id}/delete", OPERATOR),
    ("GET", "/tasks", AUDITOR),
    ("GET", "/tasks/{id}", AUDITOR),
    ("POST", "/tasks", OPERATOR),
    ("POST", "/tasks/{id}/cancel", OPERATOR),
    ("GET", "/hierarchy", AUDITOR),
    ("POST", "/hierarchy/register", ADMINISTRATOR),
    ("POST", "/hierarchy/unregister", ADMINISTRATOR),
    ("GET", "/slaves", AUDITOR),
    ("POST", "/slaves/{id}/replicate", ADMINISTRATOR),
    ("POST", "/slaves/{id}/verify", ADMINISTRATOR),
    ("POST", "/slaves/{id}/remove", ADMINISTRATOR),
    ("GET", "/verifications/{id}", AUDITOR),
    ("POST", "/registration-tokens", ADMINISTRATOR),
    ("GET", "/dashboard", AUDITOR),
    ("GET", "/audit", AUDITOR),
    ("GET", "/groups", AUDITOR),
    ("POST", "/groups", OPERATOR),
    ("POST", "/groups/{id}/rename", OPERATOR),
    ("POST", "/groups/{id}/delete", OPERATOR),
    ("POST", "/groups/move", OPERATOR),
    ("GET", "/deployments", AUDITOR),
    ("POST", "/deployments", OPERATOR),
    ("GET", "/settings/email", AUDITOR),
    ("POST", "/settings/email", ADMINISTRATOR),
    ("GET", "/license", AUDITOR),
    ("POST", "/license", ADMINISTRATOR),
    ("GET", "/activity", AUDITOR),
    ("GET", "/reports", AUDITOR),
    ("GET", "/reports/{kind}", AUDITOR),
    ("GET", "/refused-messages", AUDITOR),
];

/// What `method` on route `path` (relative to `/api`) needs; `None` when
/// the route is not in the table.
pub fn required(method: &Method, path: &str) -> Option<Access> {
    lookup(TABLE, method, path)
}

/// What `method` on console route `path` (relative to `/console`) needs.
pub fn console_required(method: &Method, path: &str) -> Option<Access> {
    lookup(CONSOLE_TABLE, method, path)
}

fn lookup(table: &[(&str, &str, Access)], method: &Method, path: &str) -> Option<Access> {
    let method = if method == Method::HEAD { "GET" } else { method.as_str() };
    table.iter().find(|(m, p, _)| *m == method && *p == path).map(|(_, _, access)| *access)
}

/// The refusal of `principal` for an action that needs `needed`.
pub fn refusal(principal: &Principal, needed: OperatorRole) -> ApiError {
    ApiError::Forbidden(format!(
        "this action needs the {needed} role; operator '{}' is an {}",
        principal.operator, principal.role
    ))
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Unknown | TokenError::Revoked | TokenError::Expired(_) | TokenError::Disabled(_) => {
                Self::Unauthorized(e.to_string())
            }
            TokenError::NotFound(_) => Self::NotFound(e.to_string()),
            TokenError::NotYours(_) => Self::Forbidden(e.to_string()),
            TokenError::BadTtl => Self::Invalid(e.to_string()),
            TokenError::Database(e) => e.into(),
            TokenError::Pool(e) => e.into(),
        }
    }
}

/// The address a request came from, as the activity log records it.
#[derive(Clone, Debug)]
pub struct ClientAddress(pub Option<String>);

fn client_address(request: &Request) -> Option<String> {
    request.extensions().get::<ConnectInfo<PeerAddress>>().map(|c| c.0 .0.ip().to_string())
}

/// The layer in front of every `/api` route (a `route_layer`, so after routing).
pub async fn authorize(
    State(state): State<SharedState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let route = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let path = route.strip_prefix("/api").unwrap_or(&route);
    let address = client_address(&request);
    request.extensions_mut().insert(ClientAddress(address.clone()));
    let needed = match required(request.method(), path) {
        Some(Access::Public | Access::EnrolmentToken) => return Ok(next.run(request).await),
        Some(Access::Role(role)) => role,
        // A method the route does not take (answered 405 after the token
        // check): the unit test below proves every method a route takes has
        // its entry.
        None if TABLE.iter().any(|(_, p, _)| *p == path) => OperatorRole::Auditor,
        None => {
            return Err(ApiError::Forbidden(format!(
                "{} {path} has no entry in the access table; it is refused to everyone",
                request.method()
            )))
        }
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let Some(presented) = presented else {
        return Err(ApiError::Unauthorized(
            "send 'Authorization: Bearer <token>' (a personal token from rampartctl login, or the API token of server.xml)"
                .into(),
        ));
    };
    let principal = tokens::resolve(&state, &presented).await?;
    if !principal.role.allows(needed) {
        return Err(refusal(&principal, needed));
    }
    let actor = Actor::new(principal.operator.clone(), address);
    request.extensions_mut().insert(actor);
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests;
