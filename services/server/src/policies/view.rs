//! A policy as the API shows it, read in one query with its assignments.
//!
//! Fields are declared in the order the API has always answered them
//! (alphabetical), so the JSON stays byte for byte the same.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::types::Json;
use uuid::Uuid;

use rampart_shared::hierarchy::ReceiptObject;

use crate::{
    hierarchy::fanout::{ReceiptProgress, SlaveReceipt},
    owner::Owner,
};

/// One policy: stored fields, assignments, and (when shown alone) where it
/// stands on the endpoints or the slaves it is for.
#[derive(Debug, Serialize)]
pub struct Policy {
    pub assignments: Vec<AssignedTarget>,
    pub created_at: DateTime<Utc>,
    /// On a site, when the policy is shown alone: the endpoints it governs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<EndpointCounts>,
    pub id: Uuid,
    pub name: String,
    pub owner: Owner,
    /// The stored [`PolicySettings`](rampart_shared::messages::PolicySettings).
    pub settings: Value,
    /// On a master, when the policy is shown alone: one receipt per slave.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slaves: Option<Vec<SlaveReceipt<PolicyReach>>>,
    /// On a master: the stored [`SlaveTarget`](rampart_shared::hierarchy::SlaveTarget).
    pub target: Option<Value>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

/// Where a policy is assigned on a site: `all`, or a group, virtual group
/// or endpoint by id.
#[derive(Debug, Deserialize, Serialize)]
pub struct AssignedTarget {
    pub id: Option<String>,
    pub target: String,
}

/// Endpoints a policy governs, and how many of them run its current version.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct EndpointCounts {
    pub applied: i64,
    pub assigned: i64,
}

const POLICY_SELECT: &str = "SELECT p.id, p.name, p.owner, p.version, p.settings, p.created_at, p.updated_at,
    COALESCE((SELECT json_agg(json_build_object('target', a.target_kind, 'id', NULLIF(a.target_id, '')) ORDER BY a.assigned_at)
                FROM policy_assignments a WHERE a.policy_id = p.id), '[]'::json),
    p.target
    FROM policies p";

impl Policy {
    fn from_row(r: &tokio_postgres::Row) -> Self {
        Self {
            assignments: r.get::<_, Json<Vec<AssignedTarget>>>(7).0,
            created_at: r.get(5),
            endpoints: None,
            id: r.get(0),
            name: r.get(1),
            owner: r.get(2),
            settings: r.get(4),
            slaves: None,
            target: r.get(8),
            updated_at: r.get(6),
            version: r.get(3),
        }
    }
}

/// Policy `id`, if there is one.
pub async fn load<C: GenericClient>(client: &C, id: Uuid) -> Result<Option<Policy>, tokio_postgres::Error> {
    let row = client.query_opt(&format!("{POLICY_SELECT} WHERE p.id = $1"), &[&id]).await?;
    Ok(row.as_ref().map(Policy::from_row))
}

/// Every policy, oldest first.
pub async fn list<C: GenericClient>(client: &C) -> Result<Vec<Policy>, tokio_postgres::Error> {
    let rows = client.query(&format!("{POLICY_SELECT} ORDER BY p.created_at"), &[]).await?;
    Ok(rows.iter().map(Policy::from_row).collect())
}

/// The endpoints governed by policy `id` on this site.
pub async fn endpoint_counts<C: GenericClient>(client: &C, id: Uuid) -> Result<EndpointCounts, tokio_postgres::Error> {
    let counts = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE applied_policy_id = policy_id AND applied_policy_version = policy_version)
               FROM endpoints WHERE policy_id = $1",
            &[&id],
        )
        .await?;
    Ok(EndpointCounts { assigned: counts.get(0), applied: counts.get(1) })
}

/// What a policy receipt says: the endpoints the policy governs on that slave.
#[derive(Debug, Serialize)]
pub struct PolicyReach {
    pub endpoints: EndpointCounts,
}

impl ReceiptProgress for PolicyReach {
    const OBJECT: ReceiptObject = ReceiptObject::Policy;

    fn from_stored(progress: Option<Value>) -> Self {
        let endpoints = progress.and_then(|p| serde_json::from_value(p).ok()).unwrap_or_default();
        Self { endpoints }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API used to build this JSON as a `serde_json::Value`, whose keys
    /// come out sorted: the typed view must write the same bytes.
    #[test]
    fn policies_serialize_as_the_api_always_did() {
        let policy = Policy {
            assignments: vec![AssignedTarget { id: None, target: "all".into() }],
            created_at: DateTime::UNIX_EPOCH,
            endpoints: Some(EndpointCounts { applied: 1, assigned: 2 }),
            id: Uuid::nil(),
            name: "Office".into(),
            owner: Owner::Local,
            settings: serde_json::json!({"realtime_protection": true}),
            slaves: Some(vec![SlaveReceipt {
                progress: PolicyReach { endpoints: EndpointCounts::default() },
                reason: None,
                slave: "paris".into(),
                state: "pending".into(),
                updated_at: DateTime::UNIX_EPOCH,
                version: 1,
            }]),
            target: None,
            updated_at: DateTime::UNIX_EPOCH,
            version: 1,
        };
        let typed = serde_json::to_string(&policy).unwrap();
        assert_eq!(typed, serde_json::to_value(&policy).unwrap().to_string());
        assert!(typed.contains(r#""endpoints":{"applied":1,"assigned":2}"#), "{typed}");
    }

    #[test]
    fn policy_receipts_read_stored_progress() {
        let reach = PolicyReach::from_stored(Some(serde_json::json!({"assigned": 3, "applied": 2})));
        assert_eq!(serde_json::to_string(&reach).unwrap(), r#"{"endpoints":{"applied":2,"assigned":3}}"#);
        let none = PolicyReach::from_stored(None);
        assert_eq!(serde_json::to_string(&none).unwrap(), r#"{"endpoints":{"applied":0,"assigned":0}}"#);
    }
}
