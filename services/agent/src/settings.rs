//! What one fleet process simulates and where it connects: the command line
//! ([`Cli`]) and the validated settings it becomes ([`AgentSettings`]).
//!
//! Tests build [`AgentSettings`] directly with [`AgentSettings::new`] and
//! change the public fields they care about; only `main` goes through clap.

use std::time::Duration;

use clap::Parser;
use rampart_shared::{
    enrolment::Enrolment, site_key::SitePublicKey, telemetry::LogFormat, topology::NameSegment, Secret,
};

pub use crate::identity::AgentIdentity;
use crate::{
    computer,
    identity::{GivenFlags, IdentityFlags},
};

/// Environment variables that stand in for flags (containers set these).
pub const ENV_AMQP: &str = "RAMPART_AMQP";
pub const ENV_AMQP_CREDENTIALS_FILE: &str = "RAMPART_AMQP_CREDENTIALS_FILE";
pub const ENV_NAMESPACE: &str = "RAMPART_NAMESPACE";
pub const ENV_SITE: &str = "RAMPART_SITE";
pub const ENV_ENDPOINTS: &str = "RAMPART_AGENT_ENDPOINTS";
pub const ENV_SEED: &str = "RAMPART_AGENT_SEED";
pub const ENV_NAME: &str = "RAMPART_AGENT_NAME";
pub const ENV_LOG_FORMAT: &str = "RAMPART_LOG_FORMAT";
pub const ENV_SITE_KEY: &str = "RAMPART_SITE_KEY";
pub const ENV_IDENTITY_FILE: &str = "RAMPART_AGENT_IDENTITY_FILE";
pub const ENV_ENROLMENT_TOKEN: &str = "RAMPART_ENROLMENT_TOKEN";
pub const ENV_SITE_API: &str = "RAMPART_SITE_API";

/// The broker every local stack runs (RabbitMQ's own default account).
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// How often endpoint 1 reports the unmanaged computers it sees.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// How often the process logs a one-line summary.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);
/// Most endpoints one process simulates (ids keep 5 digits up to 99,999).
pub const MAX_ENDPOINTS: u32 = 99_999;
/// Most unmanaged computers one process simulates (ids keep 4 digits).
pub const MAX_UNMANAGED: u32 = 9_999;

/// Simulates a fleet of endpoint agents talking to a Rampart site server.
#[derive(Debug, Parser)]
#[command(name = "rampart-agent", version, about)]
pub struct Cli {
    /// Broker URL.
    #[arg(long = "amqp", env = ENV_AMQP, default_value = DEFAULT_AMQP_URL, hide_default_value = true, hide_env_values = true)]
    pub amqp_url: String,
    /// File holding this process's own broker user as one line
    /// `user:password`; replaces the user and password of the broker URL,
    /// so the password is neither on the command line nor in the environment.
    #[arg(long, env = ENV_AMQP_CREDENTIALS_FILE)]
    pub amqp_credentials_file: Option<std::path::PathBuf>,
    /// AMQP namespace shared with the site server.
    #[arg(long, env = ENV_NAMESPACE, default_value = "rampart", value_parser = parse_segment)]
    pub namespace: NameSegment,
    /// Instance id of the site server these endpoints report to (given by
    /// the identity file when the process is enrolled).
    #[arg(long, env = ENV_SITE, value_parser = parse_segment)]
    pub site: Option<NameSegment>,
    /// This process's identity on its site (mode 0600): written at
    /// enrolment, read on every later run.
    #[arg(long, env = ENV_IDENTITY_FILE)]
    pub identity_file: Option<std::path::PathBuf>,
    /// A one-time enrolment token (`rampartctl agents enrolment-token
    /// create`), for the first run with --identity-file.
    #[arg(long, env = ENV_ENROLMENT_TOKEN, hide_env_values = true)]
    pub enrolment_token: Option<String>,
    /// The site's API where the process enrols, e.g. `https://site:7073`.
    #[arg(long, env = ENV_SITE_API)]
    pub site_api: Option<String>,
    /// The site's public command key (`GET /api/site-key`, `rampartctl
    /// site-key`): 64 hex digits, or a file holding them. Without it every
    /// command is refused.
    #[arg(long, env = ENV_SITE_KEY, value_parser = parse_site_key)]
    pub site_key: Option<SitePublicKey>,
    /// How many managed endpoints to simulate.
    #[arg(long, env = ENV_ENDPOINTS, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_ENDPOINTS)))]
    pub endpoints: u32,
    /// Seed of every random choice: the same name and seed give the same fleet.
    #[arg(long, env = ENV_SEED, default_value_t = 1)]
    pub seed: u64,
    /// Name of this fleet process; prefixes every endpoint id (default `sim<seed>`).
    #[arg(long, env = ENV_NAME, value_parser = parse_segment)]
    pub name: Option<NameSegment>,
    /// Seconds between two heartbeats of one endpoint.
    #[arg(long, default_value_t = 30.0)]
    pub heartbeat_secs: f64,
    /// Average threats found per endpoint per hour by real-time protection.
    #[arg(long, default_value_t = 2.0)]
    pub detections_per_hour: f64,
    /// Computers without an agent that endpoint 1 discovers on the network.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_UNMANAGED)))]
    pub unmanaged: u32,
    /// Seconds a quick scan runs (a full scan runs three times longer).
    #[arg(long, default_value_t = 2.0)]
    pub scan_secs: f64,
    /// Log line format: `text` or `json`.
    #[arg(long, env = ENV_LOG_FORMAT, default_value = "text", value_parser = parse_log_format)]
    pub log_format: LogFormat,
}

