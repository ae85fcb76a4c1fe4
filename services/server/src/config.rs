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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct EndpointsXml {
    heartbeat_seconds: Option<u64>,
    outdated_after_days: Option<u32>,
    exact_total_up_to: Option<i64>,
}

/// How many matches a master's consolidated list counts one by one before
/// its total becomes the database's estimate, unless configured.
pub const DEFAULT_EXACT_TOTAL_UP_TO: i64 = 10_000;

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
    /// `<Endpoints><ExactTotalUpTo>`: a master's consolidated list counts
    /// at most this many matches; past it the total is the planner's
    /// estimate and says so (`total_exact: false`). Counting every match of
    /// 10 million computers takes a second; this many, milliseconds.
    pub exact_total_up_to: i64,
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
        let endpoints = xml.endpoints.unwrap_or_default();
        let heartbeat_seconds = endpoints.heartbeat_seconds.unwrap_or(30);
        if heartbeat_seconds == 0 {
            return Err(ConfigError::invalid("<Server>/<Endpoints>/<HeartbeatSeconds>", "must be at least 1"));
        }
        let exact_total_up_to = endpoints.exact_total_up_to.unwrap_or(DEFAULT_EXACT_TOTAL_UP_TO);
        if !(1..=100_000_000).contains(&exact_total_up_to) {
            return Err(ConfigError::invalid(
                "<Server>/<Endpoints>/<ExactTotalUpTo>",
                "must be between 1 and 100000000",
            ));
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
            exact_total_up_to,
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
mod tests;
