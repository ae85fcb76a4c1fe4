//! Operators: accounts with a role, personal API tokens, sign-in, and the
//! activity log of who changed what.
//!
//! * [`accounts`]: create, list, disable, change the role (Argon2id passwords);
//! * [`tokens`]: personal API tokens with an expiry (only their hash is kept),
//!   and resolving a bearer token to the operator it speaks for;
//! * [`sign_in`]: password sign-in, slowed and counted after failures;
//! * [`sessions`]: the web console's sessions (a password sign-in, idle
//!   expiry) and what the console remembers per operator;
//! * [`activity`]: the log every domain operation writes in its own
//!   transaction, given the acting [`Actor`].
//!
//! Which role each route needs is the API's access table (`api/access.rs`).

pub mod accounts;
pub mod activity;
pub mod sessions;
pub mod sign_in;
pub mod tokens;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use activity::Actor;

/// What an operator may do; each role may do everything the ones below it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorRole {
    /// Reads everything, changes nothing.
    Auditor,
    /// Policies, tasks, groups, deployments, reports; not the hierarchy,
    /// the license or the operators.
    Operator,
    /// Everything.
    Administrator,
}

impl OperatorRole {
    pub const ALL: [OperatorRole; 3] = [Self::Auditor, Self::Operator, Self::Administrator];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auditor => "auditor",
            Self::Operator => "operator",
            Self::Administrator => "administrator",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Whether this role may do what `needed` may.
    pub fn allows(self, needed: OperatorRole) -> bool {
        self >= needed
    }
}

impl fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name the bootstrap token (`<Api><Token>` of server.xml) acts under:
/// an administrator, reserved so no account can take it.
pub const BOOTSTRAP: &str = "bootstrap";

/// Whether `name` is a valid operator name (the database checks it too).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && name != BOOTSTRAP
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_what_they_allow() {
        assert!(OperatorRole::Administrator.allows(OperatorRole::Operator));
        assert!(OperatorRole::Operator.allows(OperatorRole::Auditor));
        assert!(!OperatorRole::Auditor.allows(OperatorRole::Operator));
        assert!(!OperatorRole::Operator.allows(OperatorRole::Administrator));
        for r in OperatorRole::ALL {
            assert_eq!(OperatorRole::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("alice"));
        assert!(valid_name("ops.team-1"));
        assert!(!valid_name("Alice"));
        assert!(!valid_name("1alice"));
        assert!(!valid_name(""));
        assert!(!valid_name(BOOTSTRAP));
    }
}
