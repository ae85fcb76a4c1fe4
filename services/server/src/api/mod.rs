//! The HTTP API on port 7073: routes, who may call them ([`access`]), JSON errors.
//!
//! Every route is documented in `docs/api.md`. Handlers live by concept:
//! [`fleet`] (endpoints, groups, virtual groups, tree), [`policies`],
//! [`tasks`], [`views`] (status, dashboard, detections, audit),
//! [`admin`] (deployments, settings, license), [`agents`] (enrolment tokens,
//! enrolment, agent identities), [`hierarchy`] (tokens,
//! slaves, registering), [`fanout`] (policies and tasks on a master) and
//! [`replication`] (replicate now, verify), [`reports`] and [`operators`]
//! (sign-in, accounts, tokens, the activity log). The web console
//! (`crate::console`) is mounted on the same router, at `/` and `/console`.

pub mod access;
mod admin;
mod agents;
mod consolidated;
mod fanout;
mod fleet;
mod hierarchy;
pub mod listener;
mod metrics;
mod operators;
mod policies;
mod replication;
mod reports;
mod site_key;
mod tasks;
mod views;

use axum::{
    extract::Request,
    http::Method,
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
    Router,
};

pub use listener::{PeerAddress, TlsListener};
pub use rampart_http::{ApiError, ApiResult, Body, Params};

use crate::{
    role::{Feature, Role},
    state::SharedState,
};

/// `parse_id` as the handlers use it (`error::parse_id`).
mod error {
    pub use rampart_http::parse_id;
}

pub fn router(state: SharedState) -> Router {
    // The one place where the role decides: a master for life, or a site
    // (stand-alone or slave, which it may turn into at run time).
    let role = state.role();
    let api = match role {
        Role::Master => master_api(),
        Role::Standalone | Role::Slave => site_api(),
    };
    let api = api
        .fallback(|| rampart_http::no_such_route("no such API route"))
        .method_not_allowed_fallback(rampart_http::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(state.clone(), access::authorize));
    Router::new()
        .route("/health", get(views::health))
        .route("/metrics", get(metrics::metrics))
        // Server to server: the registration token in the body is the credential.
        .route(rampart_shared::hierarchy::REGISTER_PATH, post(hierarchy::accept_registration))
        // Server to server: the proof under the slave's key is the credential.
        .route(rampart_shared::site_link::CANCEL_REGISTRATION_PATH, post(hierarchy::cancel_registration))
        .nest("/api", api)
        .merge(crate::console::router(state.clone(), role))
        .fallback(|| async {
            ApiError::NotFound("no such page: the console is at /console, the API under /api (see docs/api.md)".into())
        })
        .method_not_allowed_fallback(rampart_http::method_not_allowed)
        .with_state(state)
}

/// Routes a master and a site both serve: the site features, which a
/// master refuses before their handlers run.
fn common_api() -> Router<SharedState> {
    Router::new()
        .merge(admin::routes())
        .merge(agents::routes())
        .merge(reports::schedule_routes())
        .merge(operators::routes())
}

/// A master's API: its slaves, their copies, the consolidated reports; the
/// site features it does not have are refused before anything is parsed.
fn master_api() -> Router<SharedState> {
    common_api()
        .merge(views::master_routes())
        .merge(consolidated::master_routes())
        .merge(fanout::master_routes())
        .merge(site_key::master_routes())
        .merge(hierarchy::master_routes())
        .merge(replication::master_routes())
        .merge(reports::master_routes())
        .layer(middleware::from_fn(refuse_site_features))
}

/// A stand-alone's or slave's API: its own computers.
fn site_api() -> Router<SharedState> {
    common_api()
        .merge(views::site_routes())
        .merge(fleet::site_routes())
        .merge(policies::site_routes())
        .merge(tasks::site_routes())
        .merge(hierarchy::site_routes())
        .merge(replication::site_routes())
        .merge(reports::site_routes())
        .merge(site_key::site_routes())
}

/// Refuses on a master, before anything is parsed, a request for a site
/// feature (a layer of the master's API only).
async fn refuse_site_features(request: Request, next: Next) -> Result<Response, ApiError> {
    if let Some(feature) = fleet_feature(request.method(), request.uri().path()) {
        Role::Master.check(feature).map_err(ApiError::FeatureUnavailable)?;
    }
    Ok(next.run(request).await)
}

/// The fleet-only feature a request belongs to, if any (paths relative to `/api`).
fn fleet_feature(method: &Method, path: &str) -> Option<Feature> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let reading = method == Method::GET;
    match segments.as_slice() {
        ["dashboard"] => Some(Feature::Dashboard),
        ["audit"] => Some(Feature::NetworkAudit),
        ["license"] => Some(Feature::Registration),
        ["reports", "schedules", ..] => Some(Feature::ScheduledReports),
        ["groups", ..] if !reading => Some(Feature::NetworkBuilder),
        ["endpoints", _, "move"] => Some(Feature::NetworkBuilder),
        ["deployments"] if reading => Some(Feature::DeploymentStatus),
        ["deployments", ..] => Some(Feature::DeploymentTool),
        ["settings", "auto-deploy"] => Some(Feature::AutomaticDeployment),
        ["settings", "email"] => Some(Feature::EmailSettings),
        ["agents", ..] => Some(Feature::AgentIdentities),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_features_are_found_by_route() {
        assert_eq!(fleet_feature(&Method::GET, "/dashboard"), Some(Feature::Dashboard));
        assert_eq!(fleet_feature(&Method::GET, "/groups"), None);
        assert_eq!(fleet_feature(&Method::POST, "/groups"), Some(Feature::NetworkBuilder));
        assert_eq!(fleet_feature(&Method::DELETE, "/groups/3"), Some(Feature::NetworkBuilder));
        assert_eq!(fleet_feature(&Method::POST, "/endpoints/ep-1/move"), Some(Feature::NetworkBuilder));
        assert_eq!(fleet_feature(&Method::GET, "/deployments"), Some(Feature::DeploymentStatus));
        assert_eq!(fleet_feature(&Method::POST, "/deployments"), Some(Feature::DeploymentTool));
        assert_eq!(fleet_feature(&Method::PUT, "/settings/email"), Some(Feature::EmailSettings));
        assert_eq!(fleet_feature(&Method::GET, "/policies"), None);
        assert_eq!(fleet_feature(&Method::POST, "/agents/enrol"), Some(Feature::AgentIdentities));
    }
}
