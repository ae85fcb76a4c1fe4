//! Extractors whose refusals are JSON errors that say what is wrong: a body
//! ([`Body`]) and a query string ([`Params`]).
//!
//! A body must be sent as `application/json` (else 415), fit the 2 MiB
//! limit (413), be valid JSON (400) and a JSON object (422), hold no NUL
//! character in its text (422: PostgreSQL cannot store one, and no name or
//! address needs one), and match the route's fields (422 naming the field).
//!
//! An oversized body is read to its end (up to [`DRAIN_BYTES`], for at most
//! [`DRAIN_TIME`]) and thrown away before the 413 goes out: answering while
//! the client is still sending makes the connection close under it, and the
//! client sees a reset instead of the answer.

use std::time::Duration;

use axum::{
    extract::{rejection::JsonRejection, FromRequest, FromRequestParts, Query, Request},
    http::{header, request::Parts, HeaderMap},
    Json,
};
use futures_util::StreamExt;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::ApiError;

/// Largest body a route reads.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Most of an oversized body read and dropped before answering 413.
pub const DRAIN_BYTES: usize = 64 * 1024 * 1024;
/// Longest an oversized body is read before answering 413.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// A JSON object body, checked as the module says.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        if !json_content_type(request.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON, with 'Content-Type: application/json'".into(),
            ));
        }
        let bytes = read_body(request.into_body()).await?;
        if let Err(e) = serde_json::from_slice::<IgnoredAny>(&bytes) {
            return Err(ApiError::BadRequest(format!("the body is not valid JSON: {e}")));
        }
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::Invalid("the body must be a JSON object, {...}".into()));
        }
        if holds_nul(&bytes) {
            return Err(ApiError::Invalid(
                "the body holds a NUL character (\\u0000) in a string; names, addresses and settings cannot contain one".into(),
            ));
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(Body(value)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::Invalid(e.body_text())),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// The body, or a 413 once more than [`MAX_BODY_BYTES`] arrived (the rest
/// drained as the module says).
async fn read_body(body: axum::body::Body) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    let mut received = 0usize;
    let unreadable = |e: axum::Error| ApiError::BadRequest(format!("the request body could not be read: {e}"));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(unreadable)?;
        received += chunk.len();
        if received > MAX_BODY_BYTES {
            let drained = tokio::time::timeout(DRAIN_TIME, async {
                while received <= DRAIN_BYTES {
                    match stream.next().await {
                        Some(Ok(more)) => received += more.len(),
                        _ => break,
                    }
                }
            });
            let _ = drained.await;
            return Err(ApiError::PayloadTooLarge(format!(
                "the request body is over the {MAX_BODY_BYTES}-byte limit of this API"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// `application/json` or `application/<anything>+json`, as axum's `Json` accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether valid JSON text holds the escape `\u0000` inside a string (raw
/// control characters are not valid JSON, so this is the only way in).
fn holds_nul(json: &[u8]) -> bool {
    let (mut in_string, mut i) = (false, 0);
    while i < json.len() {
        match json[i] {
            b'"' => in_string = !in_string,
            b'\\' if in_string => {
                if json[i + 1..].starts_with(b"u0000") {
                    return true;
                }
                i += 1; // the escaped character
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// A query string; wrong or unknown parameters, and NUL characters, are a
/// 400 naming them.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(ApiError::BadRequest("query parameters cannot contain a NUL character (%00)".into()));
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nul_escapes_in_strings_only() {
        assert!(holds_nul(br#"{"name": "a\u0000b"}"#));
        assert!(holds_nul(br#"{"a\u0000": 1}"#));
        assert!(!holds_nul(br#"{"name": "a\\u0000b"}"#), "an escaped backslash, then text");
        assert!(!holds_nul(br#"{"name": "a\"\u0041"}"#));
        assert!(!holds_nul(br#"{"name": "plain"}"#));
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            json_content_type(&h)
        };
        assert!(
            with("application/json") && with("application/json; charset=utf-8") && with("application/merge-patch+json")
        );
        assert!(!with("text/plain") && !with("application/xml") && !json_content_type(&HeaderMap::new()));
    }
}
