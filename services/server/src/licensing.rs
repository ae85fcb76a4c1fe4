//! Seats: which endpoints are licensed.
//!
//! The earliest enrolled endpoints hold the seats; the rest are marked
//! unlicensed (still managed and reported, never dropped). No license, or an
//! expired one, licenses nobody.

use chrono::{NaiveDate, Utc};
use deadpool_postgres::{GenericClient, PoolError};
use rampart_shared::db::CachedStatements;
use rampart_shared::license::{License, LicenseError};
use serde::Serialize;

use crate::{
    operators::{activity, Actor},
    state::AppState,
};

/// What `GET /api/license` and the dashboard show.
#[derive(Clone, Debug, Serialize)]
pub struct LicenseSummary {
    /// `valid`, `expired` or `none`.
    pub state: &'static str,
    pub license_id: Option<uuid::Uuid>,
    pub customer: Option<String>,
    pub seats: i64,
    pub used: i64,
    pub unlicensed: i64,
    pub expires_on: Option<NaiveDate>,
}

/// Seats usable today (0 without a valid license).
pub async fn seats<C: GenericClient>(client: &C) -> Result<i64, tokio_postgres::Error> {
    let row = client.query_opt_cached("SELECT seats FROM license WHERE expires_on >= current_date", &[]).await?;
    Ok(row.map(|r| i64::from(r.get::<_, i32>(0))).unwrap_or(0))
}

/// Re-marks `licensed` on every endpoint whose flag is wrong. Cheap when
/// nothing changes; call after enrolments and license changes.
pub async fn assign_seats<C: GenericClient>(client: &C) -> Result<u64, tokio_postgres::Error> {
    let seats = seats(client).await?;
    client
        .execute_cached(
            "UPDATE endpoints e SET licensed = r.rn <= $1
               FROM (SELECT id, row_number() OVER (ORDER BY enrolled_at, id) AS rn FROM endpoints) r
              WHERE e.id = r.id AND e.licensed IS DISTINCT FROM (r.rn <= $1)",
            &[&seats],
        )
        .await
}

/// Verifies and installs a key, then reassigns seats, in one transaction;
/// `actor` is the operator installing it (none for the key of server.xml).
/// Reassigning touches every endpoint row while heartbeats update them too,
/// so a deadlock or serialization failure is retried a few times.
pub async fn install(
    client: &mut deadpool_postgres::Client,
    actor: Option<&Actor>,
    key: &str,
) -> Result<License, InstallError> {
    let mut attempt = 0;
    loop {
        match install_once(client, actor, key).await {
            Err(InstallError::Database(e)) if attempt < 5 && is_conflict(&e) => {
                attempt += 1;
                tracing::debug!(attempt, error = %e, "License install conflicted with concurrent updates; retrying.");
            }
            other => return other,
        }
    }
}

fn is_conflict(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) || e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
}

