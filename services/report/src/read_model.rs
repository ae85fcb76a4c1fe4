//! The read model: applying events, and reading it back for a report.
//!
//! Every write is guarded by the event's `seq`: a part (a slave's health,
//! its site summary, one task's outcome) is replaced only by an event with
//! a higher number. Redeliveries, duplicates and events overtaken by newer
//! ones change nothing, and replaying everything ends in the same state.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::report::{
    events::{HealthRoster, SiteSummary, SlaveHealth, SlaveSummary, StatusCounts, TaskOutcome},
    Input, Kind, SiteData,
};
use serde_json::Value;

/// Applies one slave summary.
pub async fn apply_summary<C: GenericClient>(tx: &C, s: &SlaveSummary) -> Result<(), tokio_postgres::Error> {
    tx.execute("INSERT INTO slaves (slave_id) VALUES ($1) ON CONFLICT DO NOTHING", &[&s.slave]).await?;
    apply_health(tx, s.seq, &s.health).await?;
    if let Some(site) = &s.site {
        apply_site(tx, &s.slave, s.seq, s.as_of, site).await?;
    }
    for t in &s.tasks {
        tx.execute(
            "INSERT INTO task_outcomes (slave_id, task_id, seq, name, kind, pending, running, succeeded, failed, cancelled, detections)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (slave_id, task_id) DO UPDATE SET seq = excluded.seq, name = excluded.name, kind = excluded.kind,
                 pending = excluded.pending, running = excluded.running, succeeded = excluded.succeeded,
                 failed = excluded.failed, cancelled = excluded.cancelled, detections = excluded.detections
             WHERE task_outcomes.seq < excluded.seq",
            &[&s.slave, &t.task_id, &s.seq, &t.name, &t.kind, &t.pending, &t.running, &t.succeeded, &t.failed, &t.cancelled, &t.detections],
        )
        .await?;
    }
    let newer_list = s.tasks_complete
        && tx
            .execute("UPDATE slaves SET tasks_seq = $2 WHERE slave_id = $1 AND tasks_seq < $2", &[&s.slave, &s.seq])
            .await?
            > 0;
    if newer_list {
        // Tasks not listed are gone (unless a later event wrote them).
        let listed: Vec<uuid::Uuid> = s.tasks.iter().map(|t| t.task_id).collect();
        tx.execute(
            "DELETE FROM task_outcomes WHERE slave_id = $1 AND seq < $2 AND task_id <> ALL($3)",
            &[&s.slave, &s.seq, &listed],
        )
        .await?;
    }
    Ok(())
}

async fn apply_health<C: GenericClient>(tx: &C, seq: i64, h: &SlaveHealth) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        "UPDATE slaves SET health_seq = $2, state = $3, version = $4, last_seen = $5, replicated_at = $6,
                synced_as_of = $7, rows_behind = $8, batches_refused = $9
          WHERE slave_id = $1 AND health_seq < $2",
        &[
            &h.slave,
            &seq,
            &h.state,
            &h.version,
            &h.last_seen,
            &h.replicated_at,
            &h.synced_as_of,
            &h.rows_behind,
            &h.batches_refused,
        ],
    )
    .await
}

async fn apply_site<C: GenericClient>(
    tx: &C,
    slave: &str,
    seq: i64,
    as_of: DateTime<Utc>,
    site: &SiteSummary,
) -> Result<u64, tokio_postgres::Error> {
    let c = &site.endpoints;
    tx.execute(
        "UPDATE slaves SET site_seq = $2, site_as_of = $3, total = $4, protected = $5, at_risk = $6, infected = $7,
                unprotected = $8, unlicensed = $9, signatures = $10, detections_daily = $11, threats = $12,
                most_infected = $13, license = $14
          WHERE slave_id = $1 AND site_seq < $2",
        &[
            &slave,
            &seq,
            &as_of,
            &c.total,
            &c.protected,
            &c.at_risk,
            &c.infected,
            &c.unprotected,
            &c.unlicensed,
            &json(&site.signatures),
            &json(&site.detections_daily),
            &json(&site.threats),
            &json(&site.most_infected),
            &site.license.as_ref().map(json),
        ],
    )
    .await
}

fn json<T: serde::Serialize>(part: &T) -> Value {
    serde_json::to_value(part).expect("report parts serialize")
}

