//! The HTTP API on port 7073: routes, bearer-token auth, JSON errors.
//!
//! Every route is documented in `docs/api.md`. Handlers live by concept:
//! [`fleet`] (endpoints, groups, virtual groups, tree), [`policies`],
//! [`tasks`], [`views`] (status, dashboard, detections, audit),
//! [`admin`] (deployments, settings, license), [`hierarchy`] (tokens,
//! slaves, registering), [`fanout`] (policies and tasks on a master) and
//! [`replication`] (replicate now, verify) and [`reports`].

mod admin;
mod consolidated;
mod error;
mod extract;
mod fanout;
mod fleet;
mod hierarchy;
mod metrics;
mod policies;
mod replication;
mod reports;
mod tasks;
mod views;

use axum::{
    extract::{Request, State},
    http::{header, Method},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
    Json, Router,
};

pub use error::ApiError;
pub use extract::{Body, Params};

use crate::{
    role::{Feature, Role},
    state::SharedState,
};

pub type ApiResult<T> = Result<Json<T>, ApiError>;

pub fn router(state: SharedState) -> Router {
    let fleet = if state.role() == Role::Master {
        views::master_routes().merge(fleet::master_routes())
    } else {
        views::site_routes().merge(fleet::site_routes())
    };
    let api = Router::new()
        .merge(fleet)
        .route("/policies", get(policies::list).post(policies::create))
        .route("/policies/{id}", get(policies::show).patch(policies::edit).delete(policies::delete))
        .route("/policies/{id}/assignments", post(policies::assign).delete(policies::unassign))
        .route("/tasks", get(tasks::list).post(tasks::create))
        .route("/tasks/{id}", get(tasks::show))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/deployments", get(admin::list_deployments).post(admin::deploy))
        .route("/settings/auto-deploy", get(admin::get_auto_deploy).put(admin::put_auto_deploy))
        .route("/settings/email", get(admin::get_email).put(admin::put_email))
        .route("/license", get(admin::get_license).put(admin::put_license))
        .route("/registration-tokens", get(hierarchy::list_tokens).post(hierarchy::create_token))
        .route("/slaves", get(hierarchy::list_slaves))
        .route("/slaves/{id}", get(hierarchy::show_slave).delete(hierarchy::remove_slave))
        .route("/hierarchy", get(hierarchy::show))
        .route("/hierarchy/register", post(hierarchy::register))
        .route("/hierarchy/unregister", post(hierarchy::unregister))
        .route("/slaves/{id}/replicate", post(replication::replicate_slave))
        .route("/replication", get(replication::show))
        .route("/replication/now", post(replication::now))
        .route("/verifications", post(replication::create_verification))
        .route("/verifications/{id}", get(replication::show_verification))
        .route("/reports/resend", post(reports::resend))
        .route("/reports/schedules", get(reports::list_schedules).post(reports::create_schedule))
        .route("/reports/schedules/{id}", axum::routing::delete(reports::delete_schedule))
        .route("/reports/schedules/{id}/run", post(reports::run_schedule))
        .route("/reports/{kind}", get(reports::show))
        .fallback(|| async { ApiError::NotFound("no such API route".into()) })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), refuse_missing_features))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/health", get(views::health))
        .route("/metrics", get(metrics::metrics))
        // Server to server: the registration token in the body is the credential.
        .route(rampart_shared::hierarchy::REGISTER_PATH, post(hierarchy::accept_registration))
        .nest("/api", api)
        .fallback(|| async { ApiError::NotFound("no such page: the API is under /api (see docs/api.md)".into()) })
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method} (see docs/api.md)", uri.path()))
}

/// Refuses requests without the right bearer token.
async fn authorize(State(state): State<SharedState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if state.settings.service.api_token.matches(token) => Ok(next.run(request).await),
        Some(_) => Err(ApiError::Unauthorized("the bearer token is not valid for this server".into())),
        None => {
            Err(ApiError::Unauthorized("send 'Authorization: Bearer <token>' (the API token of server.xml)".into()))
        }
    }
}

/// Refuses, before anything is parsed, a request for a feature this
/// server's role does not have.
async fn refuse_missing_features(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(feature) = fleet_feature(request.method(), request.uri().path()) {
        ApiError::check_feature(state.role(), feature)?;
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
    }
}
