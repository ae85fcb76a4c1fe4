//! The instance's role and the features each role has.
//!
//! A master manages slaves, not computers: the features that only make sense
//! next to a fleet do not exist there and are refused by name.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Standalone,
    Slave,
    Master,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Slave => "slave",
            Self::Master => "master",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "standalone" => Some(Self::Standalone),
            "slave" => Some(Self::Slave),
            "master" => Some(Self::Master),
            _ => None,
        }
    }

    /// A master has no endpoints, so no fleet features.
    pub fn has_fleet(self) -> bool {
        !matches!(self, Self::Master)
    }

    /// `Err` with the operator-facing message when `feature` does not exist in this role.
    pub fn check(self, feature: Feature) -> Result<(), String> {
        if self.has_fleet() {
            Ok(())
        } else {
            Err(format!(
                "{} is not available on a {} server: it exists only on servers that manage computers (stand-alone or slave).",
                feature.title(),
                self.as_str()
            ))
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Features that exist only where computers are managed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    Dashboard,
    NetworkAudit,
    ScheduledReports,
    Registration,
    NetworkBuilder,
    AutomaticDeployment,
    DeploymentTool,
    DeploymentStatus,
    EmailSettings,
    AgentIdentities,
}

impl Feature {
    pub fn title(self) -> &'static str {
        match self {
            Self::Dashboard => "The management dashboard",
            Self::NetworkAudit => "Network audit",
            Self::ScheduledReports => "Scheduled reports",
            Self::Registration => "Registration (license)",
            Self::NetworkBuilder => "The network builder",
            Self::AutomaticDeployment => "Automatic deployment",
            Self::DeploymentTool => "The deployment tool",
            Self::DeploymentStatus => "Deployment status",
            Self::EmailSettings => "E-mail settings",
            Self::AgentIdentities => "Agent enrolment",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_refuses_fleet_features_by_name() {
        let err = Role::Master.check(Feature::Dashboard).unwrap_err();
        assert!(err.starts_with("The management dashboard is not available on a master server"), "{err}");
        assert!(Role::Standalone.check(Feature::Dashboard).is_ok());
        assert!(Role::Slave.check(Feature::EmailSettings).is_ok());
    }
}
