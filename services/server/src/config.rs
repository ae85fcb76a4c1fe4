//! `server.xml`: the server's one typed settings tree.
//!
//! ```xml
//! <Server>
//!   <Instance><Name>paris</Name><Role>standalone</Role></Instance>
//!   <Database><Url>postgres://root@127.0.0.1:5432/rampart_paris</Url></Database>
//!   <Broker><Url>amqp://guest:guest@127.0.0.1:5672/%2f</Url><Namespace>rampart</Namespace></Broker>
//!   <Api><Listen>0.0.0.0:7073</Listen><TokenFile>/etc/rampart/api.token</TokenFile></Api>
//!   <ReplicationInterval>1800</ReplicationInterval>
//!   <License><Key>RAMPART1.…</Key></License>
//!   <Agents><RequireIdentity>true</RequireIdentity></Agents>
//! </Server>
//! ```
//!
//! [`Settings::load`] parses, applies environment overrides and validates; any
//! error names the element and the server refuses to start.

use std::{net::SocketAddr, path::Path};

use rampart_shared::{
    config::{secret_value, ConfigError},
    service_config::{ApiXml, BrokerXml, DatabaseXml, Defaults, LogXml, Sections, ServiceSettings},
    topology::NameSegment,
    Secret,
};
use serde::Deserialize;

use crate::tls::{CertificateFiles, TlsSettings, Transport};

mod hierarchy;
pub use hierarchy::HierarchySettings;

/// Default API port (registration and operators).
pub const DEFAULT_API_PORT: u16 = 7073;
/// Default seconds between replication runs.
pub const DEFAULT_REPLICATION_INTERVAL: u64 = 1800;

pub use rampart_shared::service_config::{
    ENV_AMQP_URL, ENV_API_LISTEN, ENV_API_TOKEN, ENV_DATABASE_URL, ENV_NAMESPACE,
};
pub const ENV_REPORT_SERVICE_URL: &str = "RAMPART_REPORT_SERVICE_URL";
pub const ENV_REQUIRE_AGENT_IDENTITY: &str = "RAMPART_REQUIRE_AGENT_IDENTITY";

/// What this instance is configured as. A stand-alone becomes a slave at
/// runtime by registering; that state lives in the database, not here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfiguredRole {
    Standalone,
    Master,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ServerXml {
    instance: InstanceXml,
    database: DatabaseXml,
    broker: BrokerXml,
    #[serde(default)]
    api: ServerApiXml,
    replication_interval: Option<u64>,
    replication_batch_size: Option<u32>,
    license: Option<LicenseXml>,
    endpoints: Option<EndpointsXml>,
    reports: Option<ReportsXml>,
    console: Option<ConsoleXml>,
    agents: Option<AgentsXml>,
    log: Option<LogXml>,
    hierarchy: Option<hierarchy::HierarchyXml>,
}

/// `<Console>`: the web console's sessions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ConsoleXml {
    idle_minutes: Option<u32>,
}

/// `<Console>`, validated.
#[derive(Clone, Debug)]
pub struct ConsoleSettings {
    /// A console session idle this long is over (default 30).
    pub idle_minutes: u32,
}

/// `<Agents>`: how the site treats its agents' messages.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct AgentsXml {
    require_identity: Option<bool>,
}

