//! Personal API tokens: issued at sign-in with an expiry, listed and
//! revoked. Only the SHA-256 of a token is stored (a token is 32 random
//! bytes, so a hash is enough: nothing to guess). A bearer token is either
//! the bootstrap token of server.xml (an administrator) or one of these.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::{GenericClient, PoolError};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{activity, Actor, OperatorRole, BOOTSTRAP};
use crate::state::AppState;

/// What a token's text starts with, so a leaked one is recognisable.
const PREFIX: &str = "rpt_";
/// Longest life a token may be given.
pub const MAX_TTL_HOURS: i64 = 24 * 90;
/// The life of a token when the sign-in does not say.
pub const DEFAULT_TTL_HOURS: i64 = 12;

/// Who a request speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub operator: String,
    pub role: OperatorRole,
    /// The token used (none for the bootstrap token).
    pub token: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the bearer token is not valid for this server")]
    Unknown,
    #[error("the bearer token was revoked; sign in again (rampartctl login)")]
    Revoked,
    #[error("the bearer token expired at {0}; sign in again (rampartctl login)")]
    Expired(DateTime<Utc>),
    #[error("operator '{0}' is disabled")]
    Disabled(String),
    #[error("no token {0}")]
    NotFound(Uuid),
    #[error("token {0} belongs to another operator; only an administrator may revoke it")]
    NotYours(Uuid),
    #[error("a token lives between 1 and {MAX_TTL_HOURS} hours")]
    BadTtl,
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A token as listed (never its text).
#[derive(Debug, Serialize)]
pub struct TokenView {
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub id: Uuid,
    pub label: String,
    pub last_used_at: Option<DateTime<Utc>>,
    pub operator: String,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new token: its text is shown this once.
#[derive(Debug, Serialize)]
pub struct Issued {
    pub expires_at: DateTime<Utc>,
    pub id: Uuid,
    pub operator: String,
    pub role: OperatorRole,
    pub token: String,
}

/// Issues a token for `operator` in the caller's transaction.
pub async fn issue<C: GenericClient>(
    client: &C,
    operator: &str,
    role: OperatorRole,
    label: &str,
    ttl_hours: i64,
) -> Result<Issued, TokenError> {
    if !(1..=MAX_TTL_HOURS).contains(&ttl_hours) {
        return Err(TokenError::BadTtl);
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let id = Uuid::new_v4();
    let expires_at = Utc::now() + Duration::hours(ttl_hours);
    client
        .execute(
            "INSERT INTO operator_tokens (id, operator, token_hash, label, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&id, &operator, &digest(&token), &label, &expires_at],
        )
        .await?;
    Ok(Issued { id, operator: operator.to_owned(), role, token, expires_at })
}

/// The operator a bearer token speaks for: the bootstrap token, or a
/// personal token that is neither expired nor revoked, of an enabled account.
pub async fn resolve(state: &AppState, presented: &str) -> Result<Principal, TokenError> {
    if state.settings.service.api_token.matches(presented) {
        return Ok(Principal { operator: BOOTSTRAP.into(), role: OperatorRole::Administrator, token: None });
    }
    if !presented.starts_with(PREFIX) {
        return Err(TokenError::Unknown);
    }
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT t.id, t.operator, o.role, o.disabled, t.revoked_at, t.expires_at, t.expires_at <= now()
               FROM operator_tokens t JOIN operators o ON o.name = t.operator WHERE t.token_hash = $1",
            &[&digest(presented)],
        )
        .await?
        .ok_or(TokenError::Unknown)?;
    let (id, operator): (Uuid, String) = (row.get(0), row.get(1));
    if row.get::<_, bool>(3) {
        return Err(TokenError::Disabled(operator));
    }
    if row.get::<_, Option<DateTime<Utc>>>(4).is_some() {
        return Err(TokenError::Revoked);
    }
    if row.get::<_, bool>(6) {
        return Err(TokenError::Expired(row.get(5)));
    }
    client
        .execute(
            "UPDATE operator_tokens SET last_used_at = now()
              WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            &[&id],
        )
        .await?;
    let role = OperatorRole::parse(row.get(2)).unwrap_or(OperatorRole::Auditor);
    Ok(Principal { operator, role, token: Some(id) })
}

fn view(r: &tokio_postgres::Row) -> TokenView {
    TokenView {
        id: r.get(0),
        operator: r.get(1),
        label: r.get(2),
        created_at: r.get(3),
        expires_at: r.get(4),
        revoked_at: r.get(5),
        last_used_at: r.get(6),
    }
}

const COLUMNS: &str = "id, operator, label, created_at, expires_at, revoked_at, last_used_at";

/// The tokens of `operator`, or everyone's when `None`; newest first.
pub async fn list(state: &AppState, operator: Option<&str>) -> Result<Vec<TokenView>, TokenError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(&format!(
                "SELECT {COLUMNS} FROM operator_tokens WHERE ($1::text IS NULL OR operator = $1) ORDER BY created_at DESC"
            ), &[&operator])
        .await?;
    Ok(rows.iter().map(view).collect())
}

/// Revokes token `id`: an operator's own, or anyone's for an administrator.
pub async fn revoke(state: &AppState, by: &Principal, actor: &Actor, id: Uuid) -> Result<TokenView, TokenError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(&format!("SELECT {COLUMNS} FROM operator_tokens WHERE id = $1 FOR UPDATE"), &[&id])
        .await?
        .ok_or(TokenError::NotFound(id))?;
    let before = view(&row);
    if before.operator != by.operator && !by.role.allows(OperatorRole::Administrator) {
        return Err(TokenError::NotYours(id));
    }
    let row = tx
        .query_one(
            &format!(
                "UPDATE operator_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {COLUMNS}"
            ),
            &[&id],
        )
        .await?;
    let after = view(&row);
    let object = format!("token:{id}");
    let detail = |t: &TokenView| json!({"operator": t.operator, "revoked_at": t.revoked_at});
    activity::record(&tx, actor, "token.revoke", &object, Some(detail(&before)), Some(detail(&after))).await?;
    tx.commit().await?;
    Ok(after)
}
