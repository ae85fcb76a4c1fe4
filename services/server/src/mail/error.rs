//! What went wrong in sending an e-mail, said for the operator who has to
//! fix the e-mail settings or the relay: which step failed, where, and why.

use std::{error::Error as StdError, path::PathBuf};

use lettre::transport::smtp::Error as SmtpError;
use rustls::{CertificateError, Error as TlsError};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot connect to the mail server at {address}: {reason}")]
    Connect { address: String, reason: String },
    /// The TLS handshake failed: most often the relay's certificate is not
    /// trusted or does not name the host in the settings.
    #[error("the TLS handshake with the mail server at {address} failed: {reason}")]
    Tls { address: String, reason: String },
    #[error(
        "the mail server at {address} does not offer STARTTLS, which the e-mail settings require; nothing was sent \
         (set tls to \"implicit\" for a relay that speaks TLS from the start, such as on port 465)"
    )]
    StarttlsUnavailable { address: String },
    #[error("the mail server refused the user name or password of {user:?}: {reply}")]
    Authentication { user: String, reply: String },
    /// The server's answer at `step` was a refusal.
    #[error("the mail server refused {step}: {reply}")]
    Protocol { step: &'static str, reply: String },
    #[error("the connection to the mail server failed during {step}: {reason}")]
    Connection { step: &'static str, reason: String },
    #[error("the mail server did not answer {step} within the time limit")]
    Timeout { step: &'static str },
    #[error("the CA file {} in the e-mail settings cannot be used: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    /// An address that would break the SMTP dialogue or the headers.
    #[error("{address:?} is not a usable e-mail address (no spaces, line breaks or angle brackets)")]
    InvalidAddress { address: String },
    #[error("the e-mail has no recipients")]
    NoRecipients,
    #[error("the e-mail cannot be built: {0}")]
    Message(String),
}

impl MailError {
    /// The error of a refused or failed `step` on an open connection.
    pub(super) fn at_step(step: &'static str, error: SmtpError) -> Self {
        match refusal(&error) {
            Some(reply) => MailError::Protocol { step, reply },
            None => MailError::Connection { step, reason: reason(&error) },
        }
    }

    /// The error of opening the connection (TCP, implicit TLS, greeting and
    /// EHLO) or of the STARTTLS upgrade.
    pub(super) fn opening(address: &str, step: &'static str, error: SmtpError) -> Self {
        let address = address.to_owned();
        if let Some(reason) = tls_problem(&error) {
            return MailError::Tls { address, reason };
        }
        match refusal(&error) {
            Some(reply) => MailError::Protocol { step, reply },
            None if step == "connect" => MailError::Connect { address, reason: reason(&error) },
            None => MailError::Connection { step, reason: reason(&error) },
        }
    }
}

/// The server's negative reply (`550 5.1.1 ...`), if that is what `error` is.
pub(super) fn refusal(error: &SmtpError) -> Option<String> {
    let code = error.status()?;
    let text = error.source().map(ToString::to_string).unwrap_or_default();
    Some(format!("{code} {text}").trim_end().to_owned())
}

/// `error` and its causes, without lettre's repetitions.
pub(super) fn reason(error: &SmtpError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

/// What rustls said about the handshake, if it failed there, in plain words.
fn tls_problem(error: &SmtpError) -> Option<String> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = next {
        let tls = e.downcast_ref::<TlsError>().or_else(|| {
            e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref())
        });
        if let Some(tls) = tls {
            return Some(describe(tls));
        }
        next = e.source();
    }
    error.is_tls().then(|| reason(error))
}

fn describe(error: &TlsError) -> String {
    let certificate = match error {
        TlsError::InvalidCertificate(problem) => problem,
        other => return other.to_string(),
    };
    let what = match certificate {
        CertificateError::UnknownIssuer => {
            "the relay's certificate is not signed by a trusted CA (neither the system's roots nor the ca_file of \
             the e-mail settings)"
                .to_owned()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the relay's certificate does not name the smtp_host of the e-mail settings".to_owned()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the relay's certificate has expired".to_owned()
        }
        CertificateError::Revoked => "the relay's certificate is revoked".to_owned(),
        other => format!("the relay's certificate is refused ({other:?})"),
    };
    format!("{what}: {error}")
}