/// Everything a fleet process needs, validated.
#[derive(Clone, Debug)]
pub struct AgentSettings {
    pub amqp_url: Secret<String>,
    pub namespace: NameSegment,
    /// Instance id of the site server; part of every routing key.
    pub site: NameSegment,
    /// Verifies the site's seal on every command; `None` refuses them all.
    pub site_key: Option<SitePublicKey>,
    /// Prefix of every endpoint id and the suffix of this process's queue, so
    /// several fleet processes can share one site.
    pub name: NameSegment,
    pub endpoints: u32,
    pub seed: u64,
    pub heartbeat_interval: Duration,
    pub detections_per_hour: f64,
    pub unmanaged: u32,
    /// Duration of a quick scan; a full scan takes three times as long.
    pub scan_duration: Duration,
    pub discovery_interval: Duration,
    pub summary_interval: Duration,
    pub log_format: LogFormat,
    /// The enrolled identity; `None` for a process that connects with a
    /// broker user of its own making and declares its own queue (a site
    /// with `<Agents><RequireIdentity>false</RequireIdentity>`).
    pub identity: Option<AgentIdentity>,
}

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
}

impl AgentSettings {
    /// Settings with every optional value at its command-line default
    /// (seed 1, name `sim1`).
    pub fn new(amqp_url: impl Into<String>, namespace: NameSegment, site: NameSegment, endpoints: u32) -> Self {
        let seed = 1;
        Self {
            amqp_url: Secret::new(amqp_url.into()),
            namespace,
            site,
            site_key: None,
            name: default_name(seed),
            endpoints,
            seed,
            heartbeat_interval: Duration::from_secs(30),
            detections_per_hour: 2.0,
            unmanaged: 20,
            scan_duration: Duration::from_secs(2),
            discovery_interval: DISCOVERY_INTERVAL,
            summary_interval: SUMMARY_INTERVAL,
            log_format: LogFormat::Text,
            identity: None,
        }
    }

    /// Checks what clap cannot: that every generated id is a valid name
    /// segment (they appear in routing keys) and that durations make sense.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |flag, reason: String| Err(SettingsError::Invalid { flag, reason });
        if self.endpoints > MAX_ENDPOINTS {
            return invalid("endpoints", format!("at most {MAX_ENDPOINTS} per process"));
        }
        if self.unmanaged > MAX_UNMANAGED {
            return invalid("unmanaged", format!("at most {MAX_UNMANAGED} per process"));
        }
        for id in [
            computer::endpoint_id(self.name.as_str(), self.endpoints.max(1)),
            computer::computer_id(self.name.as_str(), self.unmanaged.max(1)),
        ] {
            if let Err(reason) = NameSegment::parse(&id) {
                return invalid("name", format!("gives invalid ids ({reason}); use a shorter name"));
            }
        }
        if self.heartbeat_interval < Duration::from_millis(100) {
            return invalid("heartbeat-secs", "must be at least 0.1".into());
        }
        if !self.detections_per_hour.is_finite() || self.detections_per_hour < 0.0 {
            return invalid("detections-per-hour", "must be a number >= 0".into());
        }
        Ok(())
    }
}

