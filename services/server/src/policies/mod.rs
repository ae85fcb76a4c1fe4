//! Policies: what operators author, and which one governs each endpoint.
//!
//! * [`effective`]: the policy in force on each endpoint, and pushing it.
//! * [`content`]: a policy's name and settings as an operator writes them.
//! * [`view`]: a policy as the API shows it.
//! * [`site`]: local policies and assignments on a stand-alone or slave,
//!   where the master's policies are read-only.
//! * [`master`]: policies a master authors for its slaves.

pub mod content;
pub mod effective;
pub mod master;
pub mod site;
pub mod view;

use serde::Deserialize;
use serde_json::Value;

pub use content::{policy_name, ContentError, SettingsPatch};
pub use effective::{lock_fleet, lock_fleet_shared, refresh, DEFAULT_POLICY_NAME};
pub use view::{AssignedTarget, EndpointCounts, Policy};

/// Body of `POST /api/policies`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePolicy {
    name: String,
    #[serde(default)]
    settings: SettingsPatch,
    /// On a master: the slaves (and groups inside them) it is for.
    target: Option<Value>,
}

/// Body of `PATCH /api/policies/{id}`: a new name and settings, both optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditPolicy {
    name: Option<String>,
    #[serde(default)]
    settings: SettingsPatch,
}

/// Body of `POST`/`DELETE /api/policies/{id}/assignments`: where the policy applies.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    target: String,
    id: Option<String>,
}
