//! The site inbox: everything the agents report, persisted.
//!
//! The consumer of `<ns>.site.<instance>.inbox` ([`crate::consumers`])
//! decodes and [`validate`]s each message; [`apply_batch`] applies a batch
//! in one transaction; every statement is idempotent
//! (heartbeats keep the newest snapshot, detections are keyed by id, task
//! results never leave a finished state), so a redelivered batch changes
//! nothing. A task result for a task this server does not have on that
//! endpoint (cancelled when the server left its master, or deleted) is a
//! late result: ignored and recorded in the audit ([`crate::refused`]), in
//! the same transaction. Refused deliveries are recorded there too.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rampart_shared::{
    db::CachedStatements,
    envelope::Rejection,
    messages::{AgentMessage, Heartbeat},
};

use crate::{agents, deployments, licensing, policies, refused, security, state::AppState};

/// A decoded agent message and when its agent sent it.
pub struct Inbound {
    pub sent_at: DateTime<Utc>,
    pub message: AgentMessage,
}

/// Checks a body's values beyond their types, so the database never refuses them.
pub fn validate(message: &AgentMessage) -> Result<(), Rejection> {
    let bad = |detail: String| Rejection::InvalidBody { kind: message.kind().to_owned(), detail };
    let check_ip =
        |ip: &str| ip.parse::<std::net::IpAddr>().map(|_| ()).map_err(|_| bad(format!("'{ip}' is not an IP address")));
    let check_id = |id: &str| {
        if id.is_empty() || id.len() > 128 || id.contains(['.', '*', '#']) {
            Err(bad(format!("'{id}' is not a valid endpoint id")))
        } else {
            Ok(())
        }
    };
    match message {
        AgentMessage::Heartbeat(h) => {
            check_id(&h.endpoint_id)?;
            check_ip(&h.ip)
        }
        AgentMessage::Discovery(d) => d.computers.iter().try_for_each(|c| {
            check_id(&c.computer_id)?;
            check_ip(&c.ip)
        }),
        _ => Ok(()),
    }
}

/// Applies a batch of agent messages in one transaction.
pub async fn apply_batch(state: &AppState, batch: &[Inbound]) -> anyhow::Result<()> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    policies::lock_fleet_shared(&tx).await?;
    let today = Utc::now().date_naive();
    let outdated_after = state.settings.outdated_after_days;
    let mut enrolled: Vec<String> = Vec::new();
    let mut discovered: Vec<String> = Vec::new();
    // Heartbeats (the policy an endpoint applied) and task results move the
    // progress a slave reports to its master.
    let progress = batch.iter().any(|i| matches!(i.message, AgentMessage::Heartbeat(_) | AgentMessage::TaskResult(_)));
    // Task results that changed nothing: a duplicate of a finished one, or late.
    let mut unapplied: Vec<(uuid::Uuid, String)> = Vec::new();
    for inbound in batch {
        match &inbound.message {
            AgentMessage::Heartbeat(h) => {
                if upsert_endpoint(&tx, h, inbound.sent_at, today, outdated_after).await? {
                    enrolled.push(h.endpoint_id.clone());
                }
            }
            AgentMessage::Detection(d) => {
                tx.execute_cached(
                    "INSERT INTO detections (detection_id, endpoint_id, malware, path, action, detected_at, task_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (detection_id) DO NOTHING",
                    &[
                        &d.detection_id,
                        &d.endpoint_id,
                        &d.malware,
                        &d.path,
                        &d.action.as_str(),
                        &d.detected_at,
                        &d.task_id,
                    ],
                )
                .await?;
            }
            AgentMessage::Discovery(d) => {
                for c in &d.computers {
                    let row = tx
                        .query_one_cached(
                            "INSERT INTO discovered_computers (computer_id, hostname, ip, mac, os, third_party_protection, reported_by)
                             VALUES ($1, $2, $3::text::inet, $4, $5, $6, $7)
                             ON CONFLICT (computer_id) DO UPDATE SET hostname = excluded.hostname, ip = excluded.ip,
                                 mac = excluded.mac, os = excluded.os, third_party_protection = excluded.third_party_protection,
                                 reported_by = excluded.reported_by, last_seen = now()
                             RETURNING (xmax = 0)",
                            &[&c.computer_id, &c.hostname, &c.ip, &c.mac, &c.os, &c.third_party_protection, &d.reported_by],
                        )
                        .await?;
                    if row.get::<_, bool>(0) {
                        discovered.push(c.computer_id.clone());
                    }
                }
            }
            AgentMessage::TaskResult(r) => {
                let scanned = i64::try_from(r.scanned_files).unwrap_or(i64::MAX);
                let detections = i32::try_from(r.detections).unwrap_or(i32::MAX);
                let updated = tx
                    .execute_cached(
                        "UPDATE task_results SET state = $3, scanned_files = $4, detections = $5, message = $6, updated_at = now()
                          WHERE task_id = $1 AND endpoint_id = $2
                            AND state NOT IN ('succeeded', 'failed', 'cancelled')",
                        &[&r.task_id, &r.endpoint_id, &r.state.as_str(), &scanned, &detections, &r.message],
                    )
                    .await?;
                if updated == 0 {
                    unapplied.push((r.task_id, r.endpoint_id.clone()));
                }
            }
            AgentMessage::DeployResult(r) => {
                let new_state = if r.succeeded { "succeeded" } else { "failed" };
                tx.execute_cached(
                    "UPDATE deployments SET state = $2, message = $3, finished_at = now()
                      WHERE id = $1 AND state = 'pending'",
                    &[&r.deployment_id, &new_state, &r.message],
                )
                .await?;
            }
        }
    }
    let mut queued = 0;
    if !enrolled.is_empty() {
        licensing::assign_seats(&tx).await?;
        // A new endpoint gets its effective policy even when it is the default.
        queued += policies::refresh(&tx, &state.site, Some(&enrolled), true).await?;
        tracing::info!(count = enrolled.len(), "Enrolled new endpoints.");
    }
    let mut claims = Vec::new();
    if !discovered.is_empty() && deployments::auto_deploy_enabled(&tx).await? {
        let unmanaged = unmanaged_without_deployment(&tx, &discovered).await?;
        queued += deployments::create(&tx, &state.site, &unmanaged, true).await?.len();
        claims = agents::deployed::claim(&tx, &unmanaged).await?;
    }
    if !unapplied.is_empty() {
        record_late_results(&tx, state, &unapplied).await?;
    }
    tx.commit().await?;
    agents::deployed::apply(state, &claims).await;
    if queued > 0 {
        state.wakes.outbox_relay.wake();
    }
    if progress {
        state.wakes.reporter.wake();
    }
    Ok(())
}

