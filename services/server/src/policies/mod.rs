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

use deadpool_postgres::GenericClient;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

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

impl EditPolicy {
    /// Stores the next version of policy `id` (now `current`) with this
    /// edit, in the caller's transaction.
    pub(crate) async fn store<C, E>(self, tx: &C, id: Uuid, current: &Policy) -> Result<(), E>
    where
        C: GenericClient,
        E: From<ContentError> + From<tokio_postgres::Error>,
    {
        let settings = self.settings.apply(serde_json::from_value(current.settings.clone()).unwrap_or_default())?;
        let name = self.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        tx.execute(
            "UPDATE policies SET name = COALESCE($2, name), settings = $3, version = version + 1, updated_at = now() WHERE id = $1",
            &[&id, &name, &serde_json::to_value(&settings).expect("settings serialize")],
        )
        .await?;
        Ok(())
    }
}

/// Body of `POST`/`DELETE /api/policies/{id}/assignments`: where the policy applies.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    target: String,
    id: Option<String>,
}

/// What the activity log keeps of a policy: its name, version and settings.
pub(crate) fn logged(policy: &Policy) -> Value {
    json!({"name": policy.name, "version": policy.version, "settings": policy.settings})
}

/// The activity log's name of policy `id`.
pub(crate) fn object(id: Uuid) -> String {
    format!("policy:{id}")
}
