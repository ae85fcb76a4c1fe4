//! Master side of fan-out: policies and tasks sent to slaves, and receipts.
//!
//! Every send goes through [`super::to_slaves`], in the caller's transaction, one
//! message per slave (key `slave.<id>`) signed with that slave's command key,
//! together with a `pending` receipt for the slave. The slaves' reports then
//! move the receipts on ([`super::status`]); [`receipts`] and [`receipts_of`]
//! read them back as [`SlaveReceipt`]s.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::{
    db::CachedStatements,
    hierarchy::{
        CancelMasterTask, MasterCommand, MasterPolicy, MasterTask, PolicyRemoved, ReceiptObject, SlaveSelection,
        SlaveTarget,
    },
    messages::{PolicySettings, TaskKind},
};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{slaves, to_slaves};
use crate::state::AppState;

/// A `target` of a master policy or task that names no slave to send to.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "target is required on a master: {{\"slaves\": \"all\" | [slave ids], \"group\"?: name, \"virtual_group\"?: name}}"
    )]
    Missing,
    #[error("target: {0}; expected {{\"slaves\": \"all\" | [slave ids], \"group\"?: name, \"virtual_group\"?: name}}")]
    Malformed(serde_json::Error),
    /// The shape is wrong ([`SlaveTarget::validate`] says how).
    #[error("{0}")]
    Invalid(String),
    #[error("no registered slave {}", .0.join(", "))]
    UnknownSlaves(Vec<String>),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// Parses and checks the `target` an operator gave a master policy or task.
pub fn parse_target(target: Option<Value>) -> Result<SlaveTarget, TargetError> {
    let target = target.ok_or(TargetError::Missing)?;
    let target: SlaveTarget = serde_json::from_value(target).map_err(TargetError::Malformed)?;
    target.validate().map_err(TargetError::Invalid)?;
    Ok(target)
}

/// The active slaves `target` names, each once.
pub async fn resolve<C: GenericClient>(client: &C, target: &SlaveTarget) -> Result<Vec<String>, TargetError> {
    let active = slaves::active_slaves(client).await?;
    match &target.slaves {
        SlaveSelection::All(_) => Ok(active),
        SlaveSelection::Listed(ids) => {
            let unknown: Vec<String> = ids.iter().filter(|id| !active.contains(id)).cloned().collect();
            if !unknown.is_empty() {
                return Err(TargetError::UnknownSlaves(unknown));
            }
            let mut ids = ids.clone();
            ids.sort();
            ids.dedup();
            Ok(ids)
        }
    }
}

/// Resets the receipts of an object on `slaves` to `pending` at `version`.
pub async fn reset_receipts<C: GenericClient>(
    tx: &C,
    object: ReceiptObject,
    id: Uuid,
    version: i32,
    slaves: &[String],
) -> Result<(), tokio_postgres::Error> {
    tx.execute_cached(
        "INSERT INTO receipts (object_kind, object_id, slave_id, version, state)
         SELECT $1, $2, unnest($3::text[]), $4, 'pending'
         ON CONFLICT (object_kind, object_id, slave_id) DO UPDATE
            SET version = excluded.version, state = 'pending', reason = NULL, progress = NULL, updated_at = now()",
        &[&object.as_str(), &id, &slaves, &version],
    )
    .await?;
    Ok(())
}

/// A stored master policy as slaves receive it, with its target.
pub async fn stored_policy<C: GenericClient>(
    tx: &C,
    id: Uuid,
) -> Result<Option<(MasterPolicy, SlaveTarget)>, tokio_postgres::Error> {
    let Some(row) =
        tx.query_opt_cached("SELECT name, version, settings, target FROM policies WHERE id = $1", &[&id]).await?
    else {
        return Ok(None);
    };
    let Some(target) = row.get::<_, Option<Value>>(3).and_then(|t| serde_json::from_value::<SlaveTarget>(t).ok())
    else {
        return Ok(None);
    };
    let settings: PolicySettings = serde_json::from_value(row.get(2)).unwrap_or_default();
    let policy = MasterPolicy { policy_id: id, version: row.get(1), name: row.get(0), settings, scope: target.scope() };
    Ok(Some((policy, target)))
}

/// Sends the current version of policy `id` to `slaves` and resets their receipts.
pub async fn push_policy<C: GenericClient>(
    tx: &C,
    state: &AppState,
    id: Uuid,
    slaves: &[String],
) -> Result<(), tokio_postgres::Error> {
    let Some((policy, _)) = stored_policy(tx, id).await? else { return Ok(()) };
    reset_receipts(tx, ReceiptObject::Policy, id, policy.version, slaves).await?;
    to_slaves::send(tx, state, slaves, &MasterCommand::Policy(policy)).await
}

