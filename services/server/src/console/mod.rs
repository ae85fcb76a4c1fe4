//! The web console, served at `/` (pages under `/console`) on the API port:
//! server-rendered HTML (`maud`, which escapes every value it is given),
//! one small embedded script and style sheet ([`assets`]), no inline
//! script or style. It calls the domain operations the API calls.
//!
//! * [`session`]: the session cookie, and the layer in front of every page
//!   that resolves it to an operator, checks the console's rows of the
//!   access table (`api/access.rs`) and the CSRF token of every form;
//! * [`layout`]: the page around each view; [`tree`]: the tree on its left
//!   (the instance menu, children loaded when a node is opened);
//! * pages by area: [`sign_in`], [`computers`], [`policies`], [`tasks`],
//!   [`hierarchy`] (register, unregister, registration tokens), [`slaves`]
//!   (replicate now, verify, remove), [`records`] (reports, refused
//!   messages, the activity log), [`site`]
//!   (the dashboard; on a master the site features answer that they are not
//!   available there) and [`features`] (the network audit, and the site
//!   features with forms: [`groups`], [`deployments`], [`email`],
//!   [`license`], which share [`forms`]).
//!
//! Every answer carries the security headers of [`security_headers`].

mod assets;
mod computers;
mod csrf;
mod deployments;
mod email;
mod features;
mod format;
mod forms;
mod groups;
mod hierarchy;
mod layout;
mod license;
mod page;
mod policies;
mod records;
mod session;
mod sign_in;
mod site;
mod slaves;
mod tasks;
mod tree;

use axum::{
    extract::Request,
    http::{header, HeaderValue},
    middleware::{self, Next},
    response::{Redirect, Response},
    routing::{get, post},
    Router,
};
use rampart_http::ApiError;

pub use page::ConsoleError;
pub use session::Session;

use crate::{role::Role, state::SharedState};

/// The Content-Security-Policy of every console answer: nothing inline,
/// nothing from elsewhere, never framed.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self'";

/// The console's routes for a server of `role` (paths relative to `/console`,
/// as in the console's rows of the access table), and `/` leading to them.
pub fn router(state: SharedState, role: Role) -> Router<SharedState> {
    let pages = Router::new()
        .route("/", get(site::home))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/assets/{file}", get(assets::serve))
        .route("/tree-view", post(site::switch_view))
        .route("/tree/children", get(tree::children))
        .route("/computers", get(computers::list))
        .route("/computers/{id}", get(computers::show))
        .route("/policies", get(policies::list).post(policies::create))
        .route("/policies/{id}", get(policies::show))
        .route("/policies/{id}/delete", post(policies::delete))
        .route("/tasks", get(tasks::list).post(tasks::create))
        .route("/tasks/{id}", get(tasks::show))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .merge(records::routes());
    let pages = match role {
        Role::Master => {
            pages.merge(hierarchy::master_routes()).merge(slaves::master_routes()).merge(site::master_routes())
        }
        Role::Standalone | Role::Slave => pages.merge(hierarchy::site_routes()).merge(site::site_routes()),
    };
    let pages = pages
        .fallback(|| async { ConsoleError(ApiError::NotFound("no such console page".into())) })
        .route_layer(middleware::from_fn_with_state(state, session::authorize));
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .nest("/console", pages)
        .layer(middleware::from_fn(security_headers))
}

/// Adds the console's security headers to an answer.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
