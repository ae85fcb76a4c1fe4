//! What can go wrong talking to the management API.

/// A failed management call: which call, against which URL, and why. No
/// variant carries a password.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The management API could not be reached (refused, DNS, TLS, reset).
    #[error("the broker's management API at {url} is unreachable ({call}): {reason}")]
    Unreachable { call: String, url: String, reason: String },
    /// The call did not finish within the client's timeout.
    #[error("the broker's management API at {url} did not answer {call} within {seconds} s")]
    Timeout { call: String, url: String, seconds: u64 },
    /// The administrator's user name or password was refused (HTTP 401).
    #[error("the broker's management API at {url} refused the credentials of '{user}' ({call}): {reason}")]
    Unauthorized { call: String, url: String, user: String, reason: String },
    /// The object does not exist (HTTP 404).
    #[error("{call} at {url}: not found ({reason})")]
    NotFound { call: String, url: String, reason: String },
    /// Any other refusal: the HTTP status and the broker's own reason.
    #[error("{call} at {url} was refused with HTTP {status}: {reason}")]
    Refused { call: String, url: String, status: u16, reason: String },
    /// The broker answered something this client cannot read.
    #[error("{call} at {url}: unreadable answer: {reason}")]
    Unreadable { call: String, url: String, reason: String },
    /// A caller's mistake caught before any call (e.g. a bad URL).
    #[error("invalid broker administration request: {0}")]
    Invalid(String),
}

impl AdminError {
    /// Whether the object the call named does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

pub type Result<T> = std::result::Result<T, AdminError>;
