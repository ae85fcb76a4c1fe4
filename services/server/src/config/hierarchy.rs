//! `<Hierarchy>`: how this server's broker is linked to a master's, when
//! sites run brokers of their own (`docs/multi-site.md`).
//!
//! ```xml
//! <!-- on the master -->
//! <Hierarchy><BrokerForSlaves>amqps://hq.example:5671/%2f</BrokerForSlaves></Hierarchy>
//! <!-- on a slave whose site runs its own broker -->
//! <Hierarchy>
//!   <SiteBroker>true</SiteBroker>
//!   <MasterBrokerCaFile>/etc/rabbitmq/rampart-master-ca.pem</MasterBrokerCaFile>
//!   <LinkStartSeconds>30</LinkStartSeconds>  <!-- new links must run within -->
//!   <LinkCheckSeconds>10</LinkCheckSeconds>  <!-- between two looks of the link keeper -->
//! </Hierarchy>
//! ```

use std::time::Duration;

use rampart_shared::config::ConfigError;
use serde::Deserialize;

use super::ConfiguredRole;

const AT: &str = "<Server>/<Hierarchy>";
/// How long new links may take to reach `running` unless configured.
const DEFAULT_LINK_START_SECONDS: u64 = 30;
/// Seconds between two looks at the links unless configured.
const DEFAULT_LINK_CHECK_SECONDS: u64 = 10;

/// `<Hierarchy>` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub(super) struct HierarchyXml {
    broker_for_slaves: Option<String>,
    site_broker: Option<bool>,
    master_broker_ca_file: Option<String>,
    link_start_seconds: Option<u64>,
    link_check_seconds: Option<u64>,
}

/// The links between this server's broker and its master's, validated.
#[derive(Clone, Debug, Default)]
pub struct HierarchySettings {
    /// On a master: the `amqp(s)://host:port/vhost` of its broker as slaves
    /// with brokers of their own reach it (no credentials: each slave gets
    /// its own user at registration).
    pub broker_for_slaves: Option<String>,
    /// On a stand-alone or slave: its site runs a broker of its own, linked
    /// to the master's by shovels made at registration.
    pub site_broker: bool,
    /// For an `amqps` master broker: the CA file, a path on the host of
    /// this site's broker (the shovel runs there), that verifies it.
    pub master_broker_ca_file: Option<String>,
    /// How long new links may take to reach `running` before the
    /// registration is rolled back.
    pub link_start: Duration,
    /// Between two looks of the link keeper at the links.
    pub link_check: Duration,
}

impl HierarchySettings {
    pub(super) fn check(xml: HierarchyXml, role: ConfiguredRole, has_management: bool) -> Result<Self, ConfigError> {
        let broker_for_slaves = match xml.broker_for_slaves {
            Some(_) if role != ConfiguredRole::Master => {
                return Err(ConfigError::invalid(
                    format!("{AT}/<BrokerForSlaves>"),
                    "is for a master: a stand-alone or slave says <SiteBroker>true</SiteBroker> instead",
                ))
            }
            Some(uri) => {
                Some(broker_uri(&uri).map_err(|e| ConfigError::invalid(format!("{AT}/<BrokerForSlaves>"), e))?)
            }
            None => None,
        };
        if broker_for_slaves.is_some() && !has_management {
            return Err(ConfigError::invalid(
                format!("{AT}/<BrokerForSlaves>"),
                "needs <Broker><Management> (the master makes each slave's broker user through it)",
            ));
        }
        let site_broker = xml.site_broker.unwrap_or(false);
        if site_broker && role == ConfiguredRole::Master {
            return Err(ConfigError::invalid(
                format!("{AT}/<SiteBroker>"),
                "is for a stand-alone that registers to a master",
            ));
        }
        if site_broker && !has_management {
            return Err(ConfigError::invalid(
                format!("{AT}/<SiteBroker>"),
                "needs <Broker><Management> (the links are made on this site's broker through it)",
            ));
        }
        if let Some(ca) = &xml.master_broker_ca_file {
            if !site_broker || !ca.starts_with('/') {
                return Err(ConfigError::invalid(
                    format!("{AT}/<MasterBrokerCaFile>"),
                    "must be an absolute path on the host of this site's broker, with <SiteBroker>true</SiteBroker>",
                ));
            }
        }
        let link_start = xml.link_start_seconds.unwrap_or(DEFAULT_LINK_START_SECONDS);
        if !(1..=600).contains(&link_start) {
            return Err(ConfigError::invalid(format!("{AT}/<LinkStartSeconds>"), "must be between 1 and 600"));
        }
        let link_check = xml.link_check_seconds.unwrap_or(DEFAULT_LINK_CHECK_SECONDS);
        if !(1..=3600).contains(&link_check) {
            return Err(ConfigError::invalid(format!("{AT}/<LinkCheckSeconds>"), "must be between 1 and 3600"));
        }
        Ok(Self {
            broker_for_slaves,
            site_broker,
            master_broker_ca_file: xml.master_broker_ca_file,
            link_start: Duration::from_secs(link_start),
            link_check: Duration::from_secs(link_check),
        })
    }
}

/// `amqp(s)://host[:port][/vhost]` without user information.
fn broker_uri(text: &str) -> Result<String, String> {
    let uri = text.trim();
    let rest = uri
        .strip_prefix("amqp://")
        .or_else(|| uri.strip_prefix("amqps://"))
        .ok_or_else(|| format!("'{uri}' must start with amqp:// or amqps://"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not hold a user or password: each slave gets its own at registration".into());
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(format!("'{uri}' names no host"));
    }
    if rest.contains('?') {
        return Err("must not hold query parameters (TLS options are the slave's <MasterBrokerCaFile>)".into());
    }
    Ok(uri.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(broker: Option<&str>, site: Option<bool>) -> HierarchyXml {
        HierarchyXml { broker_for_slaves: broker.map(str::to_owned), site_broker: site, ..Default::default() }
    }

    #[test]
    fn a_master_names_its_broker_without_credentials() {
        let ok = HierarchySettings::check(xml(Some("amqps://hq:5671/%2f"), None), ConfiguredRole::Master, true);
        assert_eq!(ok.unwrap().broker_for_slaves.as_deref(), Some("amqps://hq:5671/%2f"));
        for bad in ["amqp://u:p@hq:5672", "http://hq", "amqp://", "amqp://hq?verify=verify_none"] {
            let error = HierarchySettings::check(xml(Some(bad), None), ConfiguredRole::Master, true).unwrap_err();
            assert!(error.to_string().contains("<BrokerForSlaves>"), "{bad}: {error}");
        }
        let no_management = HierarchySettings::check(xml(Some("amqp://hq"), None), ConfiguredRole::Master, false);
        assert!(no_management.unwrap_err().to_string().contains("<Management>"));
    }

    #[test]
    fn each_role_gets_its_own_elements() {
        assert!(HierarchySettings::check(xml(Some("amqp://hq"), None), ConfiguredRole::Standalone, true).is_err());
        assert!(HierarchySettings::check(xml(None, Some(true)), ConfiguredRole::Master, true).is_err());
        assert!(HierarchySettings::check(xml(None, Some(true)), ConfiguredRole::Standalone, false).is_err());
        assert!(HierarchySettings::check(xml(None, Some(true)), ConfiguredRole::Standalone, true).unwrap().site_broker);
        let relative = HierarchyXml { master_broker_ca_file: Some("ca.pem".into()), ..xml(None, Some(true)) };
        assert!(HierarchySettings::check(relative, ConfiguredRole::Standalone, true).is_err());
    }
}
