//! Enrolment tokens: single use, expiring, each allowing a number of
//! endpoints; made on the site by an operator and given to the agent
//! process that is to enrol.
//!
//! Only a SHA-256 of each token is stored. A token made on a site that
//! serves TLS reads `rre_<secret>.<fingerprint>` (see
//! `rampart_shared::enrolment`); only `rre_<secret>` comes back.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::{
    enrolment::{split_token, TOKEN_PREFIX},
    signing::encode_hex,
    tls::Fingerprint,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::AgentError;
use crate::operators::{activity, Actor};

/// Lifetime of a token when the operator does not say.
pub const DEFAULT_LIFETIME_SECONDS: u64 = 3600;
/// Longest lifetime a token may have (30 days).
pub const MAX_LIFETIME_SECONDS: u64 = 30 * 24 * 3600;
/// Endpoints a token allows when the operator does not say.
pub const DEFAULT_ENDPOINTS: u32 = 1;
/// Most endpoints one token allows (what one fleet process may simulate).
pub const MAX_ENDPOINTS: u32 = 99_999;

/// A token as `GET /api/agents/enrolment-tokens` lists it (never the token).
#[derive(Debug, Serialize)]
pub struct EnrolmentTokenView {
    pub id: Uuid,
    pub endpoints: i32,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    /// The agent identity it enrolled.
    pub used_by: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// `unused`, `used`, `revoked` or `expired`.
    pub state: String,
}

/// A new token; the clear text is shown once and never stored.
#[derive(Debug, Serialize)]
pub struct IssuedEnrolmentToken {
    pub id: Uuid,
    pub token: String,
    pub endpoints: u32,
    pub expires_at: DateTime<Utc>,
}

/// A token that was checked and marked used: its id and allowance.
#[derive(Debug)]
pub struct ConsumedToken {
    pub id: Uuid,
    pub endpoints: i32,
}

fn hash(token: &str) -> String {
    encode_hex(&Sha256::digest(token.trim().as_bytes()))
}

/// Checks what an operator asked for.
pub fn check_request(endpoints: u32, lifetime_seconds: u64) -> Result<(), AgentError> {
    if !(1..=MAX_ENDPOINTS).contains(&endpoints) {
        return Err(AgentError::Invalid(format!("endpoints must be between 1 and {MAX_ENDPOINTS}")));
    }
    if !(1..=MAX_LIFETIME_SECONDS).contains(&lifetime_seconds) {
        return Err(AgentError::Invalid(format!(
            "expires_in_seconds must be between 1 and {MAX_LIFETIME_SECONDS} (30 days)"
        )));
    }
    Ok(())
}

/// An operator's new token for `endpoints` endpoints, valid for
/// `lifetime_seconds`, carrying `fingerprint` (the site's API certificate)
/// when the site serves TLS; recorded in the activity log (id, allowance,
/// expiry: never the token).
pub async fn issue(
    client: &mut deadpool_postgres::Client,
    actor: &Actor,
    endpoints: u32,
    lifetime_seconds: u64,
    fingerprint: Option<Fingerprint>,
) -> Result<IssuedEnrolmentToken, AgentError> {
    check_request(endpoints, lifetime_seconds)?;
    let secret = format!("{TOKEN_PREFIX}{}", rampart_shared::signing::SigningKey::generate().to_hex());
    let id = Uuid::new_v4();
    let seconds = i64::try_from(lifetime_seconds).unwrap_or(i64::MAX);
    let allowance = i32::try_from(endpoints).unwrap_or(i32::MAX);
    let tx = client.transaction().await?;
    let expires_at: DateTime<Utc> = tx
        .query_one(
            "INSERT INTO agent_enrolment_tokens (id, token_hash, endpoints, created_by, expires_at)
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::bigint)) RETURNING expires_at",
            &[&id, &hash(&secret), &allowance, &actor.operator, &seconds],
        )
        .await?
        .get(0);
    let after = serde_json::json!({"endpoints": endpoints, "expires_at": expires_at});
    activity::record(&tx, actor, "enrolment_token.create", &format!("enrolment_token:{id}"), None, Some(after)).await?;
    tx.commit().await?;
    let token = match fingerprint {
        Some(fingerprint) => format!("{secret}.{fingerprint}"),
        None => secret,
    };
    Ok(IssuedEnrolmentToken { id, token, endpoints, expires_at })
}

