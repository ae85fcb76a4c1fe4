//! A master's consolidated endpoints, from its copy of every slave's data
//! (`replica_*`): the list with a slave column, the members of a slave's
//! virtual group, and one endpoint.
//!
//! Group and endpoint ids are a slave's own, so they are shown (and
//! filtered) together with the slave they belong to.
//!
//! At millions of computers the list neither counts every match nor skips
//! rows to reach a deep page: its total is counted up to
//! `<Endpoints><ExactTotalUpTo>` and past that is the planner's estimate
//! (said so by `total_exact`), and each page names the endpoint the next
//! one starts after ([`After`]), read from the order index.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::{types::ToSql, Row};

use super::{
    endpoints::{AppliedPolicy, DetectionView, EndpointPage, PolicyRef},
    filter::{After, EndpointFilter, FilterError, Page},
    offline_after,
};
use crate::state::AppState;

/// Columns read by [`ReplicaEndpoint::from_row`], `e` = replica_endpoints.
const COLUMNS: &str =
    "e.slave_id, e.id, e.hostname, e.ip, e.os, e.group_id, g.name, e.agent_version, e.signatures_version,
    e.signatures_date, e.realtime_protection, e.active_threats, e.status, e.licensed, e.last_seen, e.enrolled_at,
    e.policy_id, p.name, e.policy_version, e.applied_policy_id, e.applied_policy_version";
const FROM: &str = "replica_endpoints e
    LEFT JOIN replica_network_groups g ON g.slave_id = e.slave_id AND g.id = e.group_id
    LEFT JOIN policies p ON p.id = e.policy_id";

/// A slave's endpoint as the master shows it; replicated columns may be
/// missing.
#[derive(Debug, Serialize)]
pub struct ReplicaEndpoint {
    pub active_threats: Option<i32>,
    pub agent_version: Option<String>,
    pub applied_policy: AppliedPolicy,
    /// The latest detections, when one endpoint is shown (not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detections: Option<Vec<DetectionView>>,
    pub enrolled_at: Option<DateTime<Utc>>,
    pub group: Option<String>,
    pub group_id: Option<i64>,
    pub hostname: Option<String>,
    pub id: Option<String>,
    pub ip: Option<String>,
    pub last_seen: Option<DateTime<Utc>>,
    pub licensed: Option<bool>,
    pub online: bool,
    pub os: Option<String>,
    /// A slave's own policy has no name here; a master policy has.
    pub policy: PolicyRef,
    pub realtime_protection: Option<bool>,
    pub signatures_date: Option<NaiveDate>,
    pub signatures_version: Option<String>,
    pub slave: String,
    pub status: Option<String>,
}

impl ReplicaEndpoint {
    fn from_row(r: &Row, offline_after_secs: i64) -> Self {
        let last_seen: Option<DateTime<Utc>> = r.get(14);
        Self {
            slave: r.get(0),
            id: r.get(1),
            hostname: r.get(2),
            ip: r.get(3),
            os: r.get(4),
            group_id: r.get(5),
            group: r.get(6),
            agent_version: r.get(7),
            signatures_version: r.get(8),
            signatures_date: r.get(9),
            realtime_protection: r.get(10),
            active_threats: r.get(11),
            status: r.get(12),
            licensed: r.get(13),
            online: last_seen.is_some_and(|t| (Utc::now() - t).num_seconds() <= offline_after_secs),
            last_seen,
            enrolled_at: r.get(15),
            policy: PolicyRef::of(r.get(16), r.get(17), r.get(18)),
            applied_policy: AppliedPolicy { id: r.get(19), version: r.get(20) },
            detections: None,
        }
    }
}

/// Why a consolidated read failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsolidatedError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("group ids are per slave: give slave together with group")]
    GroupWithoutSlave,
    #[error("no endpoint '{0}' in the replicated data of any slave")]
    NotReplicated(String),
    /// Two slaves use the id: the caller must name the slave.
    #[error("endpoint '{id}' exists on slaves {}: add ?slave=", .slaves.join(", "))]
    Ambiguous { id: String, slaves: Vec<String> },
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// A page of the consolidated list.
#[derive(Debug, Serialize)]
pub struct ReplicaPage {
    pub endpoints: Vec<ReplicaEndpoint>,
    /// Where the next page starts (`after=`), while more endpoints match.
    pub next: Option<String>,
    /// How many endpoints match: counted, or estimated past the cap.
    pub total: i64,
    /// Whether [`Self::total`] was counted; `false`: more matched than
    /// `<Endpoints><ExactTotalUpTo>`, and it is the planner's estimate
    /// (never below that cap + 1), or that cap + 1 for a search.
    pub total_exact: bool,
}

