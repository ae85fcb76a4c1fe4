//! Policies on a stand-alone or slave: authored here and assigned to the
//! fleet, or sent by the master and read-only here.
//!
//! Every change recomputes the effective policies ([`super::refresh`]) in
//! the same transaction and wakes the outbox for the endpoints it queued.

use deadpool_postgres::{GenericClient, PoolError};
use rampart_shared::messages::PolicySettings;
use uuid::Uuid;

use super::{
    content::ContentError, logged, object, policy_name, refresh, view, Assignment, CreatePolicy, EditPolicy, Policy,
};
use crate::{
    operators::{activity, Actor},
    owner::Owner,
    state::AppState,
};

/// Why a policy operation on a site failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("no policy {0}")]
    NotFound(Uuid),
    #[error("policy {0} is owned by the master and is read-only on this server; change it on the master")]
    OwnedByMaster(Uuid),
    #[error(
        "target applies to policies created on a master; here, assign the policy with POST /api/policies/{{id}}/assignments"
    )]
    TargetOnSite,
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Assignment(#[from] AssignmentError),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// An assignment that points at nothing on this site.
#[derive(Debug, thiserror::Error)]
pub enum AssignmentError {
    #[error("target 'all' takes no id")]
    AllTakesNoId,
    #[error("target '{0}' needs an id")]
    IdRequired(String),
    #[error("group id '{0}' is not a number")]
    GroupIdNotANumber(String),
    #[error("group {0} does not exist")]
    NoGroup(i64),
    #[error("virtual group id '{0}' is not a number")]
    VirtualGroupIdNotANumber(String),
    #[error("virtual group {0} does not exist")]
    NoVirtualGroup(i64),
    #[error("endpoint '{0}' does not exist")]
    NoEndpoint(String),
    #[error("target '{0}' is not one of all, group, virtual_group, endpoint")]
    UnknownTarget(String),
}

async fn load_or_404<C: GenericClient>(client: &C, id: Uuid) -> Result<Policy, PolicyError> {
    view::load(client, id).await?.ok_or(PolicyError::NotFound(id))
}

/// Policy `id` if this server may change it.
async fn load_owned<C: GenericClient>(client: &C, id: Uuid) -> Result<Policy, PolicyError> {
    let policy = load_or_404(client, id).await?;
    if policy.owner == Owner::Master {
        return Err(PolicyError::OwnedByMaster(id));
    }
    Ok(policy)
}

/// Every policy.
pub async fn list(state: &AppState) -> Result<Vec<Policy>, PolicyError> {
    Ok(view::list(&state.pool.get().await?).await?)
}

/// Policy `id` with the endpoints it governs.
pub async fn show(state: &AppState, id: Uuid) -> Result<Policy, PolicyError> {
    let client = state.pool.get().await?;
    let mut policy = load_or_404(&client, id).await?;
    policy.endpoints = Some(view::endpoint_counts(&client, id).await?);
    Ok(policy)
}

/// A new local policy, assigned nowhere yet.
pub async fn create(state: &AppState, actor: &Actor, request: CreatePolicy) -> Result<Policy, PolicyError> {
    let name = policy_name(&request.name)?;
    let settings = request.settings.apply(PolicySettings::default())?;
    if request.target.is_some() {
        return Err(PolicyError::TargetOnSite);
    }
    let id = Uuid::new_v4();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO policies (id, name, owner, settings) VALUES ($1, $2, $3, $4)",
        &[&id, &name, &Owner::Local.as_str(), &serde_json::to_value(&settings).expect("settings serialize")],
    )
    .await?;
    let policy = load_or_404(&tx, id).await?;
    activity::record(&tx, actor, "policy.create", &object(id), None, Some(logged(&policy))).await?;
    tx.commit().await?;
    tracing::info!(policy_id = %id, name, "Created policy.");
    Ok(policy)
}