/// Revokes an unused token (a used one has done its work: revoke the agent).
pub async fn revoke(client: &mut deadpool_postgres::Client, actor: &Actor, id: Uuid) -> Result<(), AgentError> {
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt("SELECT used_at, used_by, revoked_at FROM agent_enrolment_tokens WHERE id = $1 FOR UPDATE", &[&id])
        .await?
    else {
        return Err(AgentError::TokenNotFound(id));
    };
    if let Some(at) = row.get::<_, Option<DateTime<Utc>>>(2) {
        return Err(AgentError::TokenRevoked(at));
    }
    if let Some(at) = row.get::<_, Option<DateTime<Utc>>>(0) {
        return Err(AgentError::TokenUsed { by: row.get::<_, Option<String>>(1).unwrap_or_default(), at });
    }
    tx.execute("UPDATE agent_enrolment_tokens SET revoked_at = now() WHERE id = $1", &[&id]).await?;
    activity::record(&tx, actor, "enrolment_token.revoke", &format!("enrolment_token:{id}"), None, None).await?;
    tx.commit().await?;
    Ok(())
}

/// Checks `token` and marks it used by `agent`, inside the caller's
/// transaction (so a refused enrolment leaves it unused).
pub async fn consume<C: GenericClient>(client: &C, token: &str, agent: &str) -> Result<ConsumedToken, AgentError> {
    let secret = split_token(token).map(|t| t.secret).map_err(AgentError::Invalid)?;
    let Some(row) = client
        .query_opt(
            "SELECT id, endpoints, expires_at, used_at, used_by, revoked_at, expires_at <= now()
               FROM agent_enrolment_tokens WHERE token_hash = $1 FOR UPDATE",
            &[&hash(secret)],
        )
        .await?
    else {
        return Err(AgentError::UnknownToken);
    };
    if let Some(at) = row.get::<_, Option<DateTime<Utc>>>(3) {
        return Err(AgentError::TokenUsed { by: row.get::<_, Option<String>>(4).unwrap_or_default(), at });
    }
    if let Some(at) = row.get::<_, Option<DateTime<Utc>>>(5) {
        return Err(AgentError::TokenRevoked(at));
    }
    if row.get::<_, bool>(6) {
        return Err(AgentError::TokenExpired(row.get(2)));
    }
    let id: Uuid = row.get(0);
    client
        .execute("UPDATE agent_enrolment_tokens SET used_at = now(), used_by = $2 WHERE id = $1", &[&id, &agent])
        .await?;
    Ok(ConsumedToken { id, endpoints: row.get(1) })
}

/// Every token with its state, newest first (never the token itself).
pub async fn list<C: GenericClient>(client: &C) -> Result<Vec<EnrolmentTokenView>, AgentError> {
    let rows = client
        .query(
            "SELECT id, endpoints, created_at, created_by, expires_at, used_at, used_by, revoked_at,
                    CASE WHEN used_at IS NOT NULL THEN 'used' WHEN revoked_at IS NOT NULL THEN 'revoked'
                         WHEN expires_at <= now() THEN 'expired' ELSE 'unused' END
               FROM agent_enrolment_tokens ORDER BY created_at DESC LIMIT 500",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| EnrolmentTokenView {
            id: r.get(0),
            endpoints: r.get(1),
            created_at: r.get(2),
            created_by: r.get(3),
            expires_at: r.get(4),
            used_at: r.get(5),
            used_by: r.get(6),
            revoked_at: r.get(7),
            state: r.get(8),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_bounded() {
        assert!(check_request(1, 60).is_ok());
        assert!(check_request(0, 60).unwrap_err().to_string().contains("endpoints"));
        assert!(check_request(MAX_ENDPOINTS + 1, 60).is_err());
        assert!(check_request(5, 0).unwrap_err().to_string().contains("expires_in_seconds"));
        assert_eq!(hash("rre_a"), hash(" rre_a\n"));
    }
}