async fn install_once(
    client: &mut deadpool_postgres::Client,
    actor: Option<&Actor>,
    key: &str,
) -> Result<License, InstallError> {
    let license = License::verify(key, Utc::now().date_naive())?;
    let seats = i32::try_from(license.seats).map_err(|_| InstallError::Invalid(LicenseError::Format))?;
    let tx = client.transaction().await?;
    let before = tx
        .query_opt("SELECT license_id, customer, seats, expires_on FROM license WHERE id = 1", &[])
        .await?
        .map(|r| logged(r.get(0), r.get(1), r.get(2), r.get(3)));
    tx.execute_cached(
        "INSERT INTO license (id, key, license_id, customer, seats, issued_on, expires_on)
         VALUES (1, $1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET key = excluded.key, license_id = excluded.license_id,
             customer = excluded.customer, seats = excluded.seats, issued_on = excluded.issued_on,
             expires_on = excluded.expires_on, installed_at = now()",
        &[&key.trim(), &license.license_id, &license.customer, &seats, &license.issued_on, &license.expires_on],
    )
    .await?;
    crate::policies::lock_fleet(&tx).await?;
    assign_seats(&tx).await?;
    if let Some(actor) = actor {
        let after = logged(license.license_id, &license.customer, seats, license.expires_on);
        activity::record(&tx, actor, "license.install", "license", before, Some(after)).await?;
    }
    tx.commit().await?;
    tracing::info!(license_id = %license.license_id, seats = license.seats, expires_on = %license.expires_on, "Installed license.");
    Ok(license)
}

/// What the activity log keeps of a license: never the key.
fn logged(license_id: uuid::Uuid, customer: &str, seats: i32, expires_on: NaiveDate) -> serde_json::Value {
    serde_json::json!({"license_id": license_id, "customer": customer, "seats": seats, "expires_on": expires_on})
}

/// Why a license key was not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The key is forged, malformed or expired.
    #[error(transparent)]
    Invalid(#[from] LicenseError),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// Why the license could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// An operator's key: installed, then the seats as they now stand.
pub async fn install_key(state: &AppState, actor: &Actor, key: &str) -> Result<LicenseSummary, InstallError> {
    let mut client = state.pool.get().await?;
    install(&mut client, Some(actor), key).await?;
    Ok(summary(&client).await?)
}

/// The license and its seats as they stand.
pub async fn current(state: &AppState) -> Result<LicenseSummary, SummaryError> {
    let client = state.pool.get().await?;
    Ok(summary(&client).await?)
}

/// Rows of differences `seat_counts` may gather before a summary folds
/// them into one: each enrolment batch adds one, each flag a license
/// change turned one.
const SEAT_COUNT_ROWS_KEPT: i64 = 64;

/// The license and its seats, read with `client` (outside a read-only
/// transaction: now and then it folds the seat counts).
///
/// The seats are counted as endpoints are written (`seat_counts`,
/// migration `0019_seat_counts.sql`), not by reading every endpoint: a
/// slave sends them every 10 s.
pub async fn summary<C: GenericClient>(client: &C) -> Result<LicenseSummary, tokio_postgres::Error> {
    let counts = client
        .query_one_cached(
            "SELECT coalesce(sum(used), 0)::bigint, coalesce(sum(unlicensed), 0)::bigint, count(*) FROM seat_counts",
            &[],
        )
        .await?;
    let (used, unlicensed, rows): (i64, i64, i64) = (counts.get(0), counts.get(1), counts.get(2));
    if rows > SEAT_COUNT_ROWS_KEPT {
        // Rows inserted meanwhile are not in the DELETE's snapshot and stay;
        // a fold running at the same time deletes disjoint rows (one waits
        // for the other's, then skips them), so the sums hold either way.
        // Emptying the endpoints truncates the counts, which waits for a
        // fold and takes its sum too (migration 0020).
        client
            .execute_cached(
                "WITH folded AS (DELETE FROM seat_counts RETURNING used, unlicensed)
                 INSERT INTO seat_counts (used, unlicensed)
                 SELECT sum(used), sum(unlicensed) FROM folded HAVING count(*) > 0",
                &[],
            )
            .await?;
    }
    let row = client.query_opt_cached("SELECT license_id, customer, seats, expires_on FROM license", &[]).await?;
    Ok(match row {
        None => LicenseSummary {
            state: "none",
            license_id: None,
            customer: None,
            seats: 0,
            used,
            unlicensed,
            expires_on: None,
        },
        Some(r) => {
            let expires_on: NaiveDate = r.get(3);
            LicenseSummary {
                state: if expires_on >= Utc::now().date_naive() { "valid" } else { "expired" },
                license_id: Some(r.get(0)),
                customer: Some(r.get(1)),
                seats: i64::from(r.get::<_, i32>(2)),
                used,
                unlicensed,
                expires_on: Some(expires_on),
            }
        }
    })
}
