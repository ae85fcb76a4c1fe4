//! [`ApiClient`]: the HTTP conversation with one Rampart server.
//!
//! The client speaks the contract in `docs/api.md`: JSON in and out, a bearer
//! token on every call, and errors as `{"error":{"code","message"}}`. Every
//! answer that is not 2xx becomes an [`ApiError::Refused`] carrying the
//! server's own message, so the operator reads exactly what the server said.
//! A successful [`Answer`] keeps both the parsed JSON, which the tables read,
//! and the body as sent, which `--json` prints with the server's key order.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::sync::OnceCell;

use rampart_shared::{
    tls::{Fingerprint, PinnedVerifier},
    Secret,
};

use crate::defaults::TOKEN_ENV;
use crate::trust::{self, CertificateChanged, KnownServers};

/// How long one request may take, connection included. An operator at a
/// prompt would rather see an error than wait on a server that hangs.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    /// The body parsed; `Value::Null` for an empty (204) answer.
    pub value: Value,
    /// The body exactly as the server sent it (empty for 204).
    pub body: String,
}

/// A failed call, worded for the operator.
#[derive(Debug)]
pub enum ApiError {
    /// No connection could be made (refused, no route, unknown host).
    Unreachable { server: String, cause: String },
    /// Connected (or tried to) but no answer within [`REQUEST_TIMEOUT`].
    TimedOut { server: String },
    /// The server answered with a non-2xx status.
    Refused { status: StatusCode, code: Option<String>, message: String },
    /// A 2xx answer whose body is not JSON: not a Rampart server, or a bug.
    BadAnswer { server: String, cause: String },
    /// The server presented another certificate than the one pinned for it.
    CertificateChanged(CertificateChanged),
    /// The server could not be verified (first contact failed, unreadable
    /// CA file or pins).
    Untrusted { server: String, cause: String },
}

