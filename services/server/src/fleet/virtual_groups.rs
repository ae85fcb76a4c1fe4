//! Virtual groups: operator-chosen sets of endpoints, across network
//! groups, that policies can be assigned to.

use serde::Serialize;
use tokio_postgres::error::SqlState;

use super::{
    endpoints::{self, EndpointPage, EndpointView},
    filter::Page,
    offline_after, wake_outbox, ReadError,
};
use crate::{
    operators::{activity, Actor},
    policies,
    state::AppState,
};

/// A virtual group as the API shows it.
#[derive(Debug, Serialize)]
pub struct VirtualGroupView {
    pub description: String,
    pub id: i64,
    pub member_count: i64,
    pub name: String,
}

/// The members of one virtual group.
#[derive(Debug, Serialize)]
pub struct Members {
    pub endpoints: Vec<EndpointView>,
}

/// Adding or removing members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Membership {
    Add,
    Remove,
}

/// How many memberships a change made or ended.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MembershipChange {
    Added(u64),
    Removed(u64),
}

/// Why a virtual group operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VirtualGroupError {
    #[error("name is required")]
    NameRequired,
    #[error("a virtual group named '{0}' already exists")]
    NameTaken(String),
    #[error("no virtual group {0}")]
    NotFound(i64),
    #[error("unknown endpoints: {}", .0.join(", "))]
    UnknownEndpoints(Vec<String>),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// Every virtual group, by id.
pub async fn list(state: &AppState) -> Result<Vec<VirtualGroupView>, ReadError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT v.id, v.name, v.description, (SELECT count(*) FROM virtual_group_members m WHERE m.virtual_group_id = v.id)
               FROM virtual_groups v ORDER BY v.id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| VirtualGroupView { id: r.get(0), name: r.get(1), description: r.get(2), member_count: r.get(3) })
        .collect())
}

/// Creates an empty virtual group; names are unique.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    name: &str,
    description: String,
) -> Result<VirtualGroupView, VirtualGroupError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(VirtualGroupError::NameRequired);
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO virtual_groups (name, description) VALUES ($1, $2) RETURNING id",
            &[&name, &description],
        )
        .await
        .map_err(|e| match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => VirtualGroupError::NameTaken(name.to_owned()),
            _ => e.into(),
        })?
        .get(0);
    let after = serde_json::json!({"name": name, "description": description});
    activity::record(&tx, actor, "virtual_group.create", &format!("virtual_group:{id}"), None, Some(after)).await?;
    tx.commit().await?;
    Ok(VirtualGroupView { id, name: name.to_owned(), description, member_count: 0 })
}

/// Deletes a virtual group and its policy assignments; its former members
/// get the policy that now governs them.
pub async fn delete(state: &AppState, actor: &Actor, id: i64) -> Result<(), VirtualGroupError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let before = tx
        .query_opt("SELECT name, description FROM virtual_groups WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .ok_or(VirtualGroupError::NotFound(id))?;
    let members: Vec<String> = tx
        .query("SELECT endpoint_id FROM virtual_group_members WHERE virtual_group_id = $1", &[&id])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.execute(
        "DELETE FROM policy_assignments WHERE target_kind = 'virtual_group' AND target_id = $1",
        &[&id.to_string()],
    )
    .await?;
    if tx.execute("DELETE FROM virtual_groups WHERE id = $1", &[&id]).await? == 0 {
        return Err(VirtualGroupError::NotFound(id));
    }
    let queued = policies::refresh(&tx, &state.site, Some(&members), false).await?;
    let (name, description): (String, String) = (before.get(0), before.get(1));
    let before = serde_json::json!({"name": name, "description": description, "members": members.len()});
    activity::record(&tx, actor, "virtual_group.delete", &format!("virtual_group:{id}"), Some(before), None).await?;
    tx.commit().await?;
    wake_outbox(state, queued);
    Ok(())
}