/// The slaves that hold a receipt for an object (those it was sent to).
pub async fn receivers<C: GenericClient>(
    tx: &C,
    object: ReceiptObject,
    id: Uuid,
) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(tx
        .query_cached(
            "SELECT r.slave_id FROM receipts r JOIN slaves s ON s.id = r.slave_id
              WHERE r.object_kind = $1 AND r.object_id = $2 AND s.state = 'active' ORDER BY r.slave_id",
            &[&object.as_str(), &id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Tells the slaves holding policy `id` that it is gone.
pub async fn remove_policy<C: GenericClient>(tx: &C, state: &AppState, id: Uuid) -> Result<(), tokio_postgres::Error> {
    let slaves = receivers(tx, ReceiptObject::Policy, id).await?;
    to_slaves::send(tx, state, &slaves, &MasterCommand::PolicyRemoved(PolicyRemoved { policy_id: id })).await?;
    tx.execute_cached(
        "DELETE FROM receipts WHERE object_kind = $1 AND object_id = $2",
        &[&ReceiptObject::Policy.as_str(), &id],
    )
    .await?;
    Ok(())
}

/// Sends a new task to `slaves`.
pub async fn push_task<C: GenericClient>(
    tx: &C,
    state: &AppState,
    id: Uuid,
    name: &str,
    kind: TaskKind,
    target: &SlaveTarget,
    slaves: &[String],
) -> Result<(), tokio_postgres::Error> {
    reset_receipts(tx, ReceiptObject::Task, id, 1, slaves).await?;
    let cmd = MasterCommand::Task(MasterTask { task_id: id, name: name.to_owned(), kind, scope: target.scope() });
    to_slaves::send(tx, state, slaves, &cmd).await
}

/// Asks the slaves still running task `id` to cancel it.
pub async fn cancel_task<C: GenericClient>(tx: &C, state: &AppState, id: Uuid) -> Result<usize, tokio_postgres::Error> {
    let slaves: Vec<String> = tx
        .query_cached(
            "SELECT r.slave_id FROM receipts r JOIN slaves s ON s.id = r.slave_id
              WHERE r.object_kind = $1 AND r.object_id = $2 AND s.state = 'active'
                AND r.state IN ('pending', 'delivered') ORDER BY r.slave_id",
            &[&ReceiptObject::Task.as_str(), &id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    to_slaves::send(tx, state, &slaves, &MasterCommand::CancelTask(CancelMasterTask { task_id: id })).await?;
    Ok(slaves.len())
}

/// What a newly registered slave must receive: every policy that targets all slaves.
pub async fn welcome<C: GenericClient>(tx: &C, state: &AppState, slave: &str) -> Result<usize, tokio_postgres::Error> {
    let ids: Vec<Uuid> = tx
        .query_cached("SELECT id FROM policies WHERE target ->> 'slaves' = 'all' ORDER BY created_at", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in &ids {
        push_policy(tx, state, *id, &[slave.to_owned()]).await?;
    }
    Ok(ids.len())
}

/// What a receipt says about the endpoints of its slave: one kind per
/// [`ReceiptObject`], read from the receipt's stored `progress`.
pub trait ReceiptProgress: Serialize + Sized {
    /// The objects whose receipts carry this progress.
    const OBJECT: ReceiptObject;

    /// The progress from the stored JSON (`None` before the slave's first report).
    fn from_stored(progress: Option<Value>) -> Self;
}

/// Where a master policy or task stands on one slave. Fields in the order
/// the API has always answered them (alphabetical); `progress` adds the
/// kind's own field.
#[derive(Debug, Serialize)]
pub struct SlaveReceipt<P> {
    #[serde(flatten)]
    pub progress: P,
    pub reason: Option<String>,
    pub slave: String,
    /// `pending` until the slave reports, then as the slave says.
    pub state: String,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

/// Receipts of one object, per slave.
pub async fn receipts<P: ReceiptProgress, C: GenericClient>(
    client: &C,
    id: Uuid,
) -> Result<Vec<SlaveReceipt<P>>, tokio_postgres::Error> {
    Ok(receipts_of(client, &[id]).await?.remove(&id).unwrap_or_default())
}

/// Receipts of several objects in one query, by object id.
pub async fn receipts_of<P: ReceiptProgress, C: GenericClient>(
    client: &C,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<SlaveReceipt<P>>>, tokio_postgres::Error> {
    let rows = client
        .query_cached(
            "SELECT object_id, slave_id, version, state, reason, progress, updated_at FROM receipts
              WHERE object_kind = $1 AND object_id = ANY($2) ORDER BY object_id, slave_id",
            &[&P::OBJECT.as_str(), &ids],
        )
        .await?;
    let mut by_object: HashMap<Uuid, Vec<SlaveReceipt<P>>> = HashMap::new();
    for r in &rows {
        by_object.entry(r.get(0)).or_default().push(SlaveReceipt {
            progress: P::from_stored(r.get(5)),
            reason: r.get(4),
            slave: r.get(1),
            state: r.get(3),
            updated_at: r.get(6),
            version: r.get(2),
        });
    }
    Ok(by_object)
}