impl ApiError {
    /// The HTTP status, when the server answered at all.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Reads an error answer. A Rampart server sends
    /// `{"error":{"code","message"}}`; anything else (a proxy's HTML page)
    /// is reported by status with the start of its body.
    pub fn from_answer(status: StatusCode, body: &[u8]) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().map(|v| &v["error"]);
        let message = error.and_then(|e| e["message"].as_str()).filter(|m| !m.trim().is_empty());
        let code = error.and_then(|e| e["code"].as_str()).map(str::to_owned);
        let message = match message {
            Some(message) => message.to_owned(),
            None => {
                let body = String::from_utf8_lossy(body);
                let first_line = body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
                let snippet: String = first_line.chars().take(200).collect();
                match (&code, snippet.is_empty()) {
                    (Some(code), _) => format!("the server answered HTTP {status} ({code})"),
                    (None, true) => format!("the server answered HTTP {status}"),
                    (None, false) => format!("the server answered HTTP {status}: {snippet}"),
                }
            }
        };
        Self::Refused { status, code, message }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable { server, cause } => {
                write!(f, "cannot reach the Rampart server at {server}: {cause}")
            }
            Self::TimedOut { server } => {
                write!(f, "the Rampart server at {server} did not answer within {} s", REQUEST_TIMEOUT.as_secs())
            }
            Self::Refused { message, .. } => f.write_str(message),
            Self::BadAnswer { server, cause } => {
                write!(f, "the server at {server} did not answer with Rampart API JSON: {cause}")
            }
            Self::CertificateChanged(changed) => changed.fmt(f),
            Self::Untrusted { server, cause } => write!(f, "cannot verify the Rampart server at {server}: {cause}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// A client for one server's API.
#[derive(Debug)]
pub struct ApiClient {
    /// The API root, e.g. `https://127.0.0.1:7073/`; paths are appended to it.
    base: Url,
    /// Sent as `Authorization: Bearer`; `None` leaves the header out, which
    /// only `GET /health` accepts.
    token: Option<Secret<String>>,
    /// The token is the one `rampartctl login` stored, not one given on the
    /// command line: a refusal of it says to sign in again.
    stored_token: bool,
    /// `--ca-file`: verify an https server with this CA instead of a pin.
    ca_file: Option<PathBuf>,
    /// Made at the first call (a command that calls no server, such as
    /// `license issue`, contacts none).
    connection: OnceCell<Connection>,
}

#[derive(Debug)]
struct Connection {
    http: reqwest::Client,
    /// An https server trusted by its pinned certificate.
    pin: Option<Pin>,
}

/// The pinned certificate an https server must present.
#[derive(Debug)]
struct Pin {
    verifier: Arc<PinnedVerifier>,
    server: String,
    store: KnownServers,
}

impl ApiClient {
    /// A client of a plain `http://` server.
    pub fn new(base: Url, token: Option<Secret<String>>) -> anyhow::Result<Self> {
        anyhow::ensure!(base.scheme() == "http" && base.has_host(), "server address {base} is not an http:// URL");
        Self::with_ca_file(base, token, None)
    }

    /// A client of `base`: plain for `http://`; for `https://` verified with
    /// `ca_file`, or else by the certificate pinned for the server, which is
    /// pinned at first contact (after a `/health` that sends no token).
    pub fn with_ca_file(base: Url, token: Option<Secret<String>>, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https") && base.has_host(),
            "server address {base} is not an http:// or https:// URL"
        );
        Ok(Self {
            base,
            token,
            stored_token: false,
            ca_file: ca_file.map(Path::to_path_buf),
            connection: OnceCell::new(),
        })
    }

    /// Marks the token as the one `rampartctl login` stored for this server.
    pub fn with_stored_token(mut self) -> Self {
        self.stored_token = true;
        self
    }

    async fn connection(&self) -> Result<&Connection, ApiError> {
        self.connection
            .get_or_try_init(|| async {
                self.connect()
                    .await
                    .map_err(|e| ApiError::Untrusted { server: self.server().to_owned(), cause: format!("{e:#}") })
            })
            .await
    }

    async fn connect(&self) -> anyhow::Result<Connection> {
        if self.base.scheme() != "https" {
            return Ok(Connection { http: http_client(None)?, pin: None });
        }
        if let Some(ca_file) = &self.ca_file {
            return Ok(Connection { http: http_client(Some(trust::ca_config(ca_file)?))?, pin: None });
        }
        let store = KnownServers::locate()?;
        let server = trust::server_key(&self.base);
        let verifier = match store.pinned(&server)? {
            Some(fingerprint) => PinnedVerifier::pinned(fingerprint),
            None => {
                let seen = first_contact(&self.base, &server).await?;
                store.pin(&server, seen)?;
                eprintln!(
                    "Pinned the certificate of {server} at first contact: SHA-256 {seen} (stored in {}). \
                     Check it against the fingerprint the server's administrator sees (its /health or start-up log).",
                    store.path.display()
                );
                PinnedVerifier::pinned(seen)
            }
        };
        let http = http_client(Some(verifier.client_config()))?;
        Ok(Connection { http, pin: Some(Pin { verifier, server, store }) })
    }

    /// The fingerprint of the pinned certificate the server presented.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.connection.get()?.pin.as_ref()?.verifier.seen()
    }

    /// The server address as the operator would write it.
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The URL of an API path given as segments (`["api", "endpoints", id]`).
    /// Each segment is percent-encoded, so an id can never change the path.
    pub fn url(&self, path: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.path_segments_mut().expect("an http URL has a path").pop_if_empty().extend(path);
        url
    }

