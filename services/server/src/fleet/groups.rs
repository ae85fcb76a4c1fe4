//! Network groups (the network builder): a tree under the Default group,
//! each group with an optional subnet. Deleting a group hands its endpoints
//! and subgroups to its parent.

use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_postgres::{error::SqlState, Row};

use super::{wake_outbox, ReadError};
use crate::{
    operators::{activity, Actor},
    policies,
    state::AppState,
};

/// The group every endpoint starts in; it cannot be deleted.
pub const DEFAULT_GROUP: i64 = 1;

const SELECT: &str = "SELECT g.id, g.name, g.parent_id, g.subnet::text,
    (SELECT count(*) FROM endpoints e WHERE e.group_id = g.id) FROM network_groups g";

/// A network group as the API shows it.
#[derive(Debug, Serialize)]
pub struct GroupView {
    pub endpoint_count: i64,
    pub id: i64,
    pub name: String,
    pub parent_id: Option<i64>,
    /// CIDR, e.g. `10.1.0.0/16`.
    pub subnet: Option<String>,
}

impl GroupView {
    fn from_row(r: &Row) -> Self {
        Self { id: r.get(0), name: r.get(1), parent_id: r.get(2), subnet: r.get(3), endpoint_count: r.get(4) }
    }

    /// What the activity log keeps of a group.
    fn logged(&self) -> Value {
        json!({"name": self.name, "parent_id": self.parent_id, "subnet": self.subnet})
    }
}

/// Why a group operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("name is required")]
    NameRequired,
    #[error("subnet '{0}' must be in CIDR form, e.g. 10.1.0.0/16")]
    SubnetNotCidr(String),
    #[error("subnet '{subnet}': '{address}' is not an IP address")]
    SubnetAddress { subnet: String, address: String },
    #[error("subnet '{subnet}': prefix length must be 0..{max}")]
    SubnetPrefix { subnet: String, max: u8 },
    /// The database would not take the subnet (host bits set, for one).
    #[error("subnet is not valid: {0}")]
    SubnetRefused(String),
    #[error("parent_id {0} does not exist")]
    UnknownParent(i64),
    #[error("parent_id cannot be changed; create a new group and move endpoints")]
    ParentFixed,
    #[error("no group {0}")]
    NotFound(i64),
    #[error("the Default group cannot be deleted")]
    DefaultGroup,
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Every group, by id.
pub async fn list(state: &AppState) -> Result<Vec<GroupView>, ReadError> {
    let client = state.pool.get().await?;
    let rows = client.query(&format!("{SELECT} ORDER BY g.id"), &[]).await?;
    Ok(rows.iter().map(GroupView::from_row).collect())
}

/// Creates a group under `parent_id` (else the Default group).
pub async fn create(
    state: &AppState,
    actor: &Actor,
    name: Option<&str>,
    parent_id: Option<i64>,
    subnet: Option<&str>,
) -> Result<GroupView, GroupError> {
    let name = name.map(str::trim).filter(|n| !n.is_empty()).ok_or(GroupError::NameRequired)?;
    check_subnet(subnet)?;
    let parent = parent_id.unwrap_or(DEFAULT_GROUP);
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if tx.query_opt("SELECT 1 FROM network_groups WHERE id = $1", &[&parent]).await?.is_none() {
        return Err(GroupError::UnknownParent(parent));
    }
    let id: i64 = tx
        .query_one(
            "INSERT INTO network_groups (name, parent_id, subnet) VALUES ($1, $2, $3::text::cidr) RETURNING id",
            &[&name, &parent, &subnet],
        )
        .await
        .map_err(subnet_refused)?
        .get(0);
    let group = one(&tx, id).await?;
    activity::record(&tx, actor, "group.create", &format!("group:{id}"), None, Some(group.logged())).await?;
    tx.commit().await?;
    tracing::info!(group_id = id, name, "Created network group.");
    Ok(group)
}