/// `url` with the user and password of the credentials file at `path`.
fn broker_url_with_credentials(url: &str, path: &std::path::Path) -> Result<Secret<String>, SettingsError> {
    rampart_shared::broker_admin::settings::url_with_credentials_file(url, path)
        .map_err(|reason| SettingsError::Invalid { flag: "amqp-credentials-file", reason })
}

impl Cli {
    /// The identity flags, for [`crate::identity::resolve`].
    pub fn identity_flags(&self) -> IdentityFlags {
        IdentityFlags {
            identity_file: self.identity_file.clone(),
            enrolment_token: self.enrolment_token.clone(),
            site_api: self.site_api.clone(),
        }
    }

    /// The fleet's name (`--name`, else `sim<seed>`).
    pub fn fleet_name(&self) -> NameSegment {
        self.name.clone().unwrap_or_else(|| default_name(self.seed))
    }

    /// The ids of the endpoints this process runs, in order.
    pub fn endpoint_ids(&self) -> Vec<String> {
        let name = self.fleet_name();
        (1..=self.endpoints).map(|i| computer::endpoint_id(name.as_str(), i)).collect()
    }

    /// Turns the parsed flags into validated settings, for a process that
    /// is not enrolled.
    pub fn into_settings(self) -> Result<AgentSettings, SettingsError> {
        self.into_settings_with(None)
    }

