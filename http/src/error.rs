//! API errors as JSON: one enum, its status codes and its body
//! `{"error": {"code", "message"}}`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

/// Every way a request can fail; the message is meant for a person.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    FeatureUnavailable(String),
    #[error("{0}")]
    ReadOnly(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    /// Another server this one depends on failed or refused.
    #[error("{0}")]
    BadGateway(String),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The status code this error answers with (the console renders it as a page).
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::FeatureUnavailable(_) => (StatusCode::CONFLICT, "feature_unavailable"),
            Self::ReadOnly(_) => (StatusCode::CONFLICT, "read_only"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::BadGateway(_) => (StatusCode::BAD_GATEWAY, "bad_gateway"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            Self::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "Request failed.");
                "internal error; see the server log".to_owned()
            }
            other => other.to_string(),
        };
        let mut response =
            (status, Json(serde_json::json!({ "error": { "code": code, "message": message } }))).into_response();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of an oversized body may still be on its way.
            response
                .headers_mut()
                .insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
                Self::Conflict(e.as_db_error().and_then(|d| d.detail()).unwrap_or("already exists").to_owned())
            }
            _ if rampart_shared::db::is_transient(&e) => Self::Unavailable(format!("the database is unavailable: {e}")),
            // Class 22, data exception: a value the database cannot take
            // (a NUL character, a number out of range), so the request's fault.
            Some(c) if c.code().starts_with("22") => {
                let message = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string());
                tracing::warn!(error = %message, "The database refused a value of a request.");
                Self::Invalid(format!("a value of the request is not acceptable: {message}"))
            }
            _ => Self::Internal(e.into()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Unavailable(format!("the database is unavailable: {e}"))
    }
}

/// Parses a path id, naming what was expected.
pub fn parse_id<T: std::str::FromStr>(raw: &str, what: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(format!("no {what} '{raw}' (not a valid {what} id)")))
}