/// How many rows a query matches, counted or estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Total {
    pub count: i64,
    pub exact: bool,
}

/// Every slave's endpoints matching `filter`, by slave and id, from
/// `page.offset` or just after `after`.
pub async fn list(
    state: &AppState,
    filter: &EndpointFilter,
    page: Page,
    after: Option<&After>,
) -> Result<ReplicaPage, ConsolidatedError> {
    if filter.group.is_some() && filter.slave.is_none() {
        return Err(ConsolidatedError::GroupWithoutSlave);
    }
    let (lookup, search) = filter.search_lookup().unzip();
    let status = filter.status_text();
    // A search: the index finds the rows holding one word of it ($5), and
    // each is checked for the whole text ($6), hostname in any case.
    let matching = "($1::text IS NULL OR e.slave_id = $1) AND ($2::bigint IS NULL OR e.group_id = $2)
        AND ($3::text IS NULL OR e.status = $3) AND ($4::boolean IS NULL OR e.licensed = $4)
        AND ($5::text IS NULL OR ((e.hostname ILIKE $5 OR e.ip LIKE $5)
             AND (strpos(lower(e.hostname), lower($6::text)) > 0 OR strpos(e.ip, $6::text) > 0)))";
    let mut client = state.pool.get().await?;
    // PostgreSQL compiles a plan whose cost passes `jit_above_cost`; the
    // planner's guess at how many rows a search matches made a 40 ms page
    // cost 600 ms, most of it compiling. These statements read one page.
    let client = client.transaction().await?;
    client.batch_execute("SET LOCAL jit = off").await?;
    let params: [&(dyn ToSql + Sync); 6] = [&filter.slave, &filter.group, &status, &filter.licensed, &lookup, &search];
    let from = format!("FROM replica_endpoints e WHERE {matching}");
    let total = total(&client, &from, &params, state.settings.exact_total_up_to, search.is_none()).await?;
    // One row more than the page says whether there is a next one.
    let (after_slave, after_id) = (after.map(|a| &a.slave), after.map(|a| &a.id));
    let read = page.limit + 1;
    let mut paged = params.to_vec();
    paged.extend_from_slice(&[&after_slave, &after_id, &read, &page.offset]);
    let after_key = "($7::text IS NULL OR (e.slave_id, e.id) > ($7, $8::text))";
    // A search the count found few matches of: the planner cannot know
    // that (it guesses how common a substring is), and walked the order
    // index for the first 51, reading about 500,000 rows for a hostname
    // that each slave has once (0.9 s at 10M). The matches' keys are taken
    // from the search's indexes first and sorted, then their rows joined.
    let sql = if search.is_some() && total.exact {
        format!(
            "WITH matched AS MATERIALIZED (SELECT e.slave_id, e.id FROM replica_endpoints e WHERE {matching} AND {after_key}),
                  k AS (SELECT slave_id, id FROM matched ORDER BY slave_id, id LIMIT $9 OFFSET $10)
             SELECT {COLUMNS} FROM k JOIN {FROM} ON e.slave_id = k.slave_id AND e.id = k.id ORDER BY e.slave_id, e.id"
        )
    } else {
        format!("SELECT {COLUMNS} FROM {FROM} WHERE {matching} AND {after_key} ORDER BY e.slave_id, e.id LIMIT $9 OFFSET $10")
    };
    let mut rows = client.query(&sql, &paged).await?;
    client.commit().await?;
    let more = rows.len() as i64 > page.limit;
    rows.truncate(page.limit as usize);
    let offline = offline_after(&state.settings);
    let endpoints: Vec<_> = rows.iter().map(|r| ReplicaEndpoint::from_row(r, offline)).collect();
    let next = endpoints
        .last()
        .filter(|_| more)
        .and_then(|e| e.id.as_ref().map(|id| After { slave: e.slave.clone(), id: id.clone() }.to_string()));
    Ok(ReplicaPage { endpoints, next, total: total.count, total_exact: total.exact })
}

