//! The hierarchy's HTTP contract, shared by the servers and `rampartctl`:
//! registration on the master's `:7073` ([`REGISTER_PATH`],
//! [`RegisterRequest`], [`RegisterResponse`]) and the [`SlaveTarget`] of a
//! master policy or task in the master's API.

use serde::{Deserialize, Serialize};

use super::{Scope, SlaveHeartbeat};

/// Where a master takes registrations on its API (server to server).
pub const REGISTER_PATH: &str = "/api/slaves/register";

/// The `slaves` value of a [`SlaveTarget`] that means every slave.
pub const ALL_SLAVES: &str = "all";

/// Which slaves, and which endpoints inside them, a master policy or task
/// is for: the `target` of `POST /api/policies` and `POST /api/tasks` on a
/// master, as the master stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaveTarget {
    /// `"all"` (every slave, including ones registered later, for
    /// policies) or a list of slave ids.
    pub slaves: SlaveSelection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_group: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SlaveSelection {
    /// Must be [`ALL_SLAVES`]; [`SlaveTarget::validate`] checks it.
    All(String),
    Listed(Vec<String>),
}

impl SlaveTarget {
    /// Every slave (`None`) or the listed ones, optionally narrowed to a group.
    pub fn new(slaves: Option<Vec<String>>, group: Option<String>, virtual_group: Option<String>) -> Self {
        let slaves = match slaves {
            None => SlaveSelection::All(ALL_SLAVES.to_owned()),
            Some(ids) => SlaveSelection::Listed(ids),
        };
        Self { slaves, group, virtual_group }
    }

    /// Checks the shape; `Err` is the operator-facing message.
    pub fn validate(&self) -> Result<(), String> {
        match &self.slaves {
            SlaveSelection::All(s) if s == ALL_SLAVES => {}
            SlaveSelection::All(other) => {
                return Err(format!("target.slaves '{other}' must be \"{ALL_SLAVES}\" or a list of slave ids"))
            }
            SlaveSelection::Listed(ids) if ids.is_empty() => {
                return Err(format!("target.slaves is an empty list: give \"{ALL_SLAVES}\" or slave ids"))
            }
            SlaveSelection::Listed(_) => {}
        }
        if self.group.is_some() && self.virtual_group.is_some() {
            return Err("target takes a group or a virtual_group, not both".into());
        }
        for name in [&self.group, &self.virtual_group].into_iter().flatten() {
            if name.trim().is_empty() {
                return Err("target group names must not be empty".into());
            }
        }
        Ok(())
    }

    pub fn is_all(&self) -> bool {
        matches!(self.slaves, SlaveSelection::All(_))
    }

    /// What each slave is told about the endpoints in scope.
    pub fn scope(&self) -> Scope {
        Scope { group: self.group.clone(), virtual_group: self.virtual_group.clone() }
    }
}

/// Body of `POST /api/slaves/register` on the master (the token is the credential).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub token: String,
    pub slave_id: String,
    /// The AMQP namespace the slave uses; it must be the master's.
    pub namespace: String,
    pub version: String,
    pub heartbeat: SlaveHeartbeat,
    /// The slave's site has a broker of its own: the master answers with
    /// credentials for the links between the two brokers.
    #[serde(default)]
    pub site_broker: bool,
}

/// The master's answer to a successful registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterResponse {
    pub master_id: String,
    /// Hex key the slave signs its reports with.
    pub slave_key: String,
    /// Hex key the master signs this slave's commands with.
    pub command_key: String,
    /// For a slave with a broker of its own: where and as whom its links
    /// reach the master's broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_link: Option<crate::site_link::BrokerLinkGrant>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(v: serde_json::Value) -> Result<SlaveTarget, String> {
        let t: SlaveTarget = serde_json::from_value(v).map_err(|e| e.to_string())?;
        t.validate().map(|_| t)
    }

    #[test]
    fn targets_are_checked() {
        use serde_json::json;
        assert!(target(json!({"slaves": "all"})).unwrap().is_all());
        assert!(!target(json!({"slaves": ["paris"], "group": "Servers"})).unwrap().is_all());
        assert!(target(json!({"slaves": "some"})).unwrap_err().contains("\"all\""));
        assert!(target(json!({"slaves": []})).unwrap_err().contains("empty"));
        assert!(target(json!({"slaves": "all", "group": "a", "virtual_group": "b"})).unwrap_err().contains("not both"));
        assert!(target(json!({"slaves": "all", "site": "x"})).is_err());
        assert_eq!(serde_json::to_value(SlaveTarget::new(None, None, None)).unwrap(), json!({"slaves": "all"}));
    }
}
