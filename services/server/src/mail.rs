//! Sending reports by e-mail through the operator's SMTP relay, with
//! `lettre`: its message builder and its SMTP client over rustls.
//!
//! A relay is reached in one of three ways ([`TlsMode`]): in clear (only when
//! the settings say so), upgraded with STARTTLS (required: a relay that does
//! not offer it is refused, never used in clear), or over TLS from the first
//! byte (port 465). The relay's certificate is always checked, against the
//! system's roots plus an optional CA file.
//!
//! [`message`] builds the e-mail, [`tls`] the certificate checks, [`relay`]
//! walks the SMTP dialogue step by step so that an error says which step
//! failed, and [`error`] says it in an operator's words.

mod error;
mod message;
mod relay;
mod tls;

use std::{fmt, path::PathBuf};

use serde::{Deserialize, Serialize};

pub use error::MailError;
pub use tls::check_ca_file;

/// Where and how to hand mail over: the operator's SMTP relay.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// With `password`, enables `AUTH` (PLAIN, else LOGIN).
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: TlsMode,
    /// A PEM file of CA certificates trusted for the relay, besides the
    /// system's roots: for a relay whose certificate comes from a private CA.
    pub ca_file: Option<PathBuf>,
}

/// Hides the password from logs and panics.
impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// How the connection to the relay is protected; `"none"`, `"starttls"` or
/// `"implicit"` in the e-mail settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP: only for a relay on a trusted network.
    None,
    /// Plain SMTP upgraded with STARTTLS before anything else is said
    /// (usually port 587); a relay that does not offer it is refused.
    Starttls,
    /// TLS from the first byte (usually port 465).
    Implicit,
}

impl TlsMode {
    /// The mode meant by the older `starttls` boolean of the settings.
    pub fn from_starttls(starttls: bool) -> Self {
        if starttls {
            TlsMode::Starttls
        } else {
            TlsMode::None
        }
    }

    /// Whether the older `starttls` boolean is true in this mode.
    pub fn is_starttls(self) -> bool {
        self == TlsMode::Starttls
    }
}

/// The name used in the e-mail settings.
impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::None => "none",
            TlsMode::Starttls => "starttls",
            TlsMode::Implicit => "implicit",
        })
    }
}

/// One e-mail: plain bare addresses (`ops@example.com`), a UTF-8 text body.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub attachment: Option<Attachment>,
}

/// A file sent with the mail, such as a rendered report.
#[derive(Clone)]
pub struct Attachment {
    pub filename: String,
    /// A MIME type, e.g. `application/pdf`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Shows the size, not the bytes.
impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("filename", &self.filename)
            .field("content_type", &self.content_type)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// Sends `mail` through the relay in `settings`.
pub async fn send(settings: &SmtpSettings, mail: &Mail) -> Result<(), MailError> {
    let message = message::build(mail)?;
    let tls = tls::parameters(settings)?;
    relay::deliver(settings, tls, &message).await?;
    tracing::info!(recipients = mail.to.len(), subject = %mail.subject, tls = ?settings.tls, "E-mail sent.");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let settings = SmtpSettings {
            host: "relay".into(),
            port: 25,
            username: Some("u".into()),
            password: Some("hunter2".into()),
            tls: TlsMode::Starttls,
            ca_file: None,
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn tls_modes_read_and_written_in_lowercase() {
        let modes: Vec<TlsMode> = serde_json::from_str(r#"["none", "starttls", "implicit"]"#).unwrap();
        assert_eq!(modes, [TlsMode::None, TlsMode::Starttls, TlsMode::Implicit]);
        for mode in modes {
            assert_eq!(serde_json::to_string(&mode).unwrap(), format!("\"{mode}\""));
        }
        assert!(serde_json::from_str::<TlsMode>(r#""ssl""#).is_err());
        assert_eq!(TlsMode::from_starttls(true), TlsMode::Starttls);
        assert_eq!(TlsMode::from_starttls(false), TlsMode::None);
    }
}
