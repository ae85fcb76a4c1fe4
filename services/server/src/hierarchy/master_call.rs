//! Slave side: a call to the master's API while joining it (the
//! registration) or giving up on joining it (its withdrawal): over TLS to
//! the certificate the registration token names, or plain HTTP without
//! one; the answer read no further than a few KiB, and every failure said
//! as what the operator can do about it ([`CallError`], which the link
//! turns into its own error).

use std::time::Duration;

use rampart_shared::tls::{Fingerprint, PinnedVerifier};
use serde::Serialize;

/// Why a call to the master did not get an answer it could use.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The master was reached and said no, with this HTTP status.
    #[error("the master at {address} refused the registration: {message}")]
    Refused { address: String, message: String, status: u16 },
    /// The master could not be reached, or did not answer as a master.
    #[error("{0}")]
    MasterUnusable(String),
    #[error("the registration could not be sent: {0}")]
    Client(String),
}

/// How long the master may take to answer a registration.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);

/// Sends `request` to `path` of the master over TLS to the certificate
/// `pin`, or over plain HTTP without one; the answer's JSON.
pub(super) async fn call_master(
    address: &str,
    pin: Option<Fingerprint>,
    path: &str,
    request: &impl Serialize,
) -> Result<serde_json::Value, CallError> {
    let builder = reqwest::Client::builder().timeout(REGISTER_TIMEOUT);
    let verifier = pin.map(PinnedVerifier::pinned);
    let (builder, url) = match &verifier {
        Some(verifier) => (builder.use_preconfigured_tls(verifier.client_config()), format!("https://{address}{path}")),
        None => (builder, format!("http://{address}{path}")),
    };
    let http = builder.build().map_err(|e| CallError::Client(e.to_string()))?;
    let response =
        http.post(&url).json(request).send().await.map_err(|e| match verifier.and_then(|v| v.mismatch()) {
            Some(m) => CallError::MasterUnusable(format!(
                "the server at {address} presented a certificate with fingerprint {}, but the registration token \
             expects {}: nothing was sent (a man in the middle, or a master whose certificate changed since \
             the token was made: then make a new token)",
                m.presented, m.expected
            )),
            None => CallError::MasterUnusable(format!("cannot reach the master at {address}: {}", root_cause(&e))),
        })?;
    let status = response.status();
    let body = read_answer(address, response).await?;
    if status.is_success() {
        return Ok(body);
    }
    let Some(message) = body["error"]["message"].as_str() else {
        return Err(CallError::MasterUnusable(format!("{address} did not answer as a Rampart master (HTTP {status})")));
    };
    Err(CallError::Refused { address: address.to_owned(), message: message.to_owned(), status: status.as_u16() })
}

/// The most a master's answer to a registration may hold: keys and ids
/// take a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The answer's JSON, read no further than [`MAX_ANSWER_BYTES`]; what is
/// not JSON reads as `null` (the caller says the address is not a master).
async fn read_answer(address: &str, mut response: reqwest::Response) -> Result<serde_json::Value, CallError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CallError::MasterUnusable(format!("the answer of {address} broke off: {}", root_cause(&e))))?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(CallError::MasterUnusable(format!(
                "{address} answered more than {} KiB: not a Rampart master",
                MAX_ANSWER_BYTES / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(serde_json::from_slice(&body).unwrap_or_default())
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if cause.to_string() == e.to_string() {
        e.to_string()
    } else {
        format!("{e} ({cause})")
    }
}
