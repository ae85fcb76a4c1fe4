//! `report.xml`: the report service's one typed settings tree.
//!
//! ```xml
//! <Report>
//!   <Database><Url>postgres://root@127.0.0.1:5432/rampart_reports</Url></Database>
//!   <Broker><Url>amqp://guest:guest@127.0.0.1:5672/%2f</Url><Namespace>rampart</Namespace></Broker>
//!   <Api><Listen>127.0.0.1:7080</Listen><TokenFile>report.token</TokenFile></Api>
//!   <EventKeyFile>events.key</EventKeyFile>
//! </Report>
//! ```
//!
//! The event key is the master's `<Reports><EventKey>`: events signed with
//! anything else are dead-lettered. The API token is what the master's
//! `<Reports><ServiceToken>` holds. The same environment overrides as the
//! server apply (`RAMPART_DATABASE_URL`, `RAMPART_AMQP_URL`,
//! `RAMPART_NAMESPACE`, `RAMPART_API_LISTEN`, `RAMPART_API_TOKEN`).

use std::{net::SocketAddr, path::Path};

use rampart_shared::{
    config::{secret_value, ConfigError},
    telemetry::LogFormat,
    topology::NameSegment,
    Secret,
};
use serde::Deserialize;

/// Default port of the report service's API.
pub const DEFAULT_PORT: u16 = 7080;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ReportXml {
    database: DatabaseXml,
    broker: BrokerXml,
    #[serde(default)]
    api: ApiXml,
    event_key: Option<Secret<String>>,
    event_key_file: Option<String>,
    log: Option<LogXml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct DatabaseXml {
    url: Secret<String>,
    pool_size: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct BrokerXml {
    url: Secret<String>,
    namespace: Option<NameSegment>,
    prefetch: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ApiXml {
    listen: Option<SocketAddr>,
    token: Option<Secret<String>>,
    token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct LogXml {
    format: Option<LogFormat>,
    level: Option<String>,
}

/// Validated settings of the report service.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: Secret<String>,
    pub database_pool_size: usize,
    pub amqp_url: Secret<String>,
    pub namespace: NameSegment,
    pub prefetch: u16,
    pub api_listen: SocketAddr,
    pub api_token: Secret<String>,
    pub event_key: Secret<String>,
    pub log_format: LogFormat,
    pub log_level: String,
}

impl Settings {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Io { path: path.display().to_string(), source })?;
        Self::parse(&text, |name| std::env::var(name).ok(), path.parent())
    }

    /// Parses `text`; `env` supplies overrides; relative files are resolved
    /// against `base_dir`.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>, base_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let xml: ReportXml = rampart_shared::config::parse(text, "Report")?;
        let api_token = match env("RAMPART_API_TOKEN") {
            Some(token) => Secret::new(token),
            None => secret_value("<Report>/<Api>", "Token", xml.api.token, xml.api.token_file, base_dir)?
                .ok_or_else(|| ConfigError::invalid("<Report>/<Api>", "an API token is required: <Token> or <TokenFile>"))?,
        };
        if api_token.expose().len() < 16 {
            return Err(ConfigError::invalid("<Report>/<Api>/<Token>", "the API token must be at least 16 characters"));
        }
        let event_key = secret_value("<Report>", "EventKey", xml.event_key, xml.event_key_file, base_dir)?.ok_or_else(|| {
            ConfigError::invalid("<Report>", "the master's event key is required: <EventKey> or <EventKeyFile>")
        })?;
        if event_key.expose().len() < 16 {
            return Err(ConfigError::invalid("<Report>/<EventKey>", "the event key must be at least 16 characters"));
        }
        let database_url = env("RAMPART_DATABASE_URL").map(Secret::new).unwrap_or(xml.database.url);
        let url_ok = database_url.expose().starts_with("postgres://") || database_url.expose().starts_with("postgresql://");
        if !url_ok || rampart_shared::db::database_name(database_url.expose()).is_err() {
            return Err(ConfigError::invalid("<Report>/<Database>/<Url>", "must be a postgres:// URL naming a database"));
        }
        let database_pool_size = xml.database.pool_size.unwrap_or(8);
        if !(2..=100).contains(&database_pool_size) {
            return Err(ConfigError::invalid("<Report>/<Database>/<PoolSize>", "must be between 2 and 100"));
        }
        let amqp_url = env("RAMPART_AMQP_URL").map(Secret::new).unwrap_or(xml.broker.url);
        if !amqp_url.expose().starts_with("amqp://") && !amqp_url.expose().starts_with("amqps://") {
            return Err(ConfigError::invalid("<Report>/<Broker>/<Url>", "must be an amqp:// URL"));
        }
        let namespace = match env("RAMPART_NAMESPACE") {
            Some(ns) => NameSegment::parse(&ns).map_err(|e| ConfigError::invalid("RAMPART_NAMESPACE", e))?,
            None => xml.broker.namespace.unwrap_or_else(|| NameSegment::parse("rampart").expect("valid")),
        };
        let prefetch = xml.broker.prefetch.unwrap_or(200);
        if prefetch == 0 {
            return Err(ConfigError::invalid("<Report>/<Broker>/<Prefetch>", "must be at least 1"));
        }
        let api_listen = match env("RAMPART_API_LISTEN") {
            Some(addr) => addr
                .parse()
                .map_err(|e| ConfigError::invalid("RAMPART_API_LISTEN", format!("'{addr}' is not an address:port: {e}")))?,
            None => xml.api.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))),
        };
        let log = xml.log.unwrap_or(LogXml { format: None, level: None });
        Ok(Self {
            database_url,
            database_pool_size,
            amqp_url,
            namespace,
            prefetch,
            api_listen,
            api_token,
            event_key,
            log_format: log.format.unwrap_or_default(),
            log_level: log.level.unwrap_or_else(|| "info".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"<Report>
  <Database><Url>postgres://root@127.0.0.1:5432/rampart_reports</Url></Database>
  <Broker><Url>amqp://guest:guest@127.0.0.1:5672/%2f</Url></Broker>
  <Api><Token>0123456789abcdef0123</Token></Api>
  <EventKey>fedcba9876543210fedc</EventKey>
</Report>"#;

    fn error(text: &str) -> String {
        Settings::parse(text, |_| None, None).unwrap_err().to_string()
    }

    #[test]
    fn defaults_apply() {
        let s = Settings::parse(MINIMAL, |_| None, None).unwrap();
        assert_eq!(s.api_listen.port(), DEFAULT_PORT);
        assert_eq!(s.namespace.as_str(), "rampart");
        assert!(!format!("{s:?}").contains("fedcba9876543210fedc"), "the event key stays out of logs");
    }

    #[test]
    fn errors_name_the_element() {
        assert!(error(&MINIMAL.replace("<EventKey>fedcba9876543210fedc</EventKey>", "")).contains("event key is required"));
        assert!(error(&MINIMAL.replace("fedcba9876543210fedc", "short")).starts_with("<Report>/<EventKey>"));
        assert!(error(&MINIMAL.replace("</Report>", "<Colour/></Report>")).contains("Colour"));
        assert!(error(&MINIMAL.replace("<Prefetch>", "").replace("</Broker>", "<Prefetch>none</Prefetch></Broker>"))
            .starts_with("<Report>/<Broker>/<Prefetch>"));
        let e = error(&format!("<!DOCTYPE Report [<!ENTITY x \"y\">]>{MINIMAL}"));
        assert!(e.contains("DOCTYPE"), "{e}");
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/config/report.xml");
        let text = std::fs::read_to_string(&path).unwrap();
        Settings::parse(&text, |_| None, path.parent()).unwrap_or_else(|e| panic!("report.xml: {e}"));
    }
}
