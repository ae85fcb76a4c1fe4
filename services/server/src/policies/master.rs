//! Policies on a master: authored here, targeted at slaves (and groups
//! inside them), sent through [`crate::hierarchy::fanout`] and shown with
//! one receipt per slave.

use deadpool_postgres::{GenericClient, PoolError};
use rampart_shared::{db::CachedStatements, hierarchy::ReceiptObject, messages::PolicySettings};
use uuid::Uuid;

use super::{content::ContentError, logged, object, policy_name, view, CreatePolicy, EditPolicy, Policy};
use crate::{
    hierarchy::fanout::{self, TargetError},
    operators::{activity, Actor},
    owner::Owner,
    state::AppState,
};

/// Why a policy operation on a master failed.
#[derive(Debug, thiserror::Error)]
pub enum MasterPolicyError {
    #[error("no policy {0}")]
    NotFound(Uuid),
    #[error("a master assigns policies to slaves through the policy's target, set when it is created")]
    AssignedThroughTarget,
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

async fn load_or_404<C: GenericClient>(client: &C, id: Uuid) -> Result<Policy, MasterPolicyError> {
    view::load(client, id).await?.ok_or(MasterPolicyError::NotFound(id))
}

/// Policy `id` with its per-slave receipts.
async fn with_receipts<C: GenericClient>(client: &C, id: Uuid) -> Result<Policy, MasterPolicyError> {
    let mut policy = load_or_404(client, id).await?;
    policy.slaves = Some(fanout::receipts(client, id).await?);
    Ok(policy)
}

/// Every policy.
pub async fn list(state: &AppState) -> Result<Vec<Policy>, MasterPolicyError> {
    Ok(view::list(&state.pool.get().await?).await?)
}

/// Policy `id` with where it stands on each slave.
pub async fn show(state: &AppState, id: Uuid) -> Result<Policy, MasterPolicyError> {
    with_receipts(&state.pool.get().await?, id).await
}

/// A new master policy, sent to the slaves of its target.
pub async fn create(state: &AppState, actor: &Actor, request: CreatePolicy) -> Result<Policy, MasterPolicyError> {
    let name = policy_name(&request.name)?;
    let settings = request.settings.apply(PolicySettings::default())?;
    let target = fanout::parse_target(request.target)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let slaves = fanout::resolve(&tx, &target).await?;
    let id = Uuid::new_v4();
    tx.execute_cached(
        "INSERT INTO policies (id, name, owner, settings, target) VALUES ($1, $2, $3, $4, $5)",
        &[
            &id,
            &name,
            &Owner::Local.as_str(),
            &serde_json::to_value(&settings).expect("settings serialize"),
            &serde_json::to_value(&target).expect("targets serialize"),
        ],
    )
    .await?;
    fanout::push_policy(&tx, state, id, &slaves).await?;
    let policy = with_receipts(&tx, id).await?;
    let mut after = logged(&policy);
    after["target"] = policy.target.clone().unwrap_or_default();
    activity::record(&tx, actor, "policy.create", &object(id), None, Some(after)).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(policy_id = %id, name, slaves = slaves.len(), "Created a master policy.");
    Ok(policy)
}

/// A new version of policy `id`, sent to its slaves.
pub async fn edit(state: &AppState, actor: &Actor, id: Uuid, request: EditPolicy) -> Result<Policy, MasterPolicyError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let current = load_or_404(&tx, id).await?;
    request.store::<_, MasterPolicyError>(&tx, id, &current).await?;
    let queued = push_new_version(&tx, state, id).await?;
    let policy = load_or_404(&tx, id).await?;
    let (before, after) = activity::changed(logged(&current), logged(&policy));
    activity::record(&tx, actor, "policy.edit", &object(id), Some(before), Some(after)).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(policy_id = %id, version = policy.version, queued, "Edited policy.");
    Ok(policy)
}

/// After an edit stored a new version: sends it to the policy's slaves (to
/// every active slave when it targets all). Returns how many.
async fn push_new_version<C: GenericClient>(tx: &C, state: &AppState, id: Uuid) -> Result<usize, MasterPolicyError> {
    let Some((_, target)) = fanout::stored_policy(tx, id).await? else { return Ok(0) };
    let mut slaves = fanout::receivers(tx, ReceiptObject::Policy, id).await?;
    if target.is_all() {
        slaves = fanout::resolve(tx, &target).await?;
    }
    fanout::push_policy(tx, state, id, &slaves).await?;
    Ok(slaves.len())
}

/// Deletes policy `id` and tells its slaves it is gone.
pub async fn delete(state: &AppState, actor: &Actor, id: Uuid) -> Result<(), MasterPolicyError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let current = load_or_404(&tx, id).await?;
    activity::record(&tx, actor, "policy.delete", &object(id), Some(logged(&current)), None).await?;
    fanout::remove_policy(&tx, state, id).await?;
    tx.execute("DELETE FROM policies WHERE id = $1", &[&id]).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(policy_id = %id, "Deleted policy.");
    Ok(())
}