/// A new version of local policy `id`, pushed to the endpoints it governs.
pub async fn edit(state: &AppState, actor: &Actor, id: Uuid, request: EditPolicy) -> Result<Policy, PolicyError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let current = load_owned(&tx, id).await?;
    request.store::<_, PolicyError>(&tx, id, &current).await?;
    let queued = refresh(&tx, &state.site, None, false).await?;
    let policy = load_or_404(&tx, id).await?;
    let (before, after) = activity::changed(logged(&current), logged(&policy));
    activity::record(&tx, actor, "policy.edit", &object(id), Some(before), Some(after)).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(policy_id = %id, version = policy.version, queued, "Edited policy.");
    Ok(policy)
}

/// Deletes local policy `id`; its endpoints fall back to the next policy.
pub async fn delete(state: &AppState, actor: &Actor, id: Uuid) -> Result<(), PolicyError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let current = load_owned(&tx, id).await?;
    activity::record(&tx, actor, "policy.delete", &object(id), Some(logged(&current)), None).await?;
    tx.execute("DELETE FROM policies WHERE id = $1", &[&id]).await?;
    let queued = refresh(&tx, &state.site, None, false).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(policy_id = %id, endpoints = queued, "Deleted policy.");
    Ok(())
}

/// Assigns local policy `id` to a target (`assign`) or removes that assignment.
pub async fn change_assignment(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
    assignment: Assignment,
    assign: bool,
) -> Result<Policy, PolicyError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    load_owned(&tx, id).await?;
    let target_id = target_id(&tx, &assignment).await?;
    let target = &assignment.target;
    if assign {
        tx.execute(
            "INSERT INTO policy_assignments (policy_id, target_kind, target_id) VALUES ($1, $2, $3)
             ON CONFLICT (policy_id, target_kind, target_id) DO UPDATE SET assigned_at = clock_timestamp()",
            &[&id, target, &target_id],
        )
        .await?;
    } else {
        tx.execute(
            "DELETE FROM policy_assignments WHERE policy_id = $1 AND target_kind = $2 AND target_id = $3",
            &[&id, target, &target_id],
        )
        .await?;
    }
    let queued = refresh(&tx, &state.site, None, false).await?;
    let policy = load_or_404(&tx, id).await?;
    let assigned = serde_json::json!({"target": target, "id": assignment.id});
    let (action, before, after) =
        if assign { ("policy.assign", None, Some(assigned)) } else { ("policy.unassign", Some(assigned), None) };
    activity::record(&tx, actor, action, &object(id), before, after).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(policy_id = %id, target = %target, target_id, assign, endpoints = queued, "Changed policy assignment.");
    Ok(policy)
}

/// The stored `target_id` of an assignment (empty for `all`), once what it
/// names exists.
async fn target_id<C: GenericClient>(tx: &C, a: &Assignment) -> Result<String, PolicyError> {
    match (a.target.as_str(), &a.id) {
        ("all", None) => Ok(String::new()),
        ("all", Some(_)) => Err(AssignmentError::AllTakesNoId.into()),
        ("group" | "virtual_group" | "endpoint", None) => Err(AssignmentError::IdRequired(a.target.clone()).into()),
        ("group", Some(g)) => {
            let gid: i64 = g.parse().map_err(|_| AssignmentError::GroupIdNotANumber(g.clone()))?;
            if tx.query_opt("SELECT 1 FROM network_groups WHERE id = $1", &[&gid]).await?.is_none() {
                return Err(AssignmentError::NoGroup(gid).into());
            }
            Ok(gid.to_string())
        }
        ("virtual_group", Some(v)) => {
            let vid: i64 = v.parse().map_err(|_| AssignmentError::VirtualGroupIdNotANumber(v.clone()))?;
            if tx.query_opt("SELECT 1 FROM virtual_groups WHERE id = $1", &[&vid]).await?.is_none() {
                return Err(AssignmentError::NoVirtualGroup(vid).into());
            }
            Ok(vid.to_string())
        }
        ("endpoint", Some(e)) => {
            if tx.query_opt("SELECT 1 FROM endpoints WHERE id = $1", &[e]).await?.is_none() {
                return Err(AssignmentError::NoEndpoint(e.clone()).into());
            }
            Ok(e.clone())
        }
        (other, _) => Err(AssignmentError::UnknownTarget(other.to_owned()).into()),
    }
}
