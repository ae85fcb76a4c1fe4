//! Master side of fan-out: policies and tasks sent to slaves, and receipts.
//!
//! Every send is written to the outbox in the caller's transaction, one
//! message per slave (key `slave.<id>`) signed with that slave's command key,
//! together with a `pending` receipt for the slave. The slaves' reports then
//! move the receipts on ([`super::slaves`]).

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use rampart_shared::{
    db::CachedStatements,
    hierarchy::{
        CancelMasterTask, MasterCommand, MasterPolicy, MasterTask, PolicyRemoved, SlaveSelection, SlaveTarget,
    },
    messages::{PolicySettings, TaskKind},
    topology::Topology,
};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{outbox, state::AppState};

/// Every active slave, by id.
pub async fn active_slaves<C: GenericClient>(client: &C) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(client
        .query_cached("SELECT id FROM slaves WHERE state = 'active' ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The active slaves `target` names; `Err` names the unknown ones.
pub async fn resolve<C: GenericClient>(
    client: &C,
    target: &SlaveTarget,
) -> Result<Result<Vec<String>, String>, tokio_postgres::Error> {
    let active = active_slaves(client).await?;
    Ok(match &target.slaves {
        SlaveSelection::All(_) => Ok(active),
        SlaveSelection::Listed(ids) => {
            let unknown: Vec<&str> = ids.iter().filter(|id| !active.contains(id)).map(String::as_str).collect();
            if unknown.is_empty() {
                let mut ids = ids.clone();
                ids.sort();
                ids.dedup();
                Ok(ids)
            } else {
                Err(format!("no registered slave {}", unknown.join(", ")))
            }
        }
    })
}

/// A command to `slave`, signed with its command key.
fn command(state: &AppState, slave: &str, command: &MasterCommand) -> outbox::Command {
    outbox::Command {
        exchange: state.site.topology.commands_exchange(),
        routing_key: Topology::slave_key(slave),
        envelope: command.to_envelope(&state.site.instance),
        signer: state.keyring.command_key_for(slave),
    }
}

/// Queues `cmd` to each of `slaves`.
pub async fn send<C: GenericClient>(
    tx: &C,
    state: &AppState,
    slaves: &[String],
    cmd: &MasterCommand,
) -> Result<(), tokio_postgres::Error> {
    let commands: Vec<_> = slaves.iter().map(|s| command(state, s, cmd)).collect();
    outbox::enqueue(tx, &commands).await
}

/// Resets the receipts of an object on `slaves` to `pending` at `version`.
pub async fn reset_receipts<C: GenericClient>(
    tx: &C,
    object_kind: &str,
    id: Uuid,
    version: i32,
    slaves: &[String],
) -> Result<(), tokio_postgres::Error> {
    tx.execute_cached(
        "INSERT INTO receipts (object_kind, object_id, slave_id, version, state)
         SELECT $1, $2, unnest($3::text[]), $4, 'pending'
         ON CONFLICT (object_kind, object_id, slave_id) DO UPDATE
            SET version = excluded.version, state = 'pending', reason = NULL, progress = NULL, updated_at = now()",
        &[&object_kind, &id, &slaves, &version],
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
    reset_receipts(tx, "policy", id, policy.version, slaves).await?;
    send(tx, state, slaves, &MasterCommand::Policy(policy)).await
}

/// The slaves that hold a receipt for an object (those it was sent to).
pub async fn receivers<C: GenericClient>(
    tx: &C,
    object_kind: &str,
    id: Uuid,
) -> Result<Vec<String>, tokio_postgres::Error> {
    Ok(tx
        .query_cached(
            "SELECT r.slave_id FROM receipts r JOIN slaves s ON s.id = r.slave_id
              WHERE r.object_kind = $1 AND r.object_id = $2 AND s.state = 'active' ORDER BY r.slave_id",
            &[&object_kind, &id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Tells the slaves holding policy `id` that it is gone.
pub async fn remove_policy<C: GenericClient>(tx: &C, state: &AppState, id: Uuid) -> Result<(), tokio_postgres::Error> {
    let slaves = receivers(tx, "policy", id).await?;
    send(tx, state, &slaves, &MasterCommand::PolicyRemoved(PolicyRemoved { policy_id: id })).await?;
    tx.execute_cached("DELETE FROM receipts WHERE object_kind = 'policy' AND object_id = $1", &[&id]).await?;
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
    reset_receipts(tx, "task", id, 1, slaves).await?;
    let cmd = MasterCommand::Task(MasterTask { task_id: id, name: name.to_owned(), kind, scope: target.scope() });
    send(tx, state, slaves, &cmd).await
}

/// Asks the slaves still running task `id` to cancel it.
pub async fn cancel_task<C: GenericClient>(tx: &C, state: &AppState, id: Uuid) -> Result<usize, tokio_postgres::Error> {
    let slaves: Vec<String> = tx
        .query_cached(
            "SELECT r.slave_id FROM receipts r JOIN slaves s ON s.id = r.slave_id
              WHERE r.object_kind = 'task' AND r.object_id = $1 AND s.state = 'active'
                AND r.state IN ('pending', 'delivered') ORDER BY r.slave_id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    send(tx, state, &slaves, &MasterCommand::CancelTask(CancelMasterTask { task_id: id })).await?;
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

/// Receipts of one object, per slave, for the API.
pub async fn receipts<C: GenericClient>(
    client: &C,
    object_kind: &str,
    id: Uuid,
) -> Result<Vec<Value>, tokio_postgres::Error> {
    Ok(receipts_of(client, object_kind, &[id]).await?.remove(&id).unwrap_or_default())
}

/// Receipts of several objects in one query, by object id.
pub async fn receipts_of<C: GenericClient>(
    client: &C,
    object_kind: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Value>>, tokio_postgres::Error> {
    let rows = client
        .query_cached(
            "SELECT object_id, slave_id, version, state, reason, progress, updated_at FROM receipts
              WHERE object_kind = $1 AND object_id = ANY($2) ORDER BY object_id, slave_id",
            &[&object_kind, &ids],
        )
        .await?;
    let mut by_object: HashMap<Uuid, Vec<Value>> = HashMap::new();
    for r in &rows {
        let progress: Option<Value> = r.get(5);
        let mut v = json!({"slave": r.get::<_, String>(1), "version": r.get::<_, i32>(2), "state": r.get::<_, String>(3),
                           "reason": r.get::<_, Option<String>>(4), "updated_at": r.get::<_, chrono::DateTime<chrono::Utc>>(6)});
        if object_kind == "policy" {
            v["endpoints"] = progress.unwrap_or_else(|| json!({"assigned": 0, "applied": 0}));
        } else {
            v["progress"] = with_percent(progress.unwrap_or_else(|| json!({})));
        }
        by_object.entry(r.get(0)).or_default().push(v);
    }
    Ok(by_object)
}

/// The counters of a task progress object ([`TaskProgress`](rampart_shared::hierarchy::TaskProgress)).
const TASK_COUNTERS: [&str; 6] = ["total", "pending", "running", "succeeded", "failed", "cancelled"];

/// Adds the zero counters and `percent` to a task progress object.
pub fn with_percent(mut progress: Value) -> Value {
    for key in TASK_COUNTERS {
        if progress.get(key).is_none() {
            progress[key] = json!(0);
        }
    }
    let n = |k: &str| progress[k].as_i64().unwrap_or(0);
    let (total, finished) = (n("total"), n("succeeded") + n("failed") + n("cancelled"));
    progress["percent"] = json!(if total == 0 { 0 } else { finished * 100 / total });
    progress
}

/// Sum of the per-slave progress of a task.
pub fn total_progress(per_slave: &[Value]) -> Value {
    let mut sum = json!({});
    for key in TASK_COUNTERS {
        sum[key] = json!(per_slave.iter().map(|s| s["progress"][key].as_i64().unwrap_or(0)).sum::<i64>());
    }
    with_percent(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_summed_with_percent() {
        let slaves = [
            json!({"progress": {"total": 10, "succeeded": 10}}),
            json!({"progress": {"total": 10, "succeeded": 4, "failed": 1, "running": 5}}),
        ];
        let sum = total_progress(&slaves);
        assert_eq!(sum["total"], 20);
        assert_eq!(sum["percent"], 75);
        assert_eq!(with_percent(json!({}))["percent"], 0);
    }
}
