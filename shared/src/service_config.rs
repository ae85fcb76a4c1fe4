//! The sections every service's XML file shares (`server.xml`,
//! `report.xml`): `<Database>`, `<Broker>`, `<Api>` and `<Log>`, their
//! checks and their environment overrides, checked once for all services.

use std::{net::SocketAddr, path::Path, time::Duration};

use serde::Deserialize;

use crate::{
    broker_admin::settings::{ManagementSettings, ManagementXml},
    config::{secret_value, ConfigError},
    db::SchemaName,
    telemetry::LogFormat,
    topology::NameSegment,
    Secret,
};

pub const ENV_DATABASE_URL: &str = "RAMPART_DATABASE_URL";
pub const ENV_AMQP_URL: &str = "RAMPART_AMQP_URL";
/// A `user:password` file for the broker, replacing the URL's user.
pub const ENV_AMQP_CREDENTIALS_FILE: &str = "RAMPART_AMQP_CREDENTIALS_FILE";
pub const ENV_NAMESPACE: &str = "RAMPART_NAMESPACE";
/// `<Broker><Management><Url>` and `<CredentialsFile>`, both or neither
/// (containers that are given the broker administrator's credentials).
pub const ENV_BROKER_MANAGEMENT_URL: &str = "RAMPART_BROKER_MANAGEMENT_URL";
pub const ENV_BROKER_MANAGEMENT_CREDENTIALS_FILE: &str = "RAMPART_BROKER_MANAGEMENT_CREDENTIALS_FILE";
pub const ENV_API_LISTEN: &str = "RAMPART_API_LISTEN";
pub const ENV_API_TOKEN: &str = "RAMPART_API_TOKEN";

