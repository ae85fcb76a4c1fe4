//! Sign-in with a name and a password, for a personal API token.
//!
//! Failed attempts are slowed: each one counts against the account and
//! against the source address, and the next attempt for either waits
//! `BASE_DELAY * 2^(failures - 1)`, at most `MAX_DELAY`, before its
//! password is even checked. Counts older than `WINDOW` are forgotten. Every
//! attempt is recorded in the activity log (`sign_in`, `sign_in.failed`),
//! which is also what `/metrics` counts.

use std::time::Duration;

use deadpool_postgres::PoolError;
use serde_json::json;

use super::{accounts, activity, tokens, Actor, OperatorRole};
use crate::state::AppState;

/// The delay after the first failure; it doubles with each one after.
pub const BASE_DELAY: Duration = Duration::from_millis(100);
/// The longest an attempt is made to wait.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// Failures older than this no longer slow anyone down.
const WINDOW: &str = "15 minutes";

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// One answer for a wrong name, a wrong password or a disabled account.
    #[error("wrong operator name or password, or the account is disabled")]
    Refused,
    #[error(transparent)]
    Token(#[from] tokens::TokenError),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// How long an attempt waits after `failures` recent failures.
pub fn delay_after(failures: i32) -> Duration {
    if failures <= 0 {
        return Duration::ZERO;
    }
    BASE_DELAY.saturating_mul(1 << (failures - 1).min(16)).min(MAX_DELAY)
}

fn subjects(name: &str, address: Option<&str>) -> Vec<String> {
    let mut subjects = vec![format!("operator:{name}")];
    if let Some(address) = address {
        subjects.push(format!("address:{address}"));
    }
    subjects
}

/// Checks `password` for `name` (after the delay its recent failures
/// earned) and issues a token living `ttl_hours`.
pub async fn sign_in(
    state: &AppState,
    name: &str,
    password: String,
    address: Option<String>,
    label: &str,
    ttl_hours: i64,
) -> Result<tokens::Issued, SignInError> {
    let role = check_password(state, name, password, address.clone()).await?;
    let actor = Actor::new(name, address);
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    forget_failures(&tx, name).await?;
    let issued = tokens::issue(&tx, name, role, label, ttl_hours).await?;
    let after = json!({"token": issued.id, "expires_at": issued.expires_at, "label": label});
    activity::record(&tx, &actor, "sign_in", &format!("operator:{name}"), None, Some(after)).await?;
    tx.commit().await?;
    tracing::info!(operator = name, token = %issued.id, "Operator signed in.");
    Ok(issued)
}

/// The role of `name` when `password` is theirs and the account enabled,
/// checked after the delay its recent failures earned; a refusal is
/// counted and logged. The caller records the success (what it opened).
pub(super) async fn check_password(
    state: &AppState,
    name: &str,
    password: String,
    address: Option<String>,
) -> Result<OperatorRole, SignInError> {
    let subjects = subjects(name, address.as_deref());
    let failures: i32 = {
        let client = state.pool.get().await?;
        client
            .query_one(
                &format!(
                    "SELECT coalesce(max(failures), 0) FROM sign_in_failures
                      WHERE subject = ANY($1) AND last_failed_at > now() - interval '{WINDOW}'"
                ),
                &[&subjects],
            )
            .await?
            .get(0)
    };
    tokio::time::sleep(delay_after(failures)).await;

    let account = {
        let client = state.pool.get().await?;
        client.query_opt("SELECT role, disabled, password_hash FROM operators WHERE name = $1", &[&name]).await?
    };
    match account {
        Some(row) if !row.get::<_, bool>(1) && accounts::verify_password(password, row.get(2)).await => {
            Ok(OperatorRole::parse(row.get(0)).unwrap_or(OperatorRole::Auditor))
        }
        _ => {
            failed(state, name, &subjects, address).await?;
            Err(SignInError::Refused)
        }
    }
}

/// Forgets the account's failures after a successful sign-in (in the
/// caller's transaction); the address keeps its own.
pub(super) async fn forget_failures<C: deadpool_postgres::GenericClient>(
    tx: &C,
    name: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.execute("DELETE FROM sign_in_failures WHERE subject = $1", &[&format!("operator:{name}")]).await?;
    Ok(())
}

/// Counts a failure against the account and the address, and logs it.
async fn failed(state: &AppState, name: &str, subjects: &[String], address: Option<String>) -> Result<(), SignInError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        &format!(
            "INSERT INTO sign_in_failures (subject, failures, last_failed_at) SELECT s, 1, now() FROM unnest($1::text[]) s
             ON CONFLICT (subject) DO UPDATE SET last_failed_at = now(), failures =
                 CASE WHEN sign_in_failures.last_failed_at > now() - interval '{WINDOW}'
                      THEN sign_in_failures.failures + 1 ELSE 1 END"
        ),
        &[&subjects],
    )
    .await?;
    let actor = Actor::new(name, address.clone());
    activity::record(&tx, &actor, "sign_in.failed", &format!("operator:{name}"), None, None).await?;
    tx.commit().await?;
    tracing::warn!(operator = name, address = address.as_deref().unwrap_or("-"), "Sign-in refused.");
    Ok(())
}

/// Failed sign-ins recorded at this server (for `/metrics`).
pub async fn failures_total<C: deadpool_postgres::GenericClient>(client: &C) -> Result<i64, tokio_postgres::Error> {
    Ok(client.query_one("SELECT count(*) FROM activity WHERE action = 'sign_in.failed'", &[]).await?.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_are_bounded() {
        assert_eq!(delay_after(0), Duration::ZERO);
        assert_eq!(delay_after(1), BASE_DELAY);
        assert_eq!(delay_after(2), BASE_DELAY * 2);
        assert_eq!(delay_after(4), BASE_DELAY * 8);
        assert_eq!(delay_after(40), MAX_DELAY);
    }
}