/// The endpoints of virtual group `id`, by id.
pub async fn members(state: &AppState, id: i64) -> Result<Members, VirtualGroupError> {
    let client = state.pool.get().await?;
    if client.query_opt("SELECT 1 FROM virtual_groups WHERE id = $1", &[&id]).await?.is_none() {
        return Err(VirtualGroupError::NotFound(id));
    }
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM {} JOIN virtual_group_members m ON m.endpoint_id = e.id
                  WHERE m.virtual_group_id = $1 ORDER BY e.id",
                endpoints::COLUMNS,
                endpoints::FROM
            ),
            &[&id],
        )
        .await?;
    let offline = offline_after(&state.settings);
    Ok(Members { endpoints: rows.iter().map(|r| EndpointView::from_row(r, offline)).collect() })
}

/// One page of the endpoints of virtual group `id`, by id, and how many it
/// holds (the console's tree opens a virtual group a page at a time).
pub async fn members_page(
    state: &AppState,
    id: i64,
    page: Page,
) -> Result<EndpointPage<EndpointView>, VirtualGroupError> {
    let client = state.pool.get().await?;
    if client.query_opt("SELECT 1 FROM virtual_groups WHERE id = $1", &[&id]).await?.is_none() {
        return Err(VirtualGroupError::NotFound(id));
    }
    let total: i64 = client
        .query_one("SELECT count(*) FROM virtual_group_members WHERE virtual_group_id = $1", &[&id])
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "SELECT {} FROM {} JOIN virtual_group_members m ON m.endpoint_id = e.id
                  WHERE m.virtual_group_id = $1 ORDER BY e.id LIMIT $2 OFFSET $3",
                endpoints::COLUMNS,
                endpoints::FROM
            ),
            &[&id, &page.limit, &page.offset],
        )
        .await?;
    let offline = offline_after(&state.settings);
    Ok(EndpointPage { total, endpoints: rows.iter().map(|r| EndpointView::from_row(r, offline)).collect() })
}

/// Adds endpoints to (or removes them from) virtual group `id`, all of them
/// or none when one is unknown, and pushes the policies that now govern them.
pub async fn change_members(
    state: &AppState,
    actor: &Actor,
    id: i64,
    endpoints: &[String],
    membership: Membership,
) -> Result<MembershipChange, VirtualGroupError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if tx.query_opt("SELECT 1 FROM virtual_groups WHERE id = $1", &[&id]).await?.is_none() {
        return Err(VirtualGroupError::NotFound(id));
    }
    let known: Vec<String> = tx
        .query("SELECT id FROM endpoints WHERE id = ANY($1)", &[&endpoints])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let unknown: Vec<String> = endpoints.iter().filter(|m| !known.contains(m)).cloned().collect();
    if !unknown.is_empty() {
        return Err(VirtualGroupError::UnknownEndpoints(unknown));
    }
    let change = match membership {
        Membership::Add => MembershipChange::Added(
            tx.execute(
                "INSERT INTO virtual_group_members (virtual_group_id, endpoint_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
                &[&id, &endpoints],
            )
            .await?,
        ),
        Membership::Remove => MembershipChange::Removed(
            tx.execute(
                "DELETE FROM virtual_group_members WHERE virtual_group_id = $1 AND endpoint_id = ANY($2)",
                &[&id, &endpoints],
            )
            .await?,
        ),
    };
    let queued = policies::refresh(&tx, &state.site, Some(endpoints), false).await?;
    let (action, count) = match change {
        MembershipChange::Added(n) => ("virtual_group.add_members", n),
        MembershipChange::Removed(n) => ("virtual_group.remove_members", n),
    };
    let after = serde_json::json!({"endpoints": endpoints, "changed": count});
    activity::record(&tx, actor, action, &format!("virtual_group:{id}"), None, Some(after)).await?;
    tx.commit().await?;
    wake_outbox(state, queued);
    Ok(change)
}
