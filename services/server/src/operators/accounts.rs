//! Operator accounts: created, listed, disabled and given a role by an
//! administrator; passwords hashed with Argon2id.

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, PoolError};
use serde::Serialize;
use serde_json::json;

use super::{activity, valid_name, Actor, OperatorRole};
use crate::state::AppState;

/// Shortest password an account takes.
pub const MIN_PASSWORD_CHARS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("'{0}' is not a valid operator name (lower-case letters, digits, '.', '_', '-'; starting with a letter; not 'bootstrap')")]
    InvalidName(String),
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    #[error("'{0}' is not a role (administrator, operator, auditor)")]
    UnknownRole(String),
    #[error("operator '{0}' already exists")]
    Exists(String),
    #[error("no operator '{0}'")]
    NotFound(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// An account as the API shows it (never its password hash).
#[derive(Debug, Serialize)]
pub struct Account {
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
    pub name: String,
    pub role: OperatorRole,
}

fn account(r: &tokio_postgres::Row) -> Account {
    Account {
        name: r.get(0),
        role: OperatorRole::parse(r.get(1)).unwrap_or(OperatorRole::Auditor),
        disabled: r.get(2),
        created_at: r.get(3),
    }
}

pub fn parse_role(text: &str) -> Result<OperatorRole, AccountError> {
    OperatorRole::parse(text).ok_or_else(|| AccountError::UnknownRole(text.to_owned()))
}

/// Argon2id with the library's default parameters and a random salt (off the async threads).
pub async fn hash_password(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|e| AccountError::Hashing(e.to_string()))?
    .map_err(|e| AccountError::Hashing(e.to_string()))
}

/// Whether `password` matches `hash` (a PHC string; off the async threads).
pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

pub async fn create(
    state: &AppState,
    actor: &Actor,
    name: &str,
    role: OperatorRole,
    password: String,
) -> Result<Account, AccountError> {
    if !valid_name(name) {
        return Err(AccountError::InvalidName(name.to_owned()));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::WeakPassword);
    }
    let hash = hash_password(password).await?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "INSERT INTO operators (name, role, password_hash) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING RETURNING name, role, disabled, created_at",
            &[&name, &role.as_str(), &hash],
        )
        .await?
        .ok_or_else(|| AccountError::Exists(name.to_owned()))?;
    let created = account(&row);
    let after = json!({"role": role, "disabled": false});
    activity::record(&tx, actor, "operator.create", &format!("operator:{name}"), None, Some(after)).await?;
    tx.commit().await?;
    Ok(created)
}

pub async fn list(state: &AppState) -> Result<Vec<Account>, AccountError> {
    let client = state.pool.get().await?;
    let rows = client.query("SELECT name, role, disabled, created_at FROM operators ORDER BY name", &[]).await?;
    Ok(rows.iter().map(account).collect())
}

async fn load_for_update<C: GenericClient>(client: &C, name: &str) -> Result<Account, AccountError> {
    let row = client
        .query_opt("SELECT name, role, disabled, created_at FROM operators WHERE name = $1 FOR UPDATE", &[&name])
        .await?
        .ok_or_else(|| AccountError::NotFound(name.to_owned()))?;
    Ok(account(&row))
}

/// Disables (or enables again) an account; disabling also revokes its tokens.
pub async fn set_disabled(
    state: &AppState,
    actor: &Actor,
    name: &str,
    disabled: bool,
) -> Result<Account, AccountError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let before = load_for_update(&tx, name).await?;
    tx.execute("UPDATE operators SET disabled = $2, updated_at = now() WHERE name = $1", &[&name, &disabled]).await?;
    if disabled {
        tx.execute(
            "UPDATE operator_tokens SET revoked_at = now() WHERE operator = $1 AND revoked_at IS NULL",
            &[&name],
        )
        .await?;
    }
    let action = if disabled { "operator.disable" } else { "operator.enable" };
    let object = format!("operator:{name}");
    let (b, a) = (json!({"disabled": before.disabled}), json!({"disabled": disabled}));
    activity::record(&tx, actor, action, &object, Some(b), Some(a)).await?;
    let after = load_for_update(&tx, name).await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn set_role(
    state: &AppState,
    actor: &Actor,
    name: &str,
    role: OperatorRole,
) -> Result<Account, AccountError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let before = load_for_update(&tx, name).await?;
    tx.execute("UPDATE operators SET role = $2, updated_at = now() WHERE name = $1", &[&name, &role.as_str()]).await?;
    let object = format!("operator:{name}");
    let (b, a) = (json!({"role": before.role}), json!({"role": role}));
    activity::record(&tx, actor, "operator.set_role", &object, Some(b), Some(a)).await?;
    let after = load_for_update(&tx, name).await?;
    tx.commit().await?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_against_their_argon2id_hash_only() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery".into(), hash.clone()).await);
        assert!(!verify_password("wrong horse battery".into(), hash.clone()).await);
        assert!(!verify_password("x".into(), "not a hash".into()).await);
    }
}