/// Renames a group or changes its subnet (a group keeps its parent).
pub async fn edit(
    state: &AppState,
    actor: &Actor,
    id: i64,
    name: Option<&str>,
    parent_id: Option<i64>,
    subnet: Option<&str>,
) -> Result<GroupView, GroupError> {
    check_subnet(subnet)?;
    if parent_id.is_some() {
        return Err(GroupError::ParentFixed);
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let before = one(&tx, id).await?;
    tx.execute(
        "UPDATE network_groups SET name = COALESCE($2, name), subnet = COALESCE($3::text::cidr, subnet) WHERE id = $1",
        &[&id, &name, &subnet],
    )
    .await
    .map_err(subnet_refused)?;
    let after = one(&tx, id).await?;
    let (b, a) = activity::changed(before.logged(), after.logged());
    activity::record(&tx, actor, "group.edit", &format!("group:{id}"), Some(b), Some(a)).await?;
    tx.commit().await?;
    Ok(after)
}

/// Deletes a group: its endpoints and subgroups go to its parent, its
/// policy assignments go, and the moved endpoints get their new policy.
pub async fn delete(state: &AppState, actor: &Actor, id: i64) -> Result<(), GroupError> {
    if id == DEFAULT_GROUP {
        return Err(GroupError::DefaultGroup);
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    policies::lock_fleet(&tx).await?;
    let before = one(&tx, id).await?;
    let parent = before.parent_id.unwrap_or(DEFAULT_GROUP);
    let moved: Vec<String> = tx
        .query("UPDATE endpoints SET group_id = $2 WHERE group_id = $1 RETURNING id", &[&id, &parent])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.execute("UPDATE network_groups SET parent_id = $2 WHERE parent_id = $1", &[&id, &parent]).await?;
    tx.execute("DELETE FROM policy_assignments WHERE target_kind = 'group' AND target_id = $1", &[&id.to_string()])
        .await?;
    tx.execute("DELETE FROM network_groups WHERE id = $1", &[&id]).await?;
    let queued = policies::refresh(&tx, &state.site, Some(&moved), false).await?;
    let after = json!({"endpoints_moved_to": parent, "endpoints": moved.len()});
    activity::record(&tx, actor, "group.delete", &format!("group:{id}"), Some(before.logged()), Some(after)).await?;
    tx.commit().await?;
    wake_outbox(state, queued);
    Ok(())
}

async fn one<C: GenericClient>(client: &C, id: i64) -> Result<GroupView, GroupError> {
    let row = client.query_opt(&format!("{SELECT} WHERE g.id = $1"), &[&id]).await?.ok_or(GroupError::NotFound(id))?;
    Ok(GroupView::from_row(&row))
}

/// A subnet in CIDR form with a prefix its address family allows.
fn check_subnet(subnet: Option<&str>) -> Result<(), GroupError> {
    let Some(s) = subnet else { return Ok(()) };
    let (address, bits) = s.split_once('/').ok_or_else(|| GroupError::SubnetNotCidr(s.to_owned()))?;
    let ip: std::net::IpAddr =
        address.parse().map_err(|_| GroupError::SubnetAddress { subnet: s.to_owned(), address: address.to_owned() })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match bits.parse::<u8>() {
        Ok(b) if b <= max => Ok(()),
        _ => Err(GroupError::SubnetPrefix { subnet: s.to_owned(), max }),
    }
}

/// The database's refusal of a subnet, or the error as it is.
fn subnet_refused(e: tokio_postgres::Error) -> GroupError {
    if e.code() == Some(&SqlState::INVALID_TEXT_REPRESENTATION) || e.code() == Some(&SqlState::INVALID_PARAMETER_VALUE)
    {
        return GroupError::SubnetRefused(e.as_db_error().map(|d| d.message()).unwrap_or("").to_owned());
    }
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_must_be_cidr() {
        assert!(check_subnet(None).is_ok());
        assert!(check_subnet(Some("10.1.0.0/16")).is_ok());
        assert!(check_subnet(Some("fd00::/128")).is_ok());
        assert!(matches!(check_subnet(Some("10.0.0.0")), Err(GroupError::SubnetNotCidr(_))));
        assert!(matches!(check_subnet(Some("x/3")), Err(GroupError::SubnetAddress { .. })));
        let err = check_subnet(Some("10.0.0.0/40")).unwrap_err();
        assert_eq!(err.to_string(), "subnet '10.0.0.0/40': prefix length must be 0..32");
    }
}
