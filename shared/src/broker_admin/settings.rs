//! `<Broker><Management>`: where the management API is and who may use it.
//!
//! ```xml
//! <Broker>
//!   <Url>amqp://rampart.server.paris:…@127.0.0.1:5672/%2f</Url>
//!   <Management>
//!     <Url>http://127.0.0.1:15672</Url>
//!     <CredentialsFile>/etc/rampart/broker-admin.credentials</CredentialsFile>
//!   </Management>
//! </Broker>
//! ```
//!
//! The credentials file holds one line, `user:password`, of a broker user
//! with the `administrator` tag (`ops/services` writes `.rampart/broker-admin.credentials`).

use std::path::Path;

use serde::Deserialize;

use super::ManagementClient;
use crate::{config::ConfigError, Secret};

/// `<Management>` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ManagementXml {
    pub url: String,
    pub credentials_file: String,
}

/// The management API and the administrator's credentials, validated.
#[derive(Clone, Debug)]
pub struct ManagementSettings {
    pub url: String,
    pub user: String,
    pub password: Secret<String>,
}

impl ManagementSettings {
    /// Checks `xml`; `at` is the element's path for errors, e.g.
    /// `<Server>/<Broker>/<Management>`; a relative credentials file is
    /// resolved against `base_dir`.
    pub fn check(at: &str, xml: ManagementXml, base_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let url = xml.url.trim().trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::invalid(format!("{at}/<Url>"), "must be an http:// or https:// URL"));
        }
        let (user, password) = read_credentials(&resolve(&xml.credentials_file, base_dir))
            .map_err(|e| ConfigError::invalid(format!("{at}/<CredentialsFile>"), e))?;
        Ok(Self { url, user, password })
    }

    /// A client of the management API with these credentials.
    pub fn client(&self) -> super::Result<ManagementClient> {
        ManagementClient::new(&self.url, &self.user, self.password.clone())
    }
}

/// `file`, relative to `base_dir` when it is relative.
pub fn resolve(file: &str, base_dir: Option<&Path>) -> std::path::PathBuf {
    match base_dir {
        Some(dir) if Path::new(file).is_relative() => dir.join(file),
        _ => file.into(),
    }
}

/// The `user:password` line of the credentials file at `path`.
pub fn read_credentials(path: &Path) -> Result<(String, Secret<String>), String> {
    let text = crate::config::read(path, crate::config::MAX_SECRET_BYTES).map_err(|e| e.to_string())?;
    parse_credentials(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// `amqp_url` with the user and password of the credentials file at `path`
/// (whatever user the URL named is replaced), so no password needs to sit
/// in a URL, a command line or an environment variable.
pub fn url_with_credentials_file(amqp_url: &str, path: &Path) -> Result<Secret<String>, String> {
    let (name, password) = read_credentials(path)?;
    let url = super::grants::url_with_user(amqp_url, &super::NewUser { name, password })
        .map_err(|e| format!("the broker URL is {e}"))?;
    Ok(Secret::new(url))
}

/// `user:password` on one line (the password may contain `:`).
pub fn parse_credentials(text: &str) -> Result<(String, Secret<String>), String> {
    let line = text.trim();
    let (user, password) = line.split_once(':').ok_or_else(|| "must hold one line 'user:password'".to_owned())?;
    if user.is_empty() || password.is_empty() || line.contains('\n') {
        return Err("must hold one line 'user:password'".into());
    }
    Ok((user.to_owned(), Secret::new(password.to_owned())))
}

/// The vhost an `amqp://` URL names: its percent-decoded path, `/` when it
/// names none (as RabbitMQ clients read it).
pub fn vhost_of(amqp_url: &str) -> String {
    let rest = amqp_url.split_once("://").map_or(amqp_url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    match rest.split_once('/') {
        Some((_, path)) if !path.is_empty() => percent_decode(path),
        _ => "/".into(),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_one_user_password_line() {
        let (user, password) = parse_credentials("rampart-admin:a:b\n").unwrap();
        assert_eq!((user.as_str(), password.expose().as_str()), ("rampart-admin", "a:b"));
        assert!(parse_credentials("nocolon").is_err());
        assert!(parse_credentials(":pw").is_err());
        assert!(parse_credentials("a:b\nc:d").is_err());
    }

    #[test]
    fn the_vhost_comes_from_the_url_path() {
        assert_eq!(vhost_of("amqp://u:p@127.0.0.1:5672/%2f"), "/");
        assert_eq!(vhost_of("amqp://u:p@127.0.0.1:5672"), "/");
        assert_eq!(vhost_of("amqp://u:p@127.0.0.1:5672/"), "/");
        assert_eq!(vhost_of("amqp://u:p@h/site-a?heartbeat=5"), "site-a");
    }

    #[test]
    fn a_missing_credentials_file_names_the_element() {
        let xml = ManagementXml { url: "http://127.0.0.1:15672".into(), credentials_file: "/nonexistent/x".into() };
        let error = ManagementSettings::check("<Server>/<Broker>/<Management>", xml, None).unwrap_err();
        assert!(error.to_string().contains("<Server>/<Broker>/<Management>/<CredentialsFile>"), "{error}");
        let xml = ManagementXml { url: "ftp://x".into(), credentials_file: "x".into() };
        let error = ManagementSettings::check("<S>/<Management>", xml, None).unwrap_err();
        assert!(error.to_string().contains("<S>/<Management>/<Url>"), "{error}");
    }

    #[test]
    fn a_credentials_file_replaces_the_urls_user() {
        let path = std::env::temp_dir().join(format!("rampart-broker-credentials-{}", std::process::id()));
        std::fs::write(&path, "rampart.server.paris:pa/ss\n").unwrap();
        let url = url_with_credentials_file("amqp://guest:guest@127.0.0.1:5672/%2f", &path).unwrap();
        assert_eq!(url.expose(), "amqp://rampart.server.paris:pa%2Fss@127.0.0.1:5672/%2f");
        let url = url_with_credentials_file("amqp://127.0.0.1:5672/%2f", &path).unwrap();
        assert_eq!(url.expose(), "amqp://rampart.server.paris:pa%2Fss@127.0.0.1:5672/%2f");
        std::fs::write(&path, "no-colon").unwrap();
        let error = url_with_credentials_file("amqp://127.0.0.1/%2f", &path).unwrap_err();
        assert!(error.contains(&path.display().to_string()), "{error}");
        std::fs::remove_file(&path).unwrap();
    }
}