    /// Turns the parsed flags and the enrolled `identity` (if any) into
    /// validated settings: the identity gives the site, the namespace, the
    /// broker user and the site's key.
    pub fn into_settings_with(self, identity: Option<Enrolment>) -> Result<AgentSettings, SettingsError> {
        let seconds = |flag, value: f64| {
            Duration::try_from_secs_f64(value).map_err(|_| SettingsError::Invalid {
                flag,
                reason: format!("'{value}' is not a number of seconds >= 0"),
            })
        };
        let invalid = |flag, reason: String| SettingsError::Invalid { flag, reason };
        let name = self.fleet_name();
        let (amqp_url, namespace, site, site_key, enrolled) = match identity {
            Some(identity) => {
                let given = GivenFlags {
                    amqp_url: &self.amqp_url,
                    amqp_credentials_file: self.amqp_credentials_file.is_some(),
                    site: self.site.as_ref(),
                    site_key: self.site_key,
                };
                let enrolled = crate::identity::connection(identity, &given)
                    .map_err(|c| SettingsError::Invalid { flag: c.flag, reason: c.reason })?;
                (enrolled.amqp_url, enrolled.namespace, enrolled.site, Some(enrolled.site_key), Some(enrolled.identity))
            }
            None => {
                let site = self.site.clone().ok_or_else(|| {
                    invalid("site", "required unless the process is enrolled (--identity-file)".into())
                })?;
                let amqp_url = match &self.amqp_credentials_file {
                    Some(path) => broker_url_with_credentials(&self.amqp_url, path)?,
                    None => Secret::new(self.amqp_url.clone()),
                };
                (amqp_url, self.namespace.clone(), site, self.site_key, None)
            }
        };
        let settings = AgentSettings {
            amqp_url,
            namespace,
            site,
            site_key,
            name,
            endpoints: self.endpoints,
            seed: self.seed,
            heartbeat_interval: seconds("heartbeat-secs", self.heartbeat_secs)?,
            detections_per_hour: self.detections_per_hour,
            unmanaged: self.unmanaged,
            scan_duration: seconds("scan-secs", self.scan_secs)?,
            discovery_interval: DISCOVERY_INTERVAL,
            summary_interval: SUMMARY_INTERVAL,
            log_format: self.log_format,
            identity: enrolled,
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// `sim<seed>`: distinct seeds give distinct fleets on one site by default.
fn default_name(seed: u64) -> NameSegment {
    NameSegment::parse(&format!("sim{seed}")).expect("'sim' and digits form a valid name")
}

fn parse_segment(value: &str) -> Result<NameSegment, String> {
    NameSegment::parse(value)
}

/// 64 hex digits, or the path of a file holding them.
fn parse_site_key(value: &str) -> Result<SitePublicKey, String> {
    if let Some(key) = SitePublicKey::from_hex(value) {
        return Ok(key);
    }
    let text = std::fs::read_to_string(value)
        .map_err(|e| format!("'{value}' is neither 64 hex digits nor a readable key file ({e})"))?;
    SitePublicKey::from_hex(&text)
        .ok_or_else(|| format!("{value}: the file does not hold 64 hex digits of an Ed25519 key"))
}

fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("'{other}' is not a log format: use 'text' or 'json'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<AgentSettings, String> {
        let mut argv = vec!["rampart-agent", "--site", "paris", "--endpoints", "10"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        cli.into_settings().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_seed() {
        let s = parse(&["--seed", "7"]).unwrap();
        assert_eq!(s.name.as_str(), "sim7");
        assert_eq!(s.namespace.as_str(), "rampart");
        assert_eq!(s.heartbeat_interval, Duration::from_secs(30));
        assert_eq!(s.scan_duration, Duration::from_secs(2));
        assert_eq!(s.unmanaged, 20);
        assert_eq!(parse(&[]).unwrap().name.as_str(), "sim1");
    }

    #[test]
    fn refuses_bad_names_and_numbers() {
        assert!(parse(&["--name", "Lab"]).unwrap_err().contains("'L'"));
        let long = "x".repeat(60);
        let err = parse(&["--name", &long]).unwrap_err();
        assert!(err.contains("--name"), "{err}");
        assert!(parse(&["--heartbeat-secs=-1"]).unwrap_err().contains("--heartbeat-secs"));
        assert!(parse(&["--heartbeat-secs", "0.01"]).unwrap_err().contains("--heartbeat-secs"));
        assert!(parse(&["--scan-secs", "NaN"]).unwrap_err().contains("--scan-secs"));
        assert!(parse(&["--endpoints", "100000"]).is_err());
        assert!(parse(&["--log-format", "xml"]).is_err());
        assert_eq!(parse(&["--log-format", "json"]).unwrap().log_format, LogFormat::Json);
    }

    #[test]
    fn the_site_key_is_hex_or_a_file() {
        let key = rampart_shared::site_key::SiteKey::generate().public();
        assert_eq!(parse(&["--site-key", &key.to_hex()]).unwrap().site_key, Some(key));
        let file = std::env::temp_dir().join(format!("site-key-{}", std::process::id()));
        std::fs::write(&file, format!("{}\n", key.to_hex())).unwrap();
        assert_eq!(parse(&["--site-key", file.to_str().unwrap()]).unwrap().site_key, Some(key));
        std::fs::remove_file(&file).unwrap();
        assert!(parse(&["--site-key", "abcd"]).unwrap_err().contains("--site-key"));
        assert_eq!(parse(&[]).unwrap().site_key, None);
    }

    #[test]
    fn new_matches_the_cli_defaults() {
        let ns = NameSegment::parse("rampart").unwrap();
        let site = NameSegment::parse("paris").unwrap();
        let s = AgentSettings::new(DEFAULT_AMQP_URL, ns, site, 10);
        let cli = parse(&[]).unwrap();
        assert_eq!(s.name, cli.name);
        assert_eq!(s.heartbeat_interval, cli.heartbeat_interval);
        assert_eq!(s.scan_duration, cli.scan_duration);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn a_credentials_file_gives_the_broker_user() {
        let dir = std::env::temp_dir().join(format!("rampart-agent-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("broker.credentials");
        std::fs::write(&file, "rampart.agent.paris.a1:s3cret\n").unwrap();
        let s = parse(&["--amqp-credentials-file", file.to_str().unwrap()]).unwrap();
        assert_eq!(s.amqp_url.expose(), "amqp://rampart.agent.paris.a1:s3cret@127.0.0.1:5672/%2f");
        std::fs::write(&file, "no colon").unwrap();
        let err = parse(&["--amqp-credentials-file", file.to_str().unwrap()]).unwrap_err();
        assert!(err.contains("--amqp-credentials-file") && !err.contains("s3cret"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
