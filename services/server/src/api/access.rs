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
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every (method, path) the files of `src/<folder>` declare with `.route(...)`.
    fn declared_routes_in(folder: &str) -> BTreeSet<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(folder);
        let mut routes = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for call in text.split(".route(\"").skip(1) {
                let Some((route, rest)) = call.split_once('"') else { continue };
                // The methods: `get(`, `.post(`, ... up to the end of this call.
                let mut depth = 1;
                let end = rest
                    .char_indices()
                    .find(|&(_, c)| {
                        depth += match c {
                            '(' => 1,
                            ')' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(rest.len(), |(i, _)| i);
                let body = &rest[..end];
                for method in ["get", "post", "put", "patch", "delete"] {
                    let called = body
                        .match_indices(&format!("{method}("))
                        .any(|(i, _)| i == 0 || !body[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
                    if called {
                        routes.insert((method.to_uppercase(), route.to_owned()));
                    }
                }
            }
        }
        routes
    }

    /// Every (method, path) the api files declare.
    fn declared_routes() -> BTreeSet<(String, String)> {
        let mut routes = declared_routes_in("api");
        // Outside `/api`: no bearer token (health, metrics, the server-to-server registration).
        routes.retain(|(_, p)| !matches!(p.as_str(), "/health" | "/metrics"));
        routes
    }

    #[test]
    fn every_console_route_has_an_entry_and_every_entry_a_route() {
        let declared = declared_routes_in("console");
        assert!(declared.len() > 10, "the route scan found too little: {declared:?}");
        let missing: Vec<_> =
            declared.iter().filter(|(m, p)| console_required(&m.parse().unwrap(), p).is_none()).collect();
        assert!(missing.is_empty(), "console routes without an entry in the access table: {missing:?}");
        let stale: Vec<_> =
            CONSOLE_TABLE.iter().filter(|(m, p, _)| !declared.contains(&(m.to_string(), p.to_string()))).collect();
        assert!(stale.is_empty(), "console access table entries without a route: {stale:?}");
    }

    #[test]
    fn the_console_needs_what_the_api_needs_for_the_same_change() {
        // Console form -> the API route that makes the same change.
        let same = [
            ("/policies", "POST", "/policies"),
            ("/policies/{id}/delete", "DELETE", "/policies/{id}"),
            ("/tasks", "POST", "/tasks"),
            ("/tasks/{id}/cancel", "POST", "/tasks/{id}/cancel"),
            ("/hierarchy/register", "POST", "/hierarchy/register"),
            ("/hierarchy/unregister", "POST", "/hierarchy/unregister"),
            ("/slaves/{id}/replicate", "POST", "/slaves/{id}/replicate"),
            ("/slaves/{id}/verify", "POST", "/verifications"),
            ("/slaves/{id}/remove", "DELETE", "/slaves/{id}"),
            ("/registration-tokens", "POST", "/registration-tokens"),
            ("/groups", "POST", "/groups"),
            ("/groups/{id}/rename", "PATCH", "/groups/{id}"),
            ("/groups/{id}/delete", "DELETE", "/groups/{id}"),
            ("/groups/move", "POST", "/endpoints/{id}/move"),
            ("/deployments", "POST", "/deployments"),
            ("/settings/email", "PUT", "/settings/email"),
            ("/license", "PUT", "/license"),
        ];
        for (method, path, access) in CONSOLE_TABLE {
            if *method == "GET" {
                if *access != Public {
                    assert_eq!(*access, AUDITOR, "{method} {path}");
                }
                continue;
            }
            if matches!(*path, "/sign-in" | "/sign-out" | "/tree-view") {
                continue;
            }
            let Some((_, api_method, api_path)) = same.iter().find(|(p, _, _)| p == path) else {
                panic!("console form {method} {path} names no API route that makes the same change");
            };
            assert_eq!(required(&api_method.parse().unwrap(), api_path), Some(*access), "{method} {path}");
        }
    }

    #[test]
    fn every_declared_route_has_an_entry_and_every_entry_a_route() {
        let declared = declared_routes();
        assert!(declared.len() > 40, "the route scan found too little: {declared:?}");
        let missing: Vec<_> = declared.iter().filter(|(m, p)| required(&m.parse().unwrap(), p).is_none()).collect();
        assert!(missing.is_empty(), "routes without an entry in the access table: {missing:?}");
        let stale: Vec<_> =
            TABLE.iter().filter(|(m, p, _)| !declared.contains(&(m.to_string(), p.to_string()))).collect();
        assert!(stale.is_empty(), "access table entries without a route: {stale:?}");
    }

    #[test]
    fn reading_needs_an_auditor_and_changing_more() {
        for (method, path, access) in TABLE {
            if *method == "GET" && !matches!(*path, "/operators") {
                assert_eq!(*access, AUDITOR, "{method} {path}");
            } else if *path != "/login" && !path.starts_with("/tokens") {
                assert_ne!(*access, AUDITOR, "{method} {path}: a change an auditor could make");
            }
        }
        assert_eq!(required(&Method::HEAD, "/policies"), Some(AUDITOR));
        assert_eq!(required(&Method::GET, "/nowhere"), None);
    }

    #[test]
    fn a_refusal_names_the_role_needed() {
        let p = Principal { operator: "carol".into(), role: OperatorRole::Auditor, token: None };
        let message = refusal(&p, OperatorRole::Operator).to_string();
        assert!(message.contains("needs the operator role"), "{message}");
        assert!(message.contains("'carol' is an auditor"), "{message}");
    }
}
