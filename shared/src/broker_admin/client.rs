//! The HTTP plumbing: one authenticated client, bounded calls, and the
//! mapping of every failure to an [`AdminError`].

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{de::DeserializeOwned, Serialize};

use super::{AdminError, Result};
use crate::Secret;

/// Longest a management call may take unless the client says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest broker reason quoted in an error.
const MAX_REASON: usize = 300;

/// A client of one broker's management API, authenticated as a user with
/// the `administrator` tag. Cheap to clone.
#[derive(Clone)]
pub struct ManagementClient {
    /// `http://host:port`, without a trailing slash.
    base: String,
    user: String,
    password: Secret<String>,
    http: reqwest::Client,
    /// Bound of each call, connection included.
    timeout: Duration,
}

impl std::fmt::Debug for ManagementClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementClient").field("url", &self.base).field("user", &self.user).finish_non_exhaustive()
    }
}

impl ManagementClient {
    /// A client of the management API at `url` (`http://127.0.0.1:15672`);
    /// does not call the broker yet.
    pub fn new(url: &str, user: &str, password: Secret<String>) -> Result<Self> {
        let base = url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() <= "https://".len() {
            return Err(AdminError::Invalid(format!("'{base}' is not an http:// or https:// URL")));
        }
        if user.is_empty() {
            return Err(AdminError::Invalid("the administrator's user name is empty".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(DEFAULT_TIMEOUT)
            .build()
            .map_err(|e| AdminError::Invalid(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { base, user: user.to_owned(), password, http, timeout: DEFAULT_TIMEOUT })
    }

    /// The same client with another bound on each call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The management URL, for logs and errors.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// `GET /api/...`, the answer as `T`.
    pub(super) async fn get<T: DeserializeOwned>(&self, call: &str, path: &str) -> Result<T> {
        let body = self.send(call, Method::GET, path, None::<&()>, None).await?;
        serde_json::from_slice(&body).map_err(|e| AdminError::Unreadable {
            call: call.to_owned(),
            url: self.base.clone(),
            reason: e.to_string(),
        })
    }

    /// `PUT /api/...` with a JSON body.
    pub(super) async fn put(&self, call: &str, path: &str, body: &impl Serialize) -> Result<()> {
        self.send(call, Method::PUT, path, Some(body), None).await.map(drop)
    }

    /// `DELETE /api/...`.
    pub(super) async fn delete(&self, call: &str, path: &str) -> Result<()> {
        self.delete_with_reason(call, path, None).await
    }

    /// `DELETE /api/...`, telling the broker why (`X-Reason`, which it
    /// passes on to a closed connection's client).
    pub(super) async fn delete_with_reason(&self, call: &str, path: &str, reason: Option<&str>) -> Result<()> {
        self.send(call, Method::DELETE, path, None::<&()>, reason).await.map(drop)
    }

    async fn send(
        &self,
        call: &str,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        reason: Option<&str>,
    ) -> Result<Vec<u8>> {
        let url = format!("{}{path}", self.base);
        let mut request =
            self.http.request(method, &url).basic_auth(&self.user, Some(self.password.expose())).timeout(self.timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        if let Some(reason) = reason {
            request = request.header("X-Reason", reason);
        }
        let failed = |e: reqwest::Error| {
            if e.is_timeout() {
                AdminError::Timeout { call: call.to_owned(), url: self.base.clone(), seconds: self.timeout.as_secs() }
            } else {
                AdminError::Unreachable { call: call.to_owned(), url: self.base.clone(), reason: cause_chain(&e) }
            }
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(failed)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let reason = broker_reason(&bytes);
        let (call, url) = (call.to_owned(), self.base.clone());
        Err(match status {
            StatusCode::UNAUTHORIZED => AdminError::Unauthorized { call, url, user: self.user.clone(), reason },
            StatusCode::NOT_FOUND => AdminError::NotFound { call, url, reason },
            _ => AdminError::Refused { call, url, status: status.as_u16(), reason },
        })
    }
}

/// The broker's `reason` from an error body, or the start of the body.
fn broker_reason(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Failure {
        error: Option<String>,
        reason: Option<String>,
    }
    let text = match serde_json::from_slice::<Failure>(body) {
        Ok(Failure { reason: Some(reason), .. }) => reason,
        Ok(Failure { error: Some(error), .. }) => error,
        _ => String::from_utf8_lossy(body).trim().to_owned(),
    };
    let mut text: String = text.chars().take(MAX_REASON).collect();
    if text.is_empty() {
        text.push_str("no reason given");
    }
    text
}

/// The error and its sources, e.g. "error sending request: connection refused".
fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One path segment, percent-encoded (`/` the default vhost becomes `%2F`).
pub(super) fn segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("/"), "%2F");
        assert_eq!(segment("rampart.server.paris"), "rampart.server.paris");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn the_broker_reason_is_quoted() {
        assert_eq!(broker_reason(br#"{"error":"not_found","reason":"Object Not Found"}"#), "Object Not Found");
        assert_eq!(broker_reason(b"plain"), "plain");
        assert_eq!(broker_reason(b""), "no reason given");
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(ManagementClient::new("amqp://x", "admin", Secret::new("p".into())).is_err());
        let client = ManagementClient::new("http://127.0.0.1:15672/", "admin", Secret::new("s3cret".into())).unwrap();
        assert_eq!(client.url(), "http://127.0.0.1:15672");
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