    pub async fn get(&self, path: &[&str], query: &[(&str, String)]) -> Result<Answer, ApiError> {
        self.send(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &[&str], body: &Value) -> Result<Answer, ApiError> {
        self.send(Method::POST, path, &[], Some(body)).await
    }

    pub async fn put(&self, path: &[&str], body: &Value) -> Result<Answer, ApiError> {
        self.send(Method::PUT, path, &[], Some(body)).await
    }

    pub async fn patch(&self, path: &[&str], body: &Value) -> Result<Answer, ApiError> {
        self.send(Method::PATCH, path, &[], Some(body)).await
    }

    pub async fn delete(&self, path: &[&str], body: Option<&Value>) -> Result<Answer, ApiError> {
        self.send(Method::DELETE, path, &[], body).await
    }

    /// A `DELETE` whose options go in the query string (`?purge=true`).
    pub async fn delete_with_query(&self, path: &[&str], query: &[(&str, String)]) -> Result<Answer, ApiError> {
        self.send(Method::DELETE, path, query, None).await
    }

    /// A `GET` whose answer is kept as bytes (a report as CSV or HTML).
    pub async fn get_bytes(&self, path: &[&str], query: &[(&str, String)]) -> Result<Vec<u8>, ApiError> {
        self.send_raw(Method::GET, path, query, None).await
    }

    /// Sends one request and reads the whole answer as JSON.
    async fn send(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, ApiError> {
        let bytes = self.send_raw(method, path, query, body).await?;
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if body.trim().is_empty() {
            return Ok(Answer { value: Value::Null, body });
        }
        let value = serde_json::from_str(&body)
            .map_err(|e| ApiError::BadAnswer { server: self.server().to_owned(), cause: e.to_string() })?;
        Ok(Answer { value, body })
    }

    /// Sends one request; a 2xx answer's body, or the server's refusal.
    async fn send_raw(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Vec<u8>, ApiError> {
        let connection = self.connection().await?;
        let mut request = connection.http.request(method, self.url(path));
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await.map_err(|e| self.transport_error(connection, &e))?;
        let status = answer.status();
        let bytes = answer.bytes().await.map_err(|e| self.transport_error(connection, &e))?;
        if !status.is_success() {
            let mut error = ApiError::from_answer(status, &bytes);
            // A refused sign-in (`POST /api/login`) is about the password, not a token.
            if status == StatusCode::UNAUTHORIZED && path != ["api", "login"] {
                if let ApiError::Refused { message, .. } = &mut error {
                    if self.token.is_none() {
                        message.push_str(&format!(
                            " (no token given: run `rampartctl login`, pass --api-token or set {TOKEN_ENV})"
                        ));
                    } else if self.stored_token {
                        message.push_str(" (the token stored by `rampartctl login` was refused: sign in again)");
                    }
                }
            }
            return Err(error);
        }
        Ok(bytes.to_vec())
    }

    fn transport_error(&self, connection: &Connection, error: &reqwest::Error) -> ApiError {
        if let Some(pin) = &connection.pin {
            if let Some(mismatch) = pin.verifier.mismatch() {
                return ApiError::CertificateChanged(CertificateChanged {
                    server: pin.server.clone(),
                    presented: mismatch.presented,
                    pinned: mismatch.expected,
                    store: pin.store.path.clone(),
                });
            }
        }
        let server = self.server().to_owned();
        if error.is_timeout() {
            return ApiError::TimedOut { server };
        }
        ApiError::Unreachable { server, cause: root_cause(error) }
    }
}

fn http_client(tls: Option<rustls::ClientConfig>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("rampartctl/", env!("CARGO_PKG_VERSION")));
    if let Some(tls) = tls {
        builder = builder.use_preconfigured_tls(tls);
    }
    builder.build().map_err(|e| anyhow::anyhow!("Failed to set up the HTTP client: {e}"))
}

/// The certificate `base` presents to a `GET /health` (no token sent).
async fn first_contact(base: &Url, server: &str) -> anyhow::Result<Fingerprint> {
    let verifier = PinnedVerifier::first_contact();
    let http = http_client(Some(verifier.client_config()))?;
    let mut url = base.clone();
    url.path_segments_mut().map_err(|_| anyhow::anyhow!("{base} cannot have a path"))?.pop_if_empty().push("health");
    let answer = http.get(url).send().await.map_err(|e| match e.is_timeout() {
        true => ApiError::TimedOut { server: server.to_owned() },
        false => ApiError::Unreachable { server: server.to_owned(), cause: root_cause(&e) },
    })?;
    anyhow::ensure!(
        answer.status().is_success(),
        "{server} did not answer /health as a Rampart server: HTTP {}",
        answer.status()
    );
    verifier.seen().ok_or_else(|| anyhow::anyhow!("{server} presented no certificate"))
}

/// The innermost error message: `Connection refused (os error 111)` says more
/// than reqwest's `error sending request for url (...)`.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

#[cfg(test)]
mod tests;
