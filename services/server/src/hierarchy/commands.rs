//! Slave side: applying the master's commands from `<ns>.slave.<id>.commands`
//! (the consumer, [`crate::consumers`], has checked who signed them).
//!
//! Each batch is applied in one
//! transaction that first locks the master link (so it cannot interleave
//! with unregistering), and every command is idempotent: a policy applies
//! only over an older version, a task only once, a cancel only to open work.
//! Receipts follow from the [`reporter`](super::reporter).

use deadpool_postgres::{GenericClient, Transaction};
use rampart_shared::{
    db::CachedStatements,
    hierarchy::{MasterCommand, MasterPolicy, MasterTask, Scope},
};
use uuid::Uuid;

use super::link;
use crate::{outbox, policies, replication::requests, state::AppState, tasks};

/// Applies a batch of verified commands in one transaction.
pub async fn apply_batch(state: &AppState, batch: &[MasterCommand]) -> anyhow::Result<()> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let Some(link) = link::locked_link(&tx, state).await? else {
        tracing::warn!(count = batch.len(), "Dropped master commands: this server left its master.");
        return Ok(());
    };
    let mut affected = Affected::default();
    let mut commands = Vec::new();
    let mut left = false;
    // The links' credentials, read before leaving deletes them.
    let mut grant = None;
    let mut replication = requests::AfterCommit::default();
    // Only policies and tasks have receipts.
    let receipts_may_change = batch.iter().any(|c| {
        matches!(
            c,
            MasterCommand::Policy(_)
                | MasterCommand::PolicyRemoved(_)
                | MasterCommand::Task(_)
                | MasterCommand::CancelTask(_)
        )
    });
    for command in batch {
        if requests::apply_on_slave(&tx, command, &mut replication).await? {
            continue;
        }
        match command {
            MasterCommand::Policy(p) => apply_policy(&tx, p, &mut affected).await?,
            MasterCommand::PolicyRemoved(r) => {
                affected.remove_assignments(&tx, r.policy_id).await?;
                tx.execute_cached("DELETE FROM policies WHERE id = $1 AND owner = 'master'", &[&r.policy_id]).await?;
            }
            MasterCommand::Task(t) => commands.extend(apply_task(&tx, state, t).await?),
            MasterCommand::CancelTask(c) => commands.extend(cancel_task(&tx, state, c.task_id).await?),
            // Replication's own, applied above.
            MasterCommand::ReplicationAck(_) | MasterCommand::ReplicateNow(_) | MasterCommand::Verify(_) => {}
            MasterCommand::Unregister(u) => {
                grant = super::broker_links::stored_grant(&tx).await;
                link::leave(&tx, state, &link, &format!("removed by the master: {}", u.reason)).await?;
                left = true;
                break;
            }
        }
    }
    let mut queued = 0;
    if !left {
        queued = affected.refresh(&tx, state).await? + commands.len();
        outbox::enqueue(&tx, &commands).await?;
    }
    tx.commit().await?;
    if left {
        link::finish_leaving(state, &link, grant.as_ref()).await?;
    } else {
        // The relay is woken only for what was queued: a policy for an
        // empty group queues nothing, and waking it anyway cost two
        // statements per slave in the middle of a fan-out.
        if queued > 0 {
            state.wakes.outbox_relay.wake();
        }
        if receipts_may_change {
            state.wakes.master_receipts.wake();
        }
        replication.wake(state);
    }
    Ok(())
}

/// The endpoints whose effective policy a batch of commands may change:
/// those in the scopes of the policies' assignments before and after.
#[derive(Debug, Default)]
struct Affected {
    all: bool,
    endpoints: Vec<String>,
}

impl Affected {
    /// Removes every assignment of `policy_id`, noting the endpoints they
    /// covered.
    async fn remove_assignments<C: GenericClient>(
        &mut self,
        tx: &C,
        policy_id: Uuid,
    ) -> Result<(), tokio_postgres::Error> {
        let removed = tx
            .query_cached(
                "DELETE FROM policy_assignments WHERE policy_id = $1 RETURNING target_kind, target_id",
                &[&policy_id],
            )
            .await?;
        for a in removed {
            self.add(tx, a.get(0), a.get(1)).await?;
        }
        Ok(())
    }

    /// The endpoints of one assignment (`all`, `group` or `virtual_group`).
    async fn add<C: GenericClient>(&mut self, tx: &C, kind: &str, id: &str) -> Result<(), tokio_postgres::Error> {
        if kind == "all" {
            self.all = true;
        }
        if !self.all {
            self.endpoints.extend(endpoints_in_scope(tx, kind, id).await?);
        }
        Ok(())
    }

    /// Recomputes the effective policy of the affected endpoints only: a
    /// policy for a group of 50 computers no longer re-reads all 10,000.
    /// Returns how many endpoint commands it queued.
    async fn refresh(mut self, tx: &Transaction<'_>, state: &AppState) -> Result<usize, tokio_postgres::Error> {
        if self.all {
            return policies::refresh(tx, &state.site, None, false).await;
        }
        if self.endpoints.is_empty() {
            return Ok(0);
        }
        self.endpoints.sort_unstable();
        self.endpoints.dedup();
        policies::lock_fleet(tx).await?;
        policies::refresh(tx, &state.site, Some(&self.endpoints), false).await
    }
}

