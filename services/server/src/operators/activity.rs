//! The activity log: who changed what, when, from which address, with a
//! short before and after. Each domain operation records its change with
//! [`record`] in the transaction of the change, so the log and the data
//! never disagree. Replicated to the master (`ReplicatedTable::Activity`).

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, PoolError};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::state::AppState;

/// Who is acting: the operator (or `bootstrap`) and the address the request came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub operator: String,
    pub address: Option<String>,
}

impl Actor {
    pub fn new(operator: impl Into<String>, address: Option<String>) -> Self {
        Self { operator: operator.into(), address }
    }
}

/// Records one change by `actor` in the caller's transaction.
pub async fn record<C: GenericClient>(
    client: &C,
    actor: &Actor,
    action: &str,
    object: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), tokio_postgres::Error> {
    // Prepared once per connection: every change records one.
    let statement = client
        .prepare_cached(
            "INSERT INTO activity (id, operator, address, action, object, before, after)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    client
        .execute(&statement, &[&Uuid::new_v4(), &actor.operator, &actor.address, &action, &object, &before, &after])
        .await?;
    Ok(())
}

/// The short before/after of an edit: of two JSON objects, only the fields
/// that differ (nested objects compared field by field); other values whole.
pub fn changed(before: Value, after: Value) -> (Value, Value) {
    match (before, after) {
        (Value::Object(mut b), Value::Object(mut a)) => {
            let keys: std::collections::BTreeSet<String> = b.keys().chain(a.keys()).cloned().collect();
            let (mut bo, mut ao) = (serde_json::Map::new(), serde_json::Map::new());
            for key in keys {
                let (bv, av) = (b.remove(&key).unwrap_or(Value::Null), a.remove(&key).unwrap_or(Value::Null));
                if bv != av {
                    let (bv, av) = changed(bv, av);
                    bo.insert(key.clone(), bv);
                    ao.insert(key, av);
                }
            }
            (Value::Object(bo), Value::Object(ao))
        }
        (b, a) => (b, a),
    }
}

/// One entry of the log; `site` names the server it happened at.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub action: String,
    pub address: Option<String>,
    pub after: Option<Value>,
    pub at: DateTime<Utc>,
    pub before: Option<Value>,
    pub id: Uuid,
    pub object: String,
    pub operator: String,
    pub site: String,
}

/// What to list.
#[derive(Debug, Default)]
pub struct Filter {
    pub operator: Option<String>,
    /// Objects whose name starts with this (`policy:` lists every policy's entries).
    pub object: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// The newest entries first: this server's, and on a master its slaves' copies too.
pub async fn list(state: &AppState, filter: &Filter) -> Result<Vec<Entry>, ActivityError> {
    let client = state.pool.get().await?;
    let object = filter.object.as_ref().map(|o| format!("{}%", o.replace('\\', "\\\\").replace('%', "\\%")));
    let rows = client
        .query(
            "SELECT id, at, operator, address, action, object, before, after, site FROM (
                 SELECT id, at, operator, address, action, object, before, after, $1::text AS site FROM activity
                 UNION ALL
                 SELECT id, at, operator, address, action, object, before, after, slave_id FROM replica_activity
             ) a
             WHERE ($2::text IS NULL OR operator = $2) AND ($3::text IS NULL OR object LIKE $3)
               AND ($4::timestamptz IS NULL OR at >= $4)
             ORDER BY at DESC, id LIMIT $5",
            &[&state.site.instance, &filter.operator, &object, &filter.since, &filter.limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Entry {
            id: r.get(0),
            at: r.get(1),
            operator: r.get(2),
            address: r.get(3),
            action: r.get(4),
            object: r.get(5),
            before: r.get(6),
            after: r.get(7),
            site: r.get(8),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_edit_keeps_only_what_changed() {
        let before = json!({"name": "p", "version": 1, "settings": {"a": 1, "b": {"c": 2, "d": 3}}});
        let after = json!({"name": "p", "version": 2, "settings": {"a": 1, "b": {"c": 2, "d": 4}}});
        let (b, a) = changed(before, after);
        assert_eq!(b, json!({"version": 1, "settings": {"b": {"d": 3}}}));
        assert_eq!(a, json!({"version": 2, "settings": {"b": {"d": 4}}}));
    }
}
