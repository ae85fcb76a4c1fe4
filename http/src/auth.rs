//! The bearer-token check in front of a service's `/api` routes.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::header,
    middleware::Next,
    response::Response,
};
use rampart_shared::secret::Secret;

use crate::ApiError;

/// Who accepts which token, and how to say so when it is missing or wrong.
#[derive(Clone)]
pub struct BearerAuth {
    token: Arc<Secret<String>>,
    /// Names the service in a refusal: "this server", "this report service".
    holder: &'static str,
    /// Where the token comes from: "the API token of server.xml".
    source: &'static str,
}

impl BearerAuth {
    pub fn new(token: Secret<String>, holder: &'static str, source: &'static str) -> Self {
        Self { token: Arc::new(token), holder, source }
    }
}

/// Refuses a request without the right `Authorization: Bearer` token (use
/// with `axum::middleware::from_fn_with_state`).
pub async fn authorize(State(auth): State<BearerAuth>, request: Request, next: Next) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if auth.token.matches(token) => Ok(next.run(request).await),
        Some(_) => Err(ApiError::Unauthorized(format!("the bearer token is not valid for {}", auth.holder))),
        None => Err(ApiError::Unauthorized(format!("send 'Authorization: Bearer <token>' ({})", auth.source))),
    }
}