/// The endpoints an assignment or task scope covers: `kind` is `all`,
/// `group` or `virtual_group`, `id` the group's id. One query per kind, so
/// each uses its index: a single query with the kinds OR-ed (and the ids
/// compared as text) read every computer for every master policy, and the
/// benchmark found it the largest cost of a fan-out to 100 slaves.
async fn endpoints_in_scope<C: GenericClient>(
    tx: &C,
    kind: &str,
    id: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let group = || id.parse::<i64>().ok();
    let rows = match (kind, group()) {
        ("all", _) => tx.query_cached("SELECT id FROM endpoints ORDER BY id", &[]).await?,
        ("group", Some(group)) => {
            tx.query_cached("SELECT id FROM endpoints WHERE group_id = $1 ORDER BY id", &[&group]).await?
        }
        ("virtual_group", Some(group)) => {
            tx.query_cached(
                "SELECT e.id FROM virtual_group_members m JOIN endpoints e ON e.id = m.endpoint_id
                  WHERE m.virtual_group_id = $1 ORDER BY e.id",
                &[&group],
            )
            .await?
        }
        _ => Vec::new(),
    };
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Stores a master policy unless this version (or a newer one) is there,
/// noting the endpoints it may re-point.
async fn apply_policy(
    tx: &Transaction<'_>,
    p: &MasterPolicy,
    affected: &mut Affected,
) -> Result<(), tokio_postgres::Error> {
    let settings = serde_json::to_value(&p.settings).expect("settings serialize");
    let changed = tx
        .execute_cached(
            "INSERT INTO policies (id, name, owner, version, settings) VALUES ($1, $2, 'master', $3, $4)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version, settings = excluded.settings,
                 updated_at = now(), failure = NULL
              WHERE policies.owner = 'master' AND policies.version < excluded.version",
            &[&p.policy_id, &p.name, &p.version, &settings],
        )
        .await?;
    if changed == 0 {
        return Ok(());
    }
    affected.remove_assignments(tx, p.policy_id).await?;
    match resolve_scope(tx, &p.scope).await? {
        LocalScope::Target(kind, id) => {
            tx.execute_cached(
                "INSERT INTO policy_assignments (policy_id, target_kind, target_id) VALUES ($1, $2, $3)",
                &[&p.policy_id, &kind, &id],
            )
            .await?;
            affected.add(tx, kind, &id).await?;
        }
        LocalScope::Unresolved(failure) => {
            tx.execute_cached("UPDATE policies SET failure = $2 WHERE id = $1", &[&p.policy_id, &failure]).await?;
        }
    }
    tracing::info!(policy_id = %p.policy_id, version = p.version, "Applied a master policy.");
    Ok(())
}

/// What a master's scope means on this slave.
enum LocalScope {
    /// An assignment target: (`all`|`group`|`virtual_group`, id).
    Target(&'static str, String),
    /// Why it cannot be applied here (no such group, or several).
    Unresolved(String),
}

/// The assignment a scope means here, or why it cannot be applied.
async fn resolve_scope<C: GenericClient>(tx: &C, scope: &Scope) -> Result<LocalScope, tokio_postgres::Error> {
    let (kind, sql, name) = match scope {
        Scope { group: Some(name), .. } => ("group", "SELECT id FROM network_groups WHERE name = $1 ORDER BY id", name),
        Scope { virtual_group: Some(name), .. } => {
            ("virtual_group", "SELECT id FROM virtual_groups WHERE name = $1 ORDER BY id", name)
        }
        _ => return Ok(LocalScope::Target("all", String::new())),
    };
    let ids: Vec<i64> = tx.query_cached(sql, &[name]).await?.iter().map(|r| r.get(0)).collect();
    let what = if kind == "group" { "network group" } else { "virtual group" };
    Ok(match ids.as_slice() {
        [id] => LocalScope::Target(kind, id.to_string()),
        [] => LocalScope::Unresolved(format!("no {what} named '{name}' on this slave")),
        _ => LocalScope::Unresolved(format!("{} {what}s are named '{name}' on this slave", ids.len())),
    })
}

/// Creates a master task once and dispatches it to the endpoints in scope.
async fn apply_task(
    tx: &Transaction<'_>,
    state: &AppState,
    t: &MasterTask,
) -> Result<Vec<outbox::Command>, tokio_postgres::Error> {
    let scope = resolve_scope(tx, &t.scope).await?;
    let target = serde_json::to_value(&t.scope).expect("scopes serialize");
    let failure = match &scope {
        LocalScope::Unresolved(why) => Some(why.clone()),
        LocalScope::Target(..) => None,
    };
    let created = tx
        .execute_cached(
            "INSERT INTO tasks (id, name, kind, owner, target, failure) VALUES ($1, $2, $3, 'master', $4, $5)
             ON CONFLICT (id) DO NOTHING",
            &[&t.task_id, &t.name, &t.kind.as_str(), &target, &failure],
        )
        .await?;
    let LocalScope::Target(kind, id) = scope else { return Ok(Vec::new()) };
    if created == 0 {
        return Ok(Vec::new());
    }
    let endpoints = endpoints_in_scope(tx, kind, &id).await?;
    tracing::info!(task_id = %t.task_id, kind = t.kind.as_str(), endpoints = endpoints.len(), "Started a master task.");
    tasks::dispatch(tx, &state.site, t.task_id, t.kind, &endpoints).await
}

/// Cancels the open work of a master task.
async fn cancel_task(
    tx: &Transaction<'_>,
    state: &AppState,
    task_id: Uuid,
) -> Result<Vec<outbox::Command>, tokio_postgres::Error> {
    let updated = tx
        .execute_cached(
            "UPDATE tasks SET cancelled_at = now() WHERE id = $1 AND owner = 'master' AND cancelled_at IS NULL",
            &[&task_id],
        )
        .await?;
    if updated == 0 {
        return Ok(Vec::new());
    }
    let cancelled = tasks::cancel_open(tx, &state.site, &[task_id], "cancelled by the master").await?;
    tracing::info!(%task_id, endpoints = cancelled.commands.len(), "Cancelled a master task.");
    Ok(cancelled.commands)
}