/// `<Api>`: the shared elements plus the server's transport.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ServerApiXml {
    listen: Option<SocketAddr>,
    token: Option<Secret<String>>,
    token_file: Option<String>,
    tls: Option<TlsXml>,
    plain: Option<bool>,
    plain_registration: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct TlsXml {
    certificate: Option<String>,
    key: Option<String>,
    names: Option<NamesXml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct NamesXml {
    #[serde(default)]
    name: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ReportsXml {
    service_url: Option<String>,
    service_token: Option<Secret<String>>,
    service_token_file: Option<String>,
    event_key: Option<Secret<String>>,
    event_key_file: Option<String>,
    directory: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct InstanceXml {
    name: NameSegment,
    role: Option<ConfiguredRole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct LicenseXml {
    key: Secret<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct EndpointsXml {
    heartbeat_seconds: Option<u64>,
    outdated_after_days: Option<u32>,
}

/// `<Reports>`: the report service of a master, or where a stand-alone or
/// slave writes its scheduled reports.
#[derive(Clone, Debug, Default)]
pub struct ReportSettings {
    /// Master: base URL of the report service its API forwards reports to.
    pub service_url: Option<String>,
    /// Master: the report service's API token.
    pub service_token: Option<Secret<String>>,
    /// Master: signs the events published for the report service; without
    /// it the master publishes none.
    pub event_key: Option<Secret<String>>,
    /// Stand-alone or slave: where scheduled reports are written.
    pub directory: Option<std::path::PathBuf>,
}

/// Validated settings of one server.
#[derive(Clone, Debug)]
pub struct Settings {
    pub instance: NameSegment,
    pub role: ConfiguredRole,
    /// Database, broker, API and logging.
    pub service: ServiceSettings,
    /// Seconds between replication runs (slaves).
    pub replication_interval: u64,
    pub replication_batch_size: u32,
    /// License key installed at start, if given here.
    pub license_key: Option<Secret<String>>,
    /// Seconds between agent heartbeats; an endpoint silent for three is offline.
    pub heartbeat_seconds: u64,
    /// Signatures older than this many days make an endpoint "at risk".
    pub outdated_after_days: u32,
    pub reports: ReportSettings,
    /// `<Api>`: TLS (the default) or plain HTTP.
    pub tls: TlsSettings,
    /// `<Hierarchy>`: links between this site's broker and its master's.
    pub hierarchy: HierarchySettings,
    pub console: ConsoleSettings,
    /// `<Agents><RequireIdentity>` (default true): refuse every agent
    /// message that does not carry the AMQP `user_id` of an enrolled agent
    /// identity. Off, unidentified messages are taken for endpoints no
    /// identity owns (agents that connect with a shared broker user); an
    /// owned endpoint is only ever taken from its owner.
    pub require_agent_identity: bool,
}

impl Settings {
    /// Reads, overrides from the environment, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = rampart_shared::config::read(path, rampart_shared::config::MAX_FILE_BYTES)?;
        Self::parse(&text, |name| std::env::var(name).ok(), path.parent())
    }

    /// Parses `text`; `env` supplies overrides; relative token files are
    /// resolved against `base_dir`.
    pub fn parse(
        text: &str,
        env: impl Fn(&str) -> Option<String>,
        base_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let xml: ServerXml = rampart_shared::config::parse(text, "Server")?;
        let defaults = Defaults {
            pool_size: 16,
            max_pool_size: 200,
            prefetch: 500,
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_API_PORT)),
        };
        let tls = tls_settings(&xml.api, base_dir)?;
        let api = ApiXml { listen: xml.api.listen, token: xml.api.token, token_file: xml.api.token_file };
        let sections = Sections { database: xml.database, broker: xml.broker, api, log: xml.log };
        let service = ServiceSettings::check("Server", sections, &defaults, &env, base_dir)?;
        let replication_interval = xml.replication_interval.unwrap_or(DEFAULT_REPLICATION_INTERVAL);
        if replication_interval < 1 {
            return Err(ConfigError::invalid("<Server>/<ReplicationInterval>", "must be at least 1 second"));
        }
        let replication_batch_size = xml.replication_batch_size.unwrap_or(5000);
        if !(1..=100_000).contains(&replication_batch_size) {
            return Err(ConfigError::invalid("<Server>/<ReplicationBatchSize>", "must be between 1 and 100000"));
        }
        let endpoints = xml.endpoints.unwrap_or(EndpointsXml { heartbeat_seconds: None, outdated_after_days: None });
        let heartbeat_seconds = endpoints.heartbeat_seconds.unwrap_or(30);
        if heartbeat_seconds == 0 {
            return Err(ConfigError::invalid("<Server>/<Endpoints>/<HeartbeatSeconds>", "must be at least 1"));
        }
        let role = xml.instance.role.unwrap_or(ConfiguredRole::Standalone);
        let idle_minutes = xml.console.unwrap_or_default().idle_minutes.unwrap_or(30);
        if !(1..=24 * 60).contains(&idle_minutes) {
            return Err(ConfigError::invalid("<Server>/<Console>/<IdleMinutes>", "must be between 1 and 1440"));
        }
        let mut reports_xml = xml.reports.unwrap_or_default();
        if let Some(url) = env(ENV_REPORT_SERVICE_URL) {
            reports_xml.service_url = Some(url);
        }
        let reports = reports(reports_xml, role, base_dir)?;
        let has_management = service.broker_management.is_some();
        let hierarchy = HierarchySettings::check(xml.hierarchy.unwrap_or_default(), role, has_management)?;
        let require_agent_identity = match env(ENV_REQUIRE_AGENT_IDENTITY) {
            Some(value) => match value.trim() {
                "true" => true,
                "false" => false,
                other => {
                    return Err(ConfigError::invalid(
                        ENV_REQUIRE_AGENT_IDENTITY,
                        format!("'{other}' is not 'true' or 'false'"),
                    ))
                }
            },
            None => xml.agents.and_then(|a| a.require_identity).unwrap_or(true),
        };
        if let Some(license) = &xml.license {
            // Format and signature now, before anything is created; expiry
            // at install, so a configured key that expires later never stops a restart.
            rampart_shared::license::License::verify(license.key.expose(), chrono::NaiveDate::MIN)
                .map_err(|e| ConfigError::invalid("<Server>/<License>/<Key>", e.to_string()))?;
        }
        Ok(Self {
            instance: xml.instance.name,
            role,
            service,
            replication_interval,
            replication_batch_size,
            license_key: xml.license.map(|l| l.key),
            heartbeat_seconds,
            outdated_after_days: endpoints.outdated_after_days.unwrap_or(3),
            reports,
            tls,
            hierarchy,
            console: ConsoleSettings { idle_minutes },
            require_agent_identity,
        })
    }
}

fn tls_settings(xml: &ServerApiXml, base_dir: Option<&Path>) -> Result<TlsSettings, ConfigError> {
    const AT: &str = "<Server>/<Api>";
    let plain = xml.plain.unwrap_or(false);
    let resolve = |p: &str| match base_dir {
        Some(dir) if Path::new(p).is_relative() => dir.join(p),
        _ => p.into(),
    };
    let transport = match (&xml.tls, plain) {
        (Some(_), true) => {
            return Err(ConfigError::invalid(AT, "<Plain>true</Plain> serves plain HTTP: remove <Tls> or <Plain>"))
        }
        (_, true) => Transport::Plain,
        (None, false) => Transport::Tls { files: None, names: Vec::new() },
        (Some(tls), false) => {
            let names = tls.names.as_ref().map(|n| n.name.clone()).unwrap_or_default();
            if let Some(bad) = names.iter().find(|n| n.trim().is_empty() || n.contains(char::is_whitespace)) {
                return Err(ConfigError::invalid(format!("{AT}/<Tls>/<Names>"), format!("'{bad}' is not a host name")));
            }
            let files = match (&tls.certificate, &tls.key) {
                (Some(certificate), Some(key)) => {
                    Some(CertificateFiles { certificate: resolve(certificate), key: resolve(key) })
                }
                (None, None) => None,
                _ => return Err(ConfigError::invalid(format!("{AT}/<Tls>"), "<Certificate> and <Key> go together")),
            };
            Transport::Tls { files, names }
        }
    };
    Ok(TlsSettings { transport, plain_registration: xml.plain_registration.unwrap_or(false) })
}

fn reports(xml: ReportsXml, role: ConfiguredRole, base_dir: Option<&Path>) -> Result<ReportSettings, ConfigError> {
    const AT: &str = "<Server>/<Reports>";
    let service_token = secret_value(AT, "ServiceToken", xml.service_token, xml.service_token_file, base_dir)?;
    let event_key = secret_value(AT, "EventKey", xml.event_key, xml.event_key_file, base_dir)?;
    let directory = xml.directory.map(|d| match base_dir {
        Some(dir) if Path::new(&d).is_relative() => dir.join(d),
        _ => d.into(),
    });
    match role {
        ConfiguredRole::Master if directory.is_some() => {
            return Err(ConfigError::invalid(
                format!("{AT}/<Directory>"),
                "scheduled reports do not exist on a master; its report service makes the consolidated reports",
            ));
        }
        ConfiguredRole::Standalone if xml.service_url.is_some() || event_key.is_some() => {
            return Err(ConfigError::invalid(
                AT,
                "<ServiceUrl> and <EventKey> are for a master: a stand-alone or slave makes its own reports",
            ));
        }
        _ => {}
    }
    if let Some(url) = &xml.service_url {
        if !url.starts_with("http://") {
            return Err(ConfigError::invalid(format!("{AT}/<ServiceUrl>"), format!("'{url}' must be an http:// URL")));
        }
        if service_token.is_none() {
            return Err(ConfigError::invalid(
                AT,
                "<ServiceUrl> needs the report service's API token: <ServiceToken> or <ServiceTokenFile>",
            ));
        }
        if event_key.is_none() {
            return Err(ConfigError::invalid(AT, "<ServiceUrl> needs <EventKey> (or <EventKeyFile>): without events the report service has nothing to report"));
        }
    }
    if event_key.as_ref().is_some_and(|k| k.expose().len() < 16) {
        return Err(ConfigError::invalid(format!("{AT}/<EventKey>"), "the event key must be at least 16 characters"));
    }
    Ok(ReportSettings {
        service_url: xml.service_url.map(|u| u.trim_end_matches('/').to_owned()),
        service_token,
        event_key,
        directory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"<Server>
  <Instance><Name>paris</Name></Instance>
  <Database><Url>postgres://root@127.0.0.1:5432/rampart_paris</Url></Database>
  <Broker><Url>amqp://guest:guest@127.0.0.1:5672/%2f</Url></Broker>
  <Api><Token>0123456789abcdef0123</Token></Api>
</Server>"#;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::parse(text, |_| None, None)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_apply_when_elements_are_absent() {
        let s = parse(MINIMAL).unwrap();
        assert_eq!(s.replication_interval, 1800);
        assert_eq!(s.service.api_listen.port(), 7073);
        assert_eq!(s.service.namespace.as_str(), "rampart");
        assert_eq!(s.role, ConfiguredRole::Standalone);
        assert!(s.license_key.is_none());
        assert!(s.require_agent_identity, "agent identities are required unless said otherwise");
    }

    #[test]
    fn the_management_api_may_come_from_the_environment() {
        use rampart_shared::service_config::{ENV_BROKER_MANAGEMENT_CREDENTIALS_FILE, ENV_BROKER_MANAGEMENT_URL};
        let file = std::env::temp_dir().join(format!("admin-{}.credentials", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, "rampart-admin:pw\n").unwrap();
        let path = file.display().to_string();
        let both = |name: &str| match name {
            ENV_BROKER_MANAGEMENT_URL => Some("http://rabbitmq:15672".to_owned()),
            ENV_BROKER_MANAGEMENT_CREDENTIALS_FILE => Some(path.clone()),
            _ => None,
        };
        let management = Settings::parse(MINIMAL, both, None).unwrap().service.broker_management.unwrap();
        assert_eq!((management.url.as_str(), management.user.as_str()), ("http://rabbitmq:15672", "rampart-admin"));
        let one = |name: &str| (name == ENV_BROKER_MANAGEMENT_URL).then(|| "http://rabbitmq:15672".to_owned());
        let err = Settings::parse(MINIMAL, one, None).unwrap_err().to_string();
        assert!(err.contains("or neither"), "{err}");
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn agent_identities_may_be_switched_off_in_the_file_or_the_environment() {
        let text = MINIMAL.replace("</Server>", "<Agents><RequireIdentity>false</RequireIdentity></Agents></Server>");
        assert!(!parse(&text).unwrap().require_agent_identity);
        let env =
            |value: &'static str| move |name: &str| (name == ENV_REQUIRE_AGENT_IDENTITY).then(|| value.to_owned());
        assert!(!Settings::parse(MINIMAL, env("false"), None).unwrap().require_agent_identity);
        let err = Settings::parse(MINIMAL, env("no"), None).unwrap_err().to_string();
        assert!(err.contains(ENV_REQUIRE_AGENT_IDENTITY) && err.contains("'no'"), "{err}");
    }

    #[test]
    fn the_example_files_are_valid() {
        for file in ["standalone.xml", "lyon.xml", "master.xml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/config").join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let s = Settings::parse(&text, |_| None, path.parent()).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(s.service.api_listen.port(), 7073, "{file}");
        }
    }

    #[test]
    fn reads_every_element() {
        let text = MINIMAL
            .replace(
                "</Server>",
                "<ReplicationInterval>60</ReplicationInterval><Log><Format>json</Format></Log></Server>",
            )
            .replace("<Name>paris</Name>", "<Name>hq</Name><Role>master</Role>");
        let s = parse(&text).unwrap();
        assert_eq!(s.replication_interval, 60);
        assert_eq!(s.role, ConfiguredRole::Master);
        assert_eq!(s.service.log_format, rampart_shared::telemetry::LogFormat::Json);
    }

    #[test]
    fn console_sessions_idle_out_after_a_bounded_time() {
        assert_eq!(parse(MINIMAL).unwrap().console.idle_minutes, 30);
        let text = MINIMAL.replace("</Server>", "<Console><IdleMinutes>5</IdleMinutes></Console></Server>");
        assert_eq!(parse(&text).unwrap().console.idle_minutes, 5);
        let text = MINIMAL.replace("</Server>", "<Console><IdleMinutes>0</IdleMinutes></Console></Server>");
        assert_eq!(error(&text), "<Server>/<Console>/<IdleMinutes>: must be between 1 and 1440");
    }

    #[test]
    fn refuses_zero_interval() {
        let text = MINIMAL.replace("</Server>", "<ReplicationInterval>0</ReplicationInterval></Server>");
        assert_eq!(error(&text), "<Server>/<ReplicationInterval>: must be at least 1 second");
    }

    #[test]
    fn refuses_wrong_types_naming_the_element() {
        let text = MINIMAL.replace("</Server>", "<ReplicationInterval>soon</ReplicationInterval></Server>");
        assert!(error(&text).starts_with("<Server>/<ReplicationInterval>:"), "{}", error(&text));
        let text = MINIMAL.replace("<Name>paris</Name>", "<Name>paris</Name><Role>boss</Role>");
        let e = error(&text);
        assert!(e.starts_with("<Server>/<Instance>/<Role>:") && e.contains("boss"), "{e}");
    }

    #[test]
    fn refuses_unknown_elements() {
        let text = MINIMAL.replace("</Server>", "<Colour>red</Colour></Server>");
        assert!(error(&text).contains("Colour"), "{}", error(&text));
    }

    #[test]
    fn refuses_missing_required_values() {
        let text = MINIMAL.replace("<Database><Url>postgres://root@127.0.0.1:5432/rampart_paris</Url></Database>", "");
        assert!(error(&text).contains("missing field `Database`"), "{}", error(&text));
        let text = MINIMAL.replace("<Api><Token>0123456789abcdef0123</Token></Api>", "");
        assert!(error(&text).contains("API token is required"), "{}", error(&text));
    }

    #[test]
    fn refuses_bad_values() {
        let text = MINIMAL.replace("<Name>paris</Name>", "<Name>Paris Site</Name>");
        let e = error(&text);
        assert!(e.starts_with("<Server>/<Instance>/<Name>:"), "{e}");
        let text = MINIMAL.replace("0123456789abcdef0123", "short");
        assert!(error(&text).contains("at least 16 characters"));
        let text = MINIMAL.replace("amqp://guest", "http://guest");
        assert!(error(&text).starts_with("<Server>/<Broker>/<Url>"));
        let text = MINIMAL.replace("</Api>", "<Listen>7073</Listen></Api>");
        assert!(error(&text).starts_with("<Server>/<Api>/<Listen>"), "{}", error(&text));
    }

    #[test]
    fn refuses_doctype_and_malformed_xml() {
        let text = format!("<!DOCTYPE Server [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\n{MINIMAL}");
        assert!(error(&text).contains("DOCTYPE"), "{}", error(&text));
        let text = MINIMAL.replace("</Broker>", "</Brokr>");
        assert!(error(&text).starts_with("malformed XML at line 4"), "{}", error(&text));
    }

    #[test]
    fn refuses_a_license_key_that_is_not_the_vendors() {
        let text = MINIMAL.replace("</Server>", "<License><Key>RAMPART1.e30.c2lnbmF0dXJl</Key></License></Server>");
        let e = error(&text);
        assert!(e.starts_with("<Server>/<License>/<Key>: license key is not in the"), "{e}");
        assert!(!e.contains("c2lnbmF0dXJl"), "the key is not echoed: {e}");
    }

    #[test]
    fn environment_overrides_win() {
        let s = Settings::parse(
            MINIMAL,
            |name| match name {
                ENV_API_LISTEN => Some("127.0.0.1:0".into()),
                ENV_NAMESPACE => Some("t_abc".into()),
                _ => None,
            },
            None,
        )
        .unwrap();
        assert_eq!(s.service.api_listen.port(), 0);
        assert_eq!(s.service.namespace.as_str(), "t_abc");
    }

    #[test]
    fn reports_belong_to_the_right_role() {
        let master = MINIMAL.replace("<Name>paris</Name>", "<Name>hq</Name><Role>master</Role>");
        let with =
            |text: &str, reports: &str| text.replace("</Server>", &format!("<Reports>{reports}</Reports></Server>"));
        let s = parse(&with(&master, "<ServiceUrl>http://127.0.0.1:7080/</ServiceUrl><ServiceToken>t</ServiceToken><EventKey>0123456789abcdef</EventKey>")).unwrap();
        assert_eq!(s.reports.service_url.as_deref(), Some("http://127.0.0.1:7080"));
        let e = error(&with(&master, "<Directory>/tmp</Directory>"));
        assert!(e.starts_with("<Server>/<Reports>/<Directory>: scheduled reports do not exist on a master"), "{e}");
        let e = error(&with(&master, "<ServiceUrl>http://x</ServiceUrl><ServiceToken>t</ServiceToken>"));
        assert!(e.contains("needs <EventKey>"), "{e}");
        let e = error(&with(&master, "<EventKey>short</EventKey>"));
        assert!(e.starts_with("<Server>/<Reports>/<EventKey>"), "{e}");
        let e = error(&with(MINIMAL, "<EventKey>0123456789abcdef</EventKey>"));
        assert!(e.contains("are for a master"), "{e}");
        let s = parse(&with(MINIMAL, "<Directory>/var/lib/rampart/reports</Directory>")).unwrap();
        assert_eq!(s.reports.directory.unwrap(), Path::new("/var/lib/rampart/reports"));
    }

    #[test]
    fn the_api_serves_tls_unless_plain_is_asked_for() {
        let s = parse(MINIMAL).unwrap();
        assert!(matches!(s.tls.transport, Transport::Tls { files: None, .. }));
        assert!(!s.tls.plain_registration);
        let with = |api: &str| MINIMAL.replace("</Api>", &format!("{api}</Api>"));
        let s = parse(&with("<Plain>true</Plain><PlainRegistration>true</PlainRegistration>")).unwrap();
        assert!(matches!(s.tls.transport, Transport::Plain) && s.tls.plain_registration);
        let s = Settings::parse(
            &with(
                "<Tls><Certificate>api.crt</Certificate><Key>/k.pem</Key><Names><Name>hq.example</Name></Names></Tls>",
            ),
            |_| None,
            Some(Path::new("/etc/rampart")),
        )
        .unwrap();
        let Transport::Tls { files: Some(files), names } = s.tls.transport else { panic!("configured files") };
        assert_eq!(
            (files.certificate.as_path(), files.key.as_path()),
            (Path::new("/etc/rampart/api.crt"), Path::new("/k.pem"))
        );
        assert_eq!(names, ["hq.example"]);
        let e = error(&with("<Tls><Certificate>a.crt</Certificate></Tls>"));
        assert_eq!(e, "<Server>/<Api>/<Tls>: <Certificate> and <Key> go together");
        assert!(error(&with("<Tls/><Plain>true</Plain>")).contains("remove <Tls> or <Plain>"));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let s = parse(MINIMAL).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("0123456789abcdef0123"));
        assert!(!debug.contains("guest:guest"));
    }
}
