//! Registration tokens: single use, expiring, created on the master and
//! given to the operator of the stand-alone that is to become a slave.
//!
//! Only a SHA-256 of each token is stored, so a copy of the master's
//! database holds no usable token.
//!
//! A token made on a master that serves TLS reads `rrt_<secret>.<fingerprint>`:
//! the SHA-256 fingerprint of the master's API certificate rides along, so
//! the registering server connects only to the holder of that certificate.
//! Only `rrt_<secret>` is sent to the master and checked there.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::{signing::encode_hex, tls::Fingerprint};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::operators::{activity, Actor};

/// Prefix that makes a registration token recognisable in a paste.
const PREFIX: &str = "rrt_";
/// Lifetime of a token when the operator does not say.
pub const DEFAULT_LIFETIME_SECONDS: u64 = 3600;
/// Longest lifetime a token may have (30 days).
pub const MAX_LIFETIME_SECONDS: u64 = 30 * 24 * 3600;

/// Why a presented token is refused (or could not be checked).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the registration token is not valid on this master")]
    Unknown,
    #[error("the registration token was already used (by '{by}' at {at})")]
    Used { by: String, at: DateTime<Utc> },
    #[error("the registration token expired at {0}")]
    Expired(DateTime<Utc>),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// A token as `GET /api/registration-tokens` lists it (never the token itself).
#[derive(Debug, Serialize)]
pub struct TokenView {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub used_by: Option<String>,
    /// `unused`, `used` or `expired`.
    pub state: String,
}

/// A new token; the clear text is shown once and never stored.
#[derive(Debug, Serialize)]
pub struct IssuedToken {
    pub id: Uuid,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

fn hash(token: &str) -> String {
    encode_hex(&Sha256::digest(token.trim().as_bytes()))
}

/// A token as the operator pastes it: the secret the master checks, and the
/// fingerprint of the master's certificate (absent in a token of a master
/// that serves plain HTTP, or of an older version).
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedToken<'a> {
    pub secret: &'a str,
    pub fingerprint: Option<Fingerprint>,
}

/// Splits a pasted token; `Err` says what is wrong with it.
pub fn split(token: &str) -> Result<PresentedToken<'_>, String> {
    let token = token.trim();
    match token.split_once('.') {
        None => Ok(PresentedToken { secret: token, fingerprint: None }),
        Some((secret, fingerprint)) => match Fingerprint::parse(fingerprint) {
            Some(fingerprint) => Ok(PresentedToken { secret, fingerprint: Some(fingerprint) }),
            None => Err("the registration token is damaged: what follows its '.' is not a certificate fingerprint \
                         (64 hex digits); copy it again, whole"
                .into()),
        },
    }
}

/// An operator's new token, valid for `lifetime_seconds`, recorded in the
/// activity log in the same transaction (its id and expiry; never the token
/// itself).
pub async fn issue(
    client: &mut deadpool_postgres::Client,
    actor: &Actor,
    lifetime_seconds: u64,
    fingerprint: Option<Fingerprint>,
) -> Result<IssuedToken, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let issued = create(&tx, lifetime_seconds, fingerprint).await?;
    let after = serde_json::json!({"expires_at": issued.expires_at});
    activity::record(
        &tx,
        actor,
        "registration_token.create",
        &format!("registration_token:{}", issued.id),
        None,
        Some(after),
    )
    .await?;
    tx.commit().await?;
    Ok(issued)
}

/// Creates a token valid for `lifetime_seconds`, carrying `fingerprint`
/// (the master's API certificate) when it serves TLS.
async fn create<C: GenericClient>(
    client: &C,
    lifetime_seconds: u64,
    fingerprint: Option<Fingerprint>,
) -> Result<IssuedToken, tokio_postgres::Error> {
    let secret = format!("{PREFIX}{}", rampart_shared::signing::SigningKey::generate().to_hex());
    let id = Uuid::new_v4();
    let seconds = i64::try_from(lifetime_seconds).unwrap_or(i64::MAX);
    let row = client
        .query_one(
            "INSERT INTO registration_tokens (id, token_hash, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3::bigint)) RETURNING expires_at",
            &[&id, &hash(&secret), &seconds],
        )
        .await?;
    let token = match fingerprint {
        Some(fingerprint) => format!("{secret}.{fingerprint}"),
        None => secret,
    };
    Ok(IssuedToken { id, token, expires_at: row.get(0) })
}

/// Checks `token` and marks it used by `slave`, inside the caller's
/// transaction (so a refused registration leaves it unused).
pub async fn consume<C: GenericClient>(client: &C, token: &str, slave: &str) -> Result<(), TokenError> {
    let token = split(token).map(|t| t.secret).unwrap_or(token);
    let Some(row) = client
        .query_opt(
            "SELECT id, expires_at, used_at, used_by, expires_at <= now() FROM registration_tokens
              WHERE token_hash = $1 FOR UPDATE",
            &[&hash(token)],
        )
        .await?
    else {
        return Err(TokenError::Unknown);
    };
    if let Some(at) = row.get::<_, Option<DateTime<Utc>>>(2) {
        return Err(TokenError::Used { by: row.get::<_, Option<String>>(3).unwrap_or_default(), at });
    }
    if row.get::<_, bool>(4) {
        return Err(TokenError::Expired(row.get(1)));
    }
    client
        .execute(
            "UPDATE registration_tokens SET used_at = now(), used_by = $2 WHERE id = $1",
            &[&row.get::<_, Uuid>(0), &slave],
        )
        .await?;
    Ok(())
}

/// Every token with its state, newest first (never the token itself).
pub async fn list<C: GenericClient>(client: &C) -> Result<Vec<TokenView>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, created_at, expires_at, used_at, used_by,
                    CASE WHEN used_at IS NOT NULL THEN 'used' WHEN expires_at <= now() THEN 'expired' ELSE 'unused' END
               FROM registration_tokens ORDER BY created_at DESC LIMIT 500",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TokenView {
            id: r.get(0),
            created_at: r.get(1),
            expires_at: r.get(2),
            used_at: r.get(3),
            used_by: r.get(4),
            state: r.get(5),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_ignore_surrounding_whitespace_only() {
        assert_eq!(hash("rrt_abc"), hash(" rrt_abc\n"));
        assert_ne!(hash("rrt_abc"), hash("rrt_abd"));
    }

    #[test]
    fn a_token_splits_into_secret_and_fingerprint() {
        let fingerprint = Fingerprint::of(b"master certificate");
        let pasted = format!(" rrt_abc.{fingerprint}\n");
        assert_eq!(split(&pasted).unwrap(), PresentedToken { secret: "rrt_abc", fingerprint: Some(fingerprint) });
        assert_eq!(split("rrt_abc").unwrap(), PresentedToken { secret: "rrt_abc", fingerprint: None });
        assert!(split("rrt_abc.123").unwrap_err().contains("damaged"));
        assert_eq!(hash("x").len(), 64);
    }
}
