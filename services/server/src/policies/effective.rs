//! Effective policies: which policy governs each endpoint, and pushing it.
//!
//! Precedence: an assignment to the endpoint itself, then to one of its
//! virtual groups, then to its network group, then to `all`; within a level
//! a master policy wins over a local one, then the latest assignment wins.
//! No assignment means the built-in default.
//! [`refresh`] recomputes this in one statement, records the result on the
//! endpoints that changed, and queues an `endpoint.policy` for each of them.

use deadpool_postgres::GenericClient;
use rampart_shared::db::CachedStatements;
use rampart_shared::messages::{EndpointCommand, EndpointPolicy, PolicySettings};
use uuid::Uuid;

use crate::{outbox, state::Site};

/// Name agents see when no policy applies.
pub const DEFAULT_POLICY_NAME: &str = "Built-in default";

const REFRESH_SQL: &str = "
WITH scope AS (
    SELECT e.id, e.group_id FROM endpoints e
    WHERE $1::text[] IS NULL OR e.id = ANY($1)
), candidates AS (
    SELECT s.id AS endpoint_id, a.policy_id, a.assigned_at, 4 AS rank
      FROM scope s JOIN policy_assignments a ON a.target_kind = 'endpoint' AND a.target_id = s.id
    UNION ALL
    SELECT s.id, a.policy_id, a.assigned_at, 3
      FROM scope s JOIN virtual_group_members m ON m.endpoint_id = s.id
      JOIN policy_assignments a ON a.target_kind = 'virtual_group' AND a.target_id = m.virtual_group_id::text
    UNION ALL
    SELECT s.id, a.policy_id, a.assigned_at, 2
      FROM scope s JOIN policy_assignments a ON a.target_kind = 'group' AND a.target_id = s.group_id::text
    UNION ALL
    SELECT s.id, a.policy_id, a.assigned_at, 1
      FROM scope s JOIN policy_assignments a ON a.target_kind = 'all'
), winner AS (
    SELECT DISTINCT ON (c.endpoint_id) c.endpoint_id, c.policy_id
      FROM candidates c JOIN policies p ON p.id = c.policy_id
     ORDER BY c.endpoint_id, c.rank DESC, p.owner = 'master' DESC, c.assigned_at DESC
), target AS (
    SELECT s.id, p.id AS policy_id, p.version, p.name, p.settings
      FROM scope s LEFT JOIN winner w ON w.endpoint_id = s.id LEFT JOIN policies p ON p.id = w.policy_id
)
UPDATE endpoints e SET policy_id = t.policy_id, policy_version = t.version
  FROM target t
 WHERE e.id = t.id
   AND (e.policy_id IS DISTINCT FROM t.policy_id OR e.policy_version IS DISTINCT FROM t.version
        OR $2::boolean)
RETURNING e.id, t.policy_id, t.version, t.name, t.settings";

/// Key of the advisory lock that orders writers of many endpoint rows.
const FLEET_LOCK: i64 = 0x0052_414d_5046_4c54;
/// The lock is the connection's schema's: advisory locks are per database,
/// and instances in other schemas of a shared database (`<Database>
/// <Schema>`) have endpoint rows of their own to order.
const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1 # CASE current_schema() WHEN 'public' THEN 0 \
                        ELSE hashtext(current_schema())::bigint END)";
const LOCK_SHARED_SQL: &str = "SELECT pg_advisory_xact_lock_shared($1 # CASE current_schema() WHEN 'public' THEN 0 \
                               ELSE hashtext(current_schema())::bigint END)";

/// Taken (exclusive) by a transaction about to update many endpoint rows at
/// once, before it touches any: it waits for the agent inbox's batches (which
/// hold the lock shared) instead of deadlocking with their row locks.
pub async fn lock_fleet<C: GenericClient>(tx: &C) -> Result<(), tokio_postgres::Error> {
    tx.execute_cached(LOCK_SQL, &[&FLEET_LOCK]).await.map(|_| ())
}

/// Taken (shared) by each agent inbox batch at its start.
pub async fn lock_fleet_shared<C: GenericClient>(tx: &C) -> Result<(), tokio_postgres::Error> {
    tx.execute_cached(LOCK_SHARED_SQL, &[&FLEET_LOCK]).await.map(|_| ())
}

/// Recomputes effective policies for `endpoints` (all when `None`) and
/// queues the new policy to each endpoint whose policy changed (or to all of
/// them when `resend`). Returns how many were queued.
pub async fn refresh<C: GenericClient>(
    tx: &C,
    site: &Site,
    endpoints: Option<&[String]>,
    resend: bool,
) -> Result<usize, tokio_postgres::Error> {
    if endpoints.is_none() {
        lock_fleet(tx).await?;
    }
    let scope: Option<Vec<&str>> = endpoints.map(|ids| ids.iter().map(String::as_str).collect());
    let rows = tx.query_cached(REFRESH_SQL, &[&scope, &resend]).await?;
    let commands: Vec<outbox::Command> = rows
        .iter()
        .map(|row| {
            let endpoint_id: &str = row.get(0);
            let policy_id: Option<Uuid> = row.get(1);
            let policy = match policy_id {
                Some(_) => EndpointPolicy {
                    policy_id,
                    version: row.get(2),
                    name: row.get(3),
                    settings: serde_json::from_value(row.get(4)).unwrap_or_default(),
                },
                None => EndpointPolicy {
                    policy_id: None,
                    version: 0,
                    name: DEFAULT_POLICY_NAME.into(),
                    settings: PolicySettings::default(),
                },
            };
            site.endpoint_command(endpoint_id, &EndpointCommand::Policy(policy))
        })
        .collect();
    outbox::enqueue(tx, &commands).await?;
    Ok(commands.len())
}