/// How many rows `from` (`FROM .. WHERE ..` over `params`) holds: counted
/// up to `cap`, and past it the planner's estimate (at least `cap + 1`)
/// when `estimate`, else `cap + 1` ("more than `cap`"). Counting stops at
/// `cap + 1` rows, so it costs what reading a page of that many does; the
/// estimate costs a plan. The planner knows how common a status, slave or
/// group is from its statistics, but not a substring: a search's estimate
/// could be off by ten times, so none is given for one.
pub async fn total(
    client: &impl GenericClient,
    from: &str,
    params: &[&(dyn ToSql + Sync)],
    cap: i64,
    estimate: bool,
) -> Result<Total, tokio_postgres::Error> {
    let limit = cap + 1;
    let mut capped = params.to_vec();
    capped.push(&limit);
    let counted: i64 = client
        .query_one(&format!("SELECT count(*) FROM (SELECT 1 {from} LIMIT ${}) m", capped.len()), &capped)
        .await?
        .get(0);
    if counted <= cap {
        return Ok(Total { count: counted, exact: true });
    }
    if !estimate {
        return Ok(Total { count: limit, exact: false });
    }
    let plan = client.query(&format!("EXPLAIN SELECT 1 {from}"), params).await?;
    let estimate = plan.first().and_then(|r| planned_rows(r.get(0))).unwrap_or(0);
    Ok(Total { count: estimate.max(limit), exact: false })
}

/// The rows the top node of an `EXPLAIN` line estimates (`... rows=1234 width=0)`).
fn planned_rows(line: &str) -> Option<i64> {
    let rest = &line[line.find(" rows=")? + " rows=".len()..];
    rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())].parse().ok()
}

/// One page of the members of `slave`'s virtual group `group` in the copy,
/// by id, and how many it holds (the console's tree opens a slave's virtual
/// group a page at a time).
pub async fn virtual_group_members(
    state: &AppState,
    slave: &str,
    group: i64,
    page: Page,
) -> Result<EndpointPage<ReplicaEndpoint>, ConsolidatedError> {
    let client = state.pool.get().await?;
    let members = "replica_virtual_group_members m WHERE m.slave_id = $1 AND m.virtual_group_id = $2";
    let total: i64 = client.query_one(&format!("SELECT count(*) FROM {members}"), &[&slave, &group]).await?.get(0);
    // The page's ids first, then their 50 endpoints: joining every member
    // before sorting read all 5,000 members' rows of a 10M copy (173 ms).
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS}
                   FROM (SELECT m.endpoint_id FROM {members} ORDER BY m.endpoint_id LIMIT $3 OFFSET $4) k
                   JOIN {FROM} ON e.slave_id = $1 AND e.id = k.endpoint_id
                  ORDER BY e.id"
            ),
            &[&slave, &group, &page.limit, &page.offset],
        )
        .await?;
    let offline = offline_after(&state.settings);
    Ok(EndpointPage { total, endpoints: rows.iter().map(|r| ReplicaEndpoint::from_row(r, offline)).collect() })
}

/// One endpoint with its 20 latest detections; `slave` is needed only when
/// two slaves use the same id.
pub async fn show(state: &AppState, id: &str, slave: Option<&str>) -> Result<ReplicaEndpoint, ConsolidatedError> {
    let client = state.pool.get().await?;
    // Each slave's computers are a range of the order index (slave, id):
    // an id without its slave is looked up in each (1,000 slaves: 4,000
    // index pages), where a filter on the id alone read all 10 million
    // rows (1.9 s).
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM slaves s JOIN {FROM} ON e.slave_id = s.id
                  WHERE e.id = $1 AND ($2::text IS NULL OR s.id = $2) ORDER BY e.slave_id"
            ),
            &[&id, &slave],
        )
        .await?;
    let row = match rows.as_slice() {
        [] => return Err(ConsolidatedError::NotReplicated(id.to_owned())),
        [one] => one,
        many => {
            let slaves = many.iter().map(|r| r.get(0)).collect();
            return Err(ConsolidatedError::Ambiguous { id: id.to_owned(), slaves });
        }
    };
    let mut endpoint = ReplicaEndpoint::from_row(row, offline_after(&state.settings));
    let detections = client
        .query(
            "SELECT detection_id, malware, path, action, detected_at, task_id FROM replica_detections
              WHERE slave_id = $1 AND endpoint_id = $2 ORDER BY detected_at DESC LIMIT 20",
            &[&endpoint.slave, &id],
        )
        .await?;
    endpoint.detections = Some(detections.iter().map(DetectionView::from_row).collect());
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_give_their_estimate() {
        let line = "Bitmap Heap Scan on replica_rows r  (cost=12.50..3456.78 rows=1666667 width=4)";
        assert_eq!(planned_rows(line), Some(1_666_667));
        assert_eq!(planned_rows("Result  (cost=0.00..0.01 rows=1 width=4)"), Some(1));
        assert_eq!(planned_rows("Seq Scan on x"), None);
    }
}