/// Records the task results of `unapplied` whose task this server does not
/// have on that endpoint (duplicates of finished results are not late):
/// one audit row per task, naming a few of the endpoints.
async fn record_late_results(
    tx: &deadpool_postgres::Transaction<'_>,
    state: &AppState,
    unapplied: &[(uuid::Uuid, String)],
) -> Result<(), tokio_postgres::Error> {
    let (tasks, endpoints): (Vec<uuid::Uuid>, Vec<&str>) = unapplied.iter().map(|(t, e)| (*t, e.as_str())).unzip();
    let rows = tx
        .query_cached(
            "SELECT u.task_id, u.endpoint_id FROM unnest($1::uuid[], $2::text[]) AS u (task_id, endpoint_id)
              WHERE NOT EXISTS (SELECT 1 FROM task_results r WHERE r.task_id = u.task_id AND r.endpoint_id = u.endpoint_id)",
            &[&tasks, &endpoints],
        )
        .await?;
    let mut late: BTreeMap<uuid::Uuid, Vec<String>> = BTreeMap::new();
    for row in &rows {
        late.entry(row.get(0)).or_default().push(row.get(1));
    }
    let queue = state.site.topology.site_inbox(&state.site.instance);
    for (task_id, mut endpoints) in late {
        endpoints.sort_unstable();
        let shown: Vec<&str> = endpoints.iter().take(5).map(String::as_str).collect();
        let more = endpoints.len().saturating_sub(shown.len());
        let reason = format!(
            "late task result: task {task_id} is not known here for {} endpoint(s) ({}{}): it was cancelled when this \
             server left its master, or deleted; the result was ignored",
            endpoints.len(),
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() },
        );
        tracing::info!(%task_id, endpoints = endpoints.len(), "Ignored late results of a task that is gone.");
        let refusal = refused::Refusal {
            queue: queue.clone(),
            sender: endpoints.first().cloned(),
            kind: Some(rampart_shared::messages::kind::TASK_RESULT.to_owned()),
            reason,
            ..Default::default()
        };
        refused::record_with(tx, &refusal).await?;
    }
    Ok(())
}

/// Inserts or refreshes an endpoint from its heartbeat; true when it is new.
/// An older snapshot than the stored one changes nothing.
async fn upsert_endpoint(
    tx: &deadpool_postgres::Transaction<'_>,
    h: &Heartbeat,
    sent_at: DateTime<Utc>,
    today: chrono::NaiveDate,
    outdated_after_days: u32,
) -> Result<bool, tokio_postgres::Error> {
    let status =
        security::judge(h.active_threats, h.realtime_protection, h.signatures_date, today, outdated_after_days);
    let threats = i32::try_from(h.active_threats).unwrap_or(i32::MAX);
    let row = tx
        .query_opt_cached(
            "INSERT INTO endpoints (id, hostname, ip, os, group_id, agent_version, signatures_version, signatures_date,
                                    realtime_protection, active_threats, status, last_seen,
                                    applied_policy_id, applied_policy_version)
             VALUES ($1, $2, $3::text::inet, $4,
                     COALESCE((SELECT id FROM network_groups WHERE subnet >>= $3::text::inet
                                ORDER BY masklen(subnet) DESC LIMIT 1), 1),
                     $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, ip = excluded.ip, os = excluded.os,
                 agent_version = excluded.agent_version, signatures_version = excluded.signatures_version,
                 signatures_date = excluded.signatures_date, realtime_protection = excluded.realtime_protection,
                 active_threats = excluded.active_threats, status = excluded.status, last_seen = excluded.last_seen,
                 applied_policy_id = excluded.applied_policy_id, applied_policy_version = excluded.applied_policy_version
             WHERE endpoints.last_seen <= excluded.last_seen
             RETURNING (xmax = 0)",
            &[
                &h.endpoint_id, &h.hostname, &h.ip, &h.os, &h.agent_version, &h.signatures_version,
                &h.signatures_date, &h.realtime_protection, &threats, &status.as_str(), &sent_at,
                &h.policy_id, &h.policy_version,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, bool>(0)).unwrap_or(false))
}

async fn unmanaged_without_deployment(
    tx: &deadpool_postgres::Transaction<'_>,
    computers: &[String],
) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = tx
        .query_cached(
            "SELECT c.computer_id FROM discovered_computers c
              WHERE c.computer_id = ANY($1)
                AND NOT EXISTS (SELECT 1 FROM endpoints e WHERE e.id = c.computer_id)
                AND NOT EXISTS (SELECT 1 FROM deployments d WHERE d.computer_id = c.computer_id AND d.state <> 'failed')
              ORDER BY c.computer_id",
            &[&computers],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
