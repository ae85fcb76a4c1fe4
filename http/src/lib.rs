//! The HTTP edge that Rampart's server (port 7073) and report service (port
//! 7080) share, so that both answer alike:
//!
//! * [`error`]: [`ApiError`], every way a request fails, and its JSON body
//!   `{"error": {"code", "message"}}` with its status code;
//! * [`auth`]: reading the bearer token of a request;
//! * [`extract`]: [`Body`] and [`Params`], extractors whose refusals say
//!   what is wrong with the request.
//!
//! Domain code never sees these types: each service maps its own errors to
//! [`ApiError`] in its API layer.

pub mod auth;
pub mod error;
pub mod extract;

pub use auth::bearer;
pub use error::{parse_id, ApiError};
pub use extract::{Body, Params};

/// A handler's answer: JSON, or an [`ApiError`].
pub type ApiResult<T> = Result<axum::Json<T>, ApiError>;

/// The answer to a path no route serves.
pub async fn no_such_route(message: &'static str) -> ApiError {
    ApiError::NotFound(message.into())
}

/// The answer to a method a route does not take.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method} (see docs/api.md)", uri.path()))
}