/// `<Database><IdleTimeout>` at most: a day (a pool that should never give
/// a connection back has no use for more).
pub const MAX_IDLE_TIMEOUT_S: u64 = 86_400;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct DatabaseXml {
    pub url: Secret<String>,
    pub pool_size: Option<usize>,
    /// Seconds a pooled connection may stay unused before it is closed.
    pub idle_timeout: Option<u64>,
    /// The schema of a shared database this instance lives in; `public`
    /// (the database to itself) when absent.
    pub schema: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct BrokerXml {
    pub url: Secret<String>,
    /// One line `user:password`: this process's broker user, so the
    /// password need not sit in `<Url>`.
    pub credentials_file: Option<String>,
    pub namespace: Option<NameSegment>,
    pub prefetch: Option<u16>,
    pub management: Option<ManagementXml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ApiXml {
    pub listen: Option<SocketAddr>,
    pub token: Option<Secret<String>>,
    pub token_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct LogXml {
    pub format: Option<LogFormat>,
    pub level: Option<String>,
}

/// The shared sections as parsed.
pub struct Sections {
    pub database: DatabaseXml,
    pub broker: BrokerXml,
    pub api: ApiXml,
    pub log: Option<LogXml>,
}

/// What differs between services.
pub struct Defaults {
    pub pool_size: usize,
    pub max_pool_size: usize,
    pub prefetch: u16,
    pub listen: SocketAddr,
}

/// The shared settings, validated.
#[derive(Clone, Debug)]
pub struct ServiceSettings {
    pub database_url: Secret<String>,
    pub database_pool_size: usize,
    /// `<Database><IdleTimeout>`: a pooled connection unused this long is
    /// closed, giving its PostgreSQL backend back ([`crate::db::idle`]).
    pub database_idle_timeout: Duration,
    /// `<Database><Schema>`: the instance's schema of a shared database.
    pub database_schema: Option<SchemaName>,
    pub amqp_url: Secret<String>,
    pub namespace: NameSegment,
    /// Unacked deliveries a consumer may hold.
    pub prefetch: u16,
    /// `<Broker><Management>`: the broker's management API, where broker
    /// users are made and revoked.
    pub broker_management: Option<ManagementSettings>,
    pub api_listen: SocketAddr,
    pub api_token: Secret<String>,
    pub log_format: LogFormat,
    pub log_level: String,
}

impl ServiceSettings {
    /// Applies the environment overrides and checks the values; errors name
    /// the element under `<root>`, e.g. `<Report>/<Broker>/<Url>`.
    pub fn check(
        root: &str,
        xml: Sections,
        defaults: &Defaults,
        env: &impl Fn(&str) -> Option<String>,
        base_dir: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let at = |path: &str| format!("<{root}>/{path}");
        let api_token = match env(ENV_API_TOKEN) {
            Some(token) => Secret::new(token),
            None => secret_value(&at("<Api>"), "Token", xml.api.token, xml.api.token_file, base_dir)?
                .ok_or_else(|| ConfigError::invalid(at("<Api>"), "an API token is required: <Token> or <TokenFile>"))?,
        };
        if api_token.expose().len() < 16 {
            return Err(ConfigError::invalid(at("<Api>/<Token>"), "the API token must be at least 16 characters"));
        }
        let database_url = env(ENV_DATABASE_URL).map(Secret::new).unwrap_or(xml.database.url);
        let url_ok =
            database_url.expose().starts_with("postgres://") || database_url.expose().starts_with("postgresql://");
        if !url_ok || crate::db::database_name(database_url.expose()).is_err() {
            return Err(ConfigError::invalid(at("<Database>/<Url>"), "must be a postgres:// URL naming a database"));
        }
        let database_pool_size = xml.database.pool_size.unwrap_or(defaults.pool_size);
        if !(2..=defaults.max_pool_size).contains(&database_pool_size) {
            return Err(ConfigError::invalid(
                at("<Database>/<PoolSize>"),
                format!("must be between 2 and {}", defaults.max_pool_size),
            ));
        }
        let database_idle_timeout = match xml.database.idle_timeout {
            None => crate::db::idle::DEFAULT_IDLE_TIMEOUT,
            Some(seconds) if (1..=MAX_IDLE_TIMEOUT_S).contains(&seconds) => Duration::from_secs(seconds),
            Some(_) => {
                return Err(ConfigError::invalid(
                    at("<Database>/<IdleTimeout>"),
                    format!("must be between 1 and {MAX_IDLE_TIMEOUT_S} seconds"),
                ))
            }
        };
        let database_schema = xml
            .database
            .schema
            .map(|s| SchemaName::parse(&s).map_err(|e| ConfigError::invalid(at("<Database>/<Schema>"), e)))
            .transpose()?;
        let amqp_url = env(ENV_AMQP_URL).map(Secret::new).unwrap_or(xml.broker.url);
        if !amqp_url.expose().starts_with("amqp://") && !amqp_url.expose().starts_with("amqps://") {
            return Err(ConfigError::invalid(at("<Broker>/<Url>"), "must be an amqp:// URL"));
        }
        let amqp_url = match env(ENV_AMQP_CREDENTIALS_FILE).or(xml.broker.credentials_file) {
            Some(file) => {
                let path = crate::broker_admin::settings::resolve(&file, base_dir);
                crate::broker_admin::settings::url_with_credentials_file(amqp_url.expose(), &path)
                    .map_err(|e| ConfigError::invalid(at("<Broker>/<CredentialsFile>"), e))?
            }
            None => amqp_url,
        };
        let namespace = match env(ENV_NAMESPACE) {
            Some(ns) => NameSegment::parse(&ns).map_err(|e| ConfigError::invalid(ENV_NAMESPACE, e))?,
            None => xml.broker.namespace.unwrap_or_else(|| NameSegment::parse("rampart").expect("valid")),
        };
        let prefetch = xml.broker.prefetch.unwrap_or(defaults.prefetch);
        if prefetch == 0 {
            return Err(ConfigError::invalid(at("<Broker>/<Prefetch>"), "must be at least 1"));
        }
        let management = match (env(ENV_BROKER_MANAGEMENT_URL), env(ENV_BROKER_MANAGEMENT_CREDENTIALS_FILE)) {
            (Some(url), Some(credentials_file)) => Some(ManagementXml { url, credentials_file }),
            (None, None) => xml.broker.management,
            _ => {
                return Err(ConfigError::invalid(
                    ENV_BROKER_MANAGEMENT_URL,
                    format!(
                        "set both {ENV_BROKER_MANAGEMENT_URL} and {ENV_BROKER_MANAGEMENT_CREDENTIALS_FILE}, or neither"
                    ),
                ))
            }
        };
        let broker_management =
            management.map(|m| ManagementSettings::check(&at("<Broker>/<Management>"), m, base_dir)).transpose()?;
        let api_listen = match env(ENV_API_LISTEN) {
            Some(addr) => addr
                .parse()
                .map_err(|e| ConfigError::invalid(ENV_API_LISTEN, format!("'{addr}' is not an address:port: {e}")))?,
            None => xml.api.listen.unwrap_or(defaults.listen),
        };
        let log = xml.log.unwrap_or_default();
        Ok(Self {
            database_url,
            database_pool_size,
            database_idle_timeout,
            database_schema,
            amqp_url,
            namespace,
            prefetch,
            broker_management,
            api_listen,
            api_token,
            log_format: log.format.unwrap_or_default(),
            log_level: log.level.unwrap_or_else(|| "info".into()),
        })
    }
}
