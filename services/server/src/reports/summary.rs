//! One site's numbers for the reports, read from a database.
//!
//! The same queries read a stand-alone's or slave's own tables
//! ([`Scope::Local`]) and a master's copy of one slave ([`Scope::Slave`],
//! the `replica_*` views), so a slave's report and the consolidated one
//! count alike.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::report::events::{
    DateCount, DayCount, InfectedEndpoint, LicenseUsage, SiteSummary, StatusCounts, TaskOutcome, ThreatCount,
    DETECTION_DAYS, MAX_THREATS, MOST_INFECTED,
};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// Whose data to read.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// This server's own computers.
    Local,
    /// A master's copy of one slave.
    Slave(&'a str),
}

impl Scope<'_> {
    fn table(self, local: &'static str) -> &'static str {
        match (self, local) {
            (Scope::Local, t) => t,
            (Scope::Slave(_), "endpoints") => "replica_endpoints",
            (Scope::Slave(_), "detections") => "replica_detections",
            (Scope::Slave(_), "task_results") => "replica_task_results",
            (Scope::Slave(_), "license") => "replica_license",
            (Scope::Slave(_), other) => unreachable!("no replica view of {other}"),
        }
    }

    /// `WHERE` condition on alias `a` (every query takes the slave as `$1`
    /// when there is one).
    fn only(self, a: &str) -> String {
        match self {
            Scope::Local => "TRUE".into(),
            Scope::Slave(_) => format!("{a}.slave_id = $1"),
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        match self {
            Scope::Local => vec![],
            Scope::Slave(slave) => vec![slave as &(dyn ToSql + Sync)],
        }
    }
}

/// Reads the site's summary (status, signatures, detections, license).
pub async fn site<C: GenericClient>(client: &C, scope: Scope<'_>) -> Result<SiteSummary, tokio_postgres::Error> {
    let (e, d, l) = (scope.table("endpoints"), scope.table("detections"), scope.table("license"));
    let p = scope.params();
    let r = client
        .query_one(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE status = 'protected'), count(*) FILTER (WHERE status = 'at_risk'),
                        count(*) FILTER (WHERE status = 'infected'), count(*) FILTER (WHERE status = 'unprotected'),
                        count(*) FILTER (WHERE NOT licensed), count(*) FILTER (WHERE licensed)
                   FROM {e} e WHERE {}",
                scope.only("e")
            ),
            &p,
        )
        .await?;
    let endpoints = StatusCounts {
        total: r.get(0),
        protected: r.get(1),
        at_risk: r.get(2),
        infected: r.get(3),
        unprotected: r.get(4),
        unlicensed: r.get(5),
    };
    let licensed: i64 = r.get(6);
    let signatures = client
        .query(
            &format!("SELECT signatures_date, count(*) FROM {e} e WHERE {} GROUP BY 1 ORDER BY 1", scope.only("e")),
            &p,
        )
        .await?
        .iter()
        .map(|r| DateCount { date: r.get::<_, Option<NaiveDate>>(0), endpoints: r.get(1) })
        .collect();
    let window = format!("{} AND d.detected_at >= now() - make_interval(days => {DETECTION_DAYS})", scope.only("d"));
    let detections_daily = client
        .query(
            &format!("SELECT (d.detected_at AT TIME ZONE 'UTC')::date, count(*) FROM {d} d WHERE {window} GROUP BY 1 ORDER BY 1"),
            &p,
        )
        .await?
        .iter()
        .map(|r| DayCount { day: r.get(0), detections: r.get(1) })
        .collect();
    let threats = client
        .query(
            &format!(
                "SELECT d.malware, count(*), count(DISTINCT d.endpoint_id), max(d.detected_at) FROM {d} d WHERE {window}
                  GROUP BY d.malware ORDER BY 2 DESC, 1 LIMIT {MAX_THREATS}"
            ),
            &p,
        )
        .await?
        .iter()
        .map(|r| ThreatCount { malware: r.get(0), detections: r.get(1), endpoints: r.get(2), last_detected: r.get(3) })
        .collect();
    // The top computers first, then their names: joining every detection
    // to its computer before counting costs five times more.
    let most_infected = client
        .query(
            &format!(
                "WITH top AS (
                     SELECT d.endpoint_id, count(*) AS detections, max(d.detected_at) AS last_detected
                       FROM {d} d WHERE {window}
                      GROUP BY d.endpoint_id ORDER BY 2 DESC, 3 DESC, 1 LIMIT {MOST_INFECTED})
                 SELECT t.endpoint_id, e.hostname, t.detections, COALESCE(e.active_threats, 0)::bigint, t.last_detected
                   FROM top t LEFT JOIN {e} e ON e.id = t.endpoint_id AND {}
                  ORDER BY 3 DESC, 5 DESC, 1",
                scope.only("e")
            ),
            &p,
        )
        .await?
        .iter()
        .map(|r| InfectedEndpoint {
            endpoint_id: r.get(0),
            hostname: r.get(1),
            detections: r.get(2),
            active_threats: r.get(3),
            last_detected: r.get::<_, DateTime<Utc>>(4),
        })
        .collect();
    let license = client
        .query_opt(&format!("SELECT l.customer, l.seats, l.expires_on FROM {l} l WHERE {}", scope.only("l")), &p)
        .await?
        .map(|r| LicenseUsage {
            customer: r.get(0),
            seats: i64::from(r.get::<_, i32>(1)),
            used: licensed,
            expires_on: r.get(2),
        });
    Ok(SiteSummary { endpoints, signatures, detections_daily, threats, most_infected, license })
}

/// Outcomes of the site's tasks: `only` those, or all of them.
pub async fn tasks<C: GenericClient>(
    client: &C,
    scope: Scope<'_>,
    only: Option<&[Uuid]>,
) -> Result<Vec<TaskOutcome>, tokio_postgres::Error> {
    let r = scope.table("task_results");
    let mut p = scope.params();
    let ids: Vec<Uuid> = only.map(<[Uuid]>::to_vec).unwrap_or_default();
    let mut filter = scope.only("r");
    if only.is_some() {
        p.push(&ids);
        filter.push_str(&format!(" AND r.task_id = ANY(${})", p.len()));
    }
    let rows = client
        .query(
            &format!(
                "SELECT r.task_id, count(*) FILTER (WHERE r.state = 'pending'), count(*) FILTER (WHERE r.state = 'running'),
                        count(*) FILTER (WHERE r.state = 'succeeded'), count(*) FILTER (WHERE r.state = 'failed'),
                        count(*) FILTER (WHERE r.state = 'cancelled'), COALESCE(sum(r.detections), 0)::bigint
                   FROM {r} r WHERE {filter} GROUP BY r.task_id ORDER BY r.task_id"
            ),
            &p,
        )
        .await?;
    let task_ids: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    // Names: a site knows every task it runs; a master knows its own.
    let names: HashMap<Uuid, (String, String)> = client
        .query("SELECT id, name, kind FROM tasks WHERE id = ANY($1)", &[&task_ids])
        .await?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    Ok(rows
        .iter()
        .map(|r| {
            let task_id: Uuid = r.get(0);
            let (name, kind) = names.get(&task_id).cloned().unzip();
            TaskOutcome {
                task_id,
                name,
                kind,
                pending: r.get(1),
                running: r.get(2),
                succeeded: r.get(3),
                failed: r.get(4),
                cancelled: r.get(5),
                detections: r.get(6),
            }
        })
        .collect())
}
