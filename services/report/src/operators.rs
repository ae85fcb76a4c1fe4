//! Operators of the master, signed in here with their own tokens.
//!
//! The report service keeps no operator accounts: the master does. A bearer
//! token that is not the service token (`<Api><Token>`, what the master's
//! forwarding sends) is shown to the master named by `<Master>` in
//! `report.xml`, on `GET /api/me`, over TLS pinned to the master's
//! certificate fingerprint (as `rampartctl` and registration pin it). What
//! the master answers is kept for [`CACHE_FOR`], keyed by the token's
//! SHA-256 (never the token), so a revoked token stops working here within
//! that time. Every operator role may read reports.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use rampart_shared::tls::{Fingerprint, PinnedVerifier};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How long the master's answer about a token is trusted.
pub const CACHE_FOR: Duration = Duration::from_secs(30);
/// Tokens remembered at most; the cache starts again empty when full.
const CACHE_ENTRIES: usize = 4096;

/// `<Master>` of `report.xml`, validated.
#[derive(Clone, Debug)]
pub struct MasterSettings {
    /// `https://host:7073` (or `http://` where the master serves plain HTTP).
    pub url: String,
    /// The master's certificate; required with `https://`.
    pub fingerprint: Option<Fingerprint>,
}

/// An operator the master vouched for.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Operator {
    pub operator: String,
    pub role: String,
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The master refused the token; its own words.
    #[error("the master refused the token: {0}")]
    Refused(String),
    #[error("the token could not be checked with the master at {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

/// Checks operators' tokens with the master, remembering its answers.
pub struct OperatorCheck {
    url: String,
    http: reqwest::Client,
    cache: Mutex<HashMap<[u8; 32], (Operator, Instant)>>,
}

impl OperatorCheck {
    pub fn new(settings: &MasterSettings) -> Result<Self, reqwest::Error> {
        let builder =
            reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).timeout(Duration::from_secs(10));
        let builder = match settings.fingerprint {
            Some(fingerprint) => builder.use_preconfigured_tls(PinnedVerifier::pinned(fingerprint).client_config()),
            None => builder,
        };
        Ok(Self { url: settings.url.clone(), http: builder.build()?, cache: Mutex::default() })
    }

    /// The operator `token` belongs to, as the master says.
    pub async fn operator(&self, token: &str) -> Result<Operator, CheckError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(operator) = self.cached(&key) {
            return Ok(operator);
        }
        let unreachable = |reason: String| CheckError::Unreachable { url: self.url.clone(), reason };
        let response = self
            .http
            .get(format!("{}/api/me", self.url))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(CheckError::Refused(master_message(response).await));
        }
        if !status.is_success() {
            return Err(unreachable(format!("HTTP {status}: {}", master_message(response).await)));
        }
        let operator: Operator =
            response.json().await.map_err(|e| unreachable(format!("an unexpected answer to /api/me: {e}")))?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, (operator.clone(), Instant::now()));
        Ok(operator)
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Operator> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key).filter(|(_, at)| at.elapsed() < CACHE_FOR).map(|(operator, _)| operator.clone())
    }
}

/// The `{"error": {"message"}}` of a master's refusal, or its status.
async fn master_message(response: reqwest::Response) -> String {
    #[derive(Deserialize)]
    struct Body {
        error: Message,
    }
    #[derive(Deserialize)]
    struct Message {
        message: String,
    }
    let status = response.status();
    match response.json::<Body>().await {
        Ok(body) => body.error.message,
        Err(_) => format!("HTTP {status}"),
    }
}
