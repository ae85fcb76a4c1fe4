//! Master side: does the master's copy of a slave agree with the slave?
//!
//! A verification is a request to the slave (`master.verify`); the slave
//! answers with the checksums of its rows inside the caught-up batch of its
//! next pass, taken in the same snapshot as that batch. Once the master has
//! applied that batch, its copy must equal those rows exactly, apart from
//! rows the slave changed after the cut (listed as pending, left out on both
//! sides). The comparison runs in the transaction that applies the batch,
//! so the answer is exact: which tables agree, and which rows do not.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::{
    hierarchy::MasterCommand,
    replication::{Digest, ReplicatedTable, VerifyRequest},
};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::{
    hierarchy::to_slaves,
    operators::{activity, Actor},
    state::AppState,
};

/// Why a verification cannot be shown or asked for.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no verification {0}")]
    Unknown(Uuid),
    #[error("this master has no active slave to verify")]
    NoActiveSlave,
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("the database is unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// A verification just asked for.
#[derive(Debug, Serialize)]
pub struct Requested {
    pub id: Uuid,
    pub slave: String,
    pub state: &'static str,
}

/// A verification and, once finished, its result.
#[derive(Debug, Serialize)]
pub struct Verification {
    pub id: Uuid,
    pub slave: String,
    pub requested_at: DateTime<Utc>,
    /// `pending` or `finished`.
    pub state: &'static str,
    pub finished_at: Option<DateTime<Utc>>,
    pub in_sync: Option<bool>,
    /// The stored [`VerificationResult`].
    pub result: Option<Value>,
}

/// What a finished verification found, as stored with it.
#[derive(Debug, Serialize)]
pub struct VerificationResult {
    pub as_of: DateTime<Utc>,
    /// Rows the slave changed after the cut, left out on both sides.
    pub pending: usize,
    pub tables: Vec<TableComparison>,
}

/// One table of a verification.
#[derive(Debug, Serialize)]
pub struct TableComparison {
    pub table: ReplicatedTable,
    pub in_sync: bool,
    pub slave_rows: usize,
    pub master_rows: usize,
    pub slave_checksum: String,
    pub master_checksum: String,
    pub missing_on_master: usize,
    pub extra_on_master: usize,
    pub different: usize,
    /// At most [`LISTED`] keys each; the counts above are exact.
    pub missing_keys: Vec<Value>,
    pub extra_keys: Vec<Value>,
    pub different_keys: Vec<Value>,
}

/// How many differing keys a result lists per table (the counts are exact).
const LISTED: usize = 20;

/// Asks each of `slaves` for a verification.
pub async fn request(state: &AppState, actor: &Actor, slaves: &[String]) -> Result<Vec<Requested>, VerifyError> {
    if slaves.is_empty() {
        return Err(VerifyError::NoActiveSlave);
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let mut requested = Vec::new();
    for slave in slaves {
        let id = Uuid::new_v4();
        tx.execute("INSERT INTO verifications (id, slave_id) VALUES ($1, $2)", &[&id, slave]).await?;
        to_slaves::send(
            &tx,
            state,
            std::slice::from_ref(slave),
            &MasterCommand::Verify(VerifyRequest { verification: id }),
        )
        .await?;
        requested.push(Requested { id, slave: slave.clone(), state: "pending" });
        let after = serde_json::json!({"slave": slave});
        activity::record(&tx, actor, "verification.request", &format!("verification:{id}"), None, Some(after)).await?;
    }
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    tracing::info!(slaves = ?slaves, "Asked slaves to verify their replicated data.");
    Ok(requested)
}

pub async fn show<C: GenericClient>(client: &C, id: Uuid) -> Result<Verification, VerifyError> {
    let row = client
        .query_opt(
            "SELECT id, slave_id, requested_at, finished_at, in_sync, result FROM verifications WHERE id = $1",
            &[&id],
        )
        .await?
        .ok_or(VerifyError::Unknown(id))?;
    let finished_at: Option<DateTime<Utc>> = row.get(3);
    Ok(Verification {
        id: row.get(0),
        slave: row.get(1),
        requested_at: row.get(2),
        state: if finished_at.is_some() { "finished" } else { "pending" },
        finished_at,
        in_sync: row.get(4),
        result: row.get(5),
    })
}

/// Compares the slave's digest with the copy (inside the transaction that
/// applied the batch carrying it) and stores the result.
pub async fn record<C: GenericClient>(
    tx: &C,
    slave: &str,
    digest: &Digest,
    as_of: DateTime<Utc>,
) -> Result<(), tokio_postgres::Error> {
    let pending: HashSet<(ReplicatedTable, &str)> = digest.pending.iter().map(|p| (p.table, p.key.as_str())).collect();
    let mut tables = Vec::new();
    let mut in_sync = true;
    for table in ReplicatedTable::ALL {
        let theirs: BTreeMap<&str, &str> = digest
            .tables
            .iter()
            .filter(|d| d.table == table)
            .flat_map(|d| d.rows.iter().map(|(k, h)| (k.as_str(), h.as_str())))
            .collect();
        let rows = tx
            .query(
                "SELECT row_key::text, left(md5(row::text), 16) FROM replica_rows
                  WHERE slave_id = $1 AND table_name = $2 AND row IS NOT NULL",
                &[&slave, &table.name()],
            )
            .await?;
        let ours: BTreeMap<String, String> = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .filter(|(k, _)| !pending.contains(&(table, k.as_str())))
            .collect();
        let comparison = compare(table, &theirs, &ours);
        in_sync &= comparison.in_sync;
        tables.push(comparison);
    }
    let result = VerificationResult { as_of, pending: digest.pending.len(), tables };
    let result = serde_json::to_value(&result).expect("a verification result serializes");
    let updated = tx
        .execute(
            "UPDATE verifications SET finished_at = now(), in_sync = $3, result = $4 WHERE id = $1 AND slave_id = $2",
            &[&digest.verification, &slave, &in_sync, &result],
        )
        .await?;
    if updated == 0 {
        tracing::warn!(slave_id = slave, verification = %digest.verification, "Checksums arrived for an unknown verification.");
    }
    tracing::info!(slave_id = slave, verification = %digest.verification, in_sync, "Verified a slave's replicated data.");
    Ok(())
}

/// One table: counts, checksums, and the keys that differ.
fn compare(table: ReplicatedTable, theirs: &BTreeMap<&str, &str>, ours: &BTreeMap<String, String>) -> TableComparison {
    let missing: Vec<&str> = theirs.keys().filter(|k| !ours.contains_key(**k)).copied().collect();
    let extra: Vec<&str> = ours.keys().filter(|k| !theirs.contains_key(k.as_str())).map(String::as_str).collect();
    let different: Vec<&str> =
        theirs.iter().filter(|(k, h)| ours.get(**k).is_some_and(|o| o != **h)).map(|(k, _)| *k).collect();
    let in_sync = missing.is_empty() && extra.is_empty() && different.is_empty();
    let listed = |keys: &[&str]| {
        keys.iter().take(LISTED).map(|k| serde_json::from_str(k).unwrap_or(Value::Null)).collect::<Vec<_>>()
    };
    TableComparison {
        table,
        in_sync,
        slave_rows: theirs.len(),
        master_rows: ours.len(),
        slave_checksum: checksum(theirs.iter().map(|(k, h)| (*k, *h))),
        master_checksum: checksum(ours.iter().map(|(k, h)| (k.as_str(), h.as_str()))),
        missing_on_master: missing.len(),
        extra_on_master: extra.len(),
        different: different.len(),
        missing_keys: listed(&missing),
        extra_keys: listed(&extra),
        different_keys: listed(&different),
    }
}

/// A checksum of a table's `(key, hash)` pairs in key order.
fn checksum<'a>(rows: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut hasher = Sha256::new();
    for (key, hash) in rows {
        hasher.update(key.as_bytes());
        hasher.update(b"\t");
        hasher.update(hash.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_comparison_names_the_rows_that_differ() {
        let theirs: BTreeMap<&str, &str> =
            [(r#"{"id": "a"}"#, "1"), (r#"{"id": "b"}"#, "2"), (r#"{"id": "c"}"#, "3")].into();
        let mut ours: BTreeMap<String, String> = theirs.iter().map(|(k, h)| (k.to_string(), h.to_string())).collect();
        let same = compare(ReplicatedTable::Endpoints, &theirs, &ours);
        assert!(same.in_sync);
        assert_eq!(same.slave_checksum, same.master_checksum);

        ours.remove(r#"{"id": "a"}"#);
        ours.insert(r#"{"id": "b"}"#.into(), "9".into());
        ours.insert(r#"{"id": "z"}"#.into(), "4".into());
        let diff = compare(ReplicatedTable::Endpoints, &theirs, &ours);
        assert!(!diff.in_sync);
        assert_eq!(diff.missing_keys, [json!({"id": "a"})]);
        assert_eq!(diff.different_keys, [json!({"id": "b"})]);
        assert_eq!(diff.extra_keys, [json!({"id": "z"})]);
        assert_ne!(diff.slave_checksum, diff.master_checksum);
    }
}
