//! `report.xml`: the report service's one typed settings tree.
//!
//! ```xml
//! <Report>
//!   <Database><Url>postgres://root@127.0.0.1:5432/rampart_reports</Url></Database>
//!   <Broker><Url>amqp://guest:guest@127.0.0.1:5672/%2f</Url><Namespace>rampart</Namespace></Broker>
//!   <Api><Listen>127.0.0.1:7080</Listen><TokenFile>report.token</TokenFile></Api>
//!   <EventKeyFile>events.key</EventKeyFile>
//!   <Master><Url>https://127.0.0.1:7073</Url><Fingerprint>3f1c…</Fingerprint></Master>
//! </Report>
//! ```
//!
//! The event key is the master's `<Reports><EventKey>`: events signed with
//! anything else are dead-lettered. The API token is what the master's
//! `<Reports><ServiceToken>` holds. The same environment overrides as the
//! server apply (`RAMPART_DATABASE_URL`, `RAMPART_AMQP_URL`,
//! `RAMPART_NAMESPACE`, `RAMPART_API_LISTEN`, `RAMPART_API_TOKEN`).
//!
//! `<Master>` (optional) lets the master's operators read reports here with
//! their own tokens: the report service asks that master who a token
//! belongs to ([`crate::operators`]). `<Fingerprint>` is the SHA-256 of the
//! master's API certificate (its `/health` shows it); required with
//! `https://`. Overrides: `RAMPART_MASTER_URL`, `RAMPART_MASTER_FINGERPRINT`.

use std::{net::SocketAddr, path::Path};

use rampart_shared::tls::Fingerprint;
use rampart_shared::{
    config::{secret_value, ConfigError},
    service_config::{ApiXml, BrokerXml, DatabaseXml, Defaults, LogXml, Sections, ServiceSettings},
    Secret,
};
use serde::Deserialize;

use crate::operators::MasterSettings;

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
    master: Option<MasterXml>,
    log: Option<LogXml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct MasterXml {
    url: String,
    fingerprint: Option<String>,
}

pub const ENV_MASTER_URL: &str = "RAMPART_MASTER_URL";
pub const ENV_MASTER_FINGERPRINT: &str = "RAMPART_MASTER_FINGERPRINT";

/// Validated settings of the report service.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Database, broker, API and logging.
    pub service: ServiceSettings,
    pub event_key: Secret<String>,
    /// Whose operators may sign in with their own tokens.
    pub master: Option<MasterSettings>,
}

impl Settings {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = rampart_shared::config::read(path, rampart_shared::config::MAX_FILE_BYTES)?;
        Self::parse(&text, |name| std::env::var(name).ok(), path.parent())
    }

    /// Parses `text`; `env` supplies overrides; relative files are resolved
    /// against `base_dir`.
    pub fn parse(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
        base_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let xml: ReportXml = rampart_shared::config::parse(text, "Report")?;
        let defaults = Defaults {
            pool_size: 8,
            max_pool_size: 100,
            prefetch: 200,
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
        };
        let sections = Sections { database: xml.database, broker: xml.broker, api: xml.api, log: xml.log };
        let service = ServiceSettings::check("Report", sections, &defaults, &env, base_dir)?;
        let event_key =
            secret_value("<Report>", "EventKey", xml.event_key, xml.event_key_file, base_dir)?.ok_or_else(|| {
                ConfigError::invalid("<Report>", "the master's event key is required: <EventKey> or <EventKeyFile>")
            })?;
        if event_key.expose().len() < 16 {
            return Err(ConfigError::invalid("<Report>/<EventKey>", "the event key must be at least 16 characters"));
        }
        let master = master_settings(xml.master, &env)?;
        Ok(Self { service, event_key, master })
    }
}

/// `<Master>` with its environment overrides, checked.
fn master_settings(
    xml: Option<MasterXml>,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<MasterSettings>, ConfigError> {
    let url = env(ENV_MASTER_URL).or_else(|| xml.as_ref().map(|m| m.url.clone()));
    let Some(url) = url.map(|u| u.trim().trim_end_matches('/').to_owned()) else {
        return Ok(None);
    };
    let fingerprint = env(ENV_MASTER_FINGERPRINT).or_else(|| xml.and_then(|m| m.fingerprint));
    let fingerprint = fingerprint
        .map(|text| {
            Fingerprint::parse(&text).ok_or_else(|| {
                ConfigError::invalid(
                    "<Report>/<Master>/<Fingerprint>",
                    "must be the SHA-256 of the master's certificate, 64 hex digits (its /health shows it)",
                )
            })
        })
        .transpose()?;
    if url.starts_with("https://") && fingerprint.is_none() {
        return Err(ConfigError::invalid(
            "<Report>/<Master>",
            "an https:// master needs <Fingerprint>, the SHA-256 of its certificate (its /health shows it)",
        ));
    }
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(ConfigError::invalid("<Report>/<Master>/<Url>", "must be an https:// (or http://) URL"));
    }
    Ok(Some(MasterSettings { url, fingerprint }))
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
        assert_eq!(s.service.api_listen.port(), DEFAULT_PORT);
        assert_eq!(s.service.namespace.as_str(), "rampart");
        assert!(!format!("{s:?}").contains("fedcba9876543210fedc"), "the event key stays out of logs");
    }

    #[test]
    fn errors_name_the_element() {
        assert!(
            error(&MINIMAL.replace("<EventKey>fedcba9876543210fedc</EventKey>", "")).contains("event key is required")
        );
        assert!(error(&MINIMAL.replace("fedcba9876543210fedc", "short")).starts_with("<Report>/<EventKey>"));
        assert!(error(&MINIMAL.replace("</Report>", "<Colour/></Report>")).contains("Colour"));
        assert!(error(&MINIMAL.replace("<Prefetch>", "").replace("</Broker>", "<Prefetch>none</Prefetch></Broker>"))
            .starts_with("<Report>/<Broker>/<Prefetch>"));
        let e = error(&format!("<!DOCTYPE Report [<!ENTITY x \"y\">]>{MINIMAL}"));
        assert!(e.contains("DOCTYPE"), "{e}");
    }

    #[test]
    fn a_master_over_https_needs_its_fingerprint() {
        let with = |master: &str| MINIMAL.replace("</Report>", &format!("{master}</Report>"));
        assert!(Settings::parse(MINIMAL, |_| None, None).unwrap().master.is_none());
        let e = error(&with("<Master><Url>https://hq:7073</Url></Master>"));
        assert!(e.starts_with("<Report>/<Master>") && e.contains("Fingerprint"), "{e}");
        let e = error(&with("<Master><Url>https://hq:7073</Url><Fingerprint>abc</Fingerprint></Master>"));
        assert!(e.starts_with("<Report>/<Master>/<Fingerprint>"), "{e}");
        let hex = "ab".repeat(32);
        let xml = with(&format!("<Master><Url>https://hq:7073/</Url><Fingerprint>{hex}</Fingerprint></Master>"));
        let master = Settings::parse(&xml, |_| None, None).unwrap().master.unwrap();
        assert_eq!(master.url, "https://hq:7073");
        assert_eq!(master.fingerprint.unwrap().to_string(), hex);
        let env = |name: &str| (name == ENV_MASTER_URL).then(|| "http://hq:7073".to_owned());
        assert_eq!(Settings::parse(MINIMAL, env, None).unwrap().master.unwrap().url, "http://hq:7073");
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/config/report.xml");
        let text = std::fs::read_to_string(&path).unwrap();
        Settings::parse(&text, |_| None, path.parent()).unwrap_or_else(|e| panic!("report.xml: {e}"));
    }
}