/// Applies a roster; returns false when a newer one was applied already.
pub async fn apply_roster<C: GenericClient>(tx: &C, r: &HealthRoster) -> Result<bool, tokio_postgres::Error> {
    if tx.execute("UPDATE roster SET seq = $1, as_of = $2 WHERE id = 1 AND seq < $1", &[&r.seq, &r.as_of]).await? == 0 {
        return Ok(false);
    }
    let names: Vec<&str> = r.slaves.iter().map(|h| h.slave.as_str()).collect();
    tx.execute("INSERT INTO slaves (slave_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", &[&names]).await?;
    for h in &r.slaves {
        apply_health(tx, r.seq, h).await?;
    }
    // A slave the master no longer knows, and not heard of since: gone.
    let gone = tx
        .execute(
            "DELETE FROM slaves WHERE slave_id <> ALL($1) AND health_seq < $2 AND site_seq < $2
                AND NOT EXISTS (SELECT 1 FROM task_outcomes t WHERE t.slave_id = slaves.slave_id AND t.seq >= $2)",
            &[&names, &r.seq],
        )
        .await?;
    if gone > 0 {
        tracing::info!(slaves = gone, seq = r.seq, "Slaves the master no longer knows were dropped from the reports.");
    }
    Ok(true)
}

/// A stored JSON part (NULL when the report does not need it).
fn part<T: serde::de::DeserializeOwned + Default>(row: &tokio_postgres::Row, i: usize) -> T {
    match row.get::<_, Option<Value>>(i).map(serde_json::from_value) {
        None => T::default(),
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            tracing::warn!(slave_id = %row.get::<_, String>(0), column = i, error = %e, "Unreadable part in the read model; shown empty.");
            T::default()
        }
    }
}

/// Whether a slave in this state counts in the consolidated numbers.
fn counts(state: &str) -> bool {
    !matches!(state, "removing" | "removed")
}

/// Reads what `kind` needs, over every slave or one.
pub async fn input<C: GenericClient>(
    client: &C,
    kind: Kind,
    slave: Option<&str>,
    source: &str,
) -> Result<Option<Input>, tokio_postgres::Error> {
    let lists = !matches!(kind, Kind::SecurityStatus | Kind::Health);
    let list_columns = if lists {
        "signatures, detections_daily, threats, most_infected, license"
    } else {
        "NULL::jsonb, NULL::jsonb, NULL::jsonb, NULL::jsonb, NULL::jsonb"
    };
    let rows = client
        .query(
            &format!(
                "SELECT slave_id, state, version, last_seen, replicated_at, synced_as_of, rows_behind, batches_refused,
                        site_as_of, total, protected, at_risk, infected, unprotected, unlicensed, {list_columns}
                   FROM slaves WHERE $1::text IS NULL OR slave_id = $1 ORDER BY slave_id"
            ),
            &[&slave],
        )
        .await?;
    if slave.is_some() && rows.is_empty() {
        return Ok(None);
    }
    let mut tasks: Vec<(String, TaskOutcome)> = Vec::new();
    if matches!(kind, Kind::Tasks | Kind::Overview) {
        for r in client
            .query(
                "SELECT slave_id, task_id, name, kind, pending, running, succeeded, failed, cancelled, detections
                   FROM task_outcomes WHERE $1::text IS NULL OR slave_id = $1",
                &[&slave],
            )
            .await?
        {
            tasks.push((
                r.get(0),
                TaskOutcome {
                    task_id: r.get(1),
                    name: r.get(2),
                    kind: r.get(3),
                    pending: r.get(4),
                    running: r.get(5),
                    succeeded: r.get(6),
                    failed: r.get(7),
                    cancelled: r.get(8),
                    detections: r.get(9),
                },
            ));
        }
    }
    let mut sites = Vec::new();
    let mut removed = Vec::new();
    for r in &rows {
        let name: String = r.get(0);
        let health = SlaveHealth {
            slave: name.clone(),
            state: r.get(1),
            version: r.get(2),
            last_seen: r.get(3),
            replicated_at: r.get(4),
            synced_as_of: r.get(5),
            rows_behind: r.get(6),
            batches_refused: r.get(7),
        };
        // An explicitly asked slave is shown whatever its state.
        if !counts(&health.state) && slave.is_none() {
            removed.push(health);
            continue;
        }
        let summary = SiteSummary {
            endpoints: StatusCounts {
                total: r.get(9),
                protected: r.get(10),
                at_risk: r.get(11),
                infected: r.get(12),
                unprotected: r.get(13),
                unlicensed: r.get(14),
            },
            signatures: part(r, 15),
            detections_daily: part(r, 16),
            threats: part(r, 17),
            most_infected: part(r, 18),
            license: part(r, 19),
        };
        sites.push(SiteData {
            tasks: tasks.iter().filter(|(s, _)| *s == name).map(|(_, t)| t.clone()).collect(),
            site: name,
            as_of: r.get(8),
            summary,
            health: Some(health),
        });
    }
    Ok(Some(Input {
        generated_at: Utc::now(),
        source: source.to_owned(),
        slave: slave.map(str::to_owned),
        consolidated: true,
        sites,
        removed,
    }))
}
