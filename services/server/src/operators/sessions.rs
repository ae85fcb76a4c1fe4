//! Console sessions: a browser signed in with a name and a password. The
//! session's secret (32 random bytes, the cookie) is shown to the browser
//! once; only its SHA-256 is kept. A session idle longer than the
//! configured time (`<Console><IdleMinutes>`) is over: removed when it is
//! next presented, or at the next sign-in of anyone. Each
//! request resolves the session to its operator's *current* role, so a role
//! change or a disabled account takes effect at the next click.
//!
//! The per-session CSRF token is derived from the secret ([`csrf_token`]):
//! nothing more to store, and only the holder of the cookie can compute it.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use deadpool_postgres::PoolError;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{
    activity,
    sign_in::{self, SignInError},
    tokens::Principal,
    Actor, OperatorRole,
};
use crate::{fleet::tree::TreeView, state::AppState};

/// What a session's secret starts with, so a leaked one is recognisable.
const PREFIX: &str = "rps_";

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("not signed in")]
    Unknown,
    #[error("the session was idle more than {0} minutes; sign in again")]
    Expired(u32),
    #[error("operator '{0}' is disabled")]
    Disabled(String),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// A session just opened: the secret goes into the cookie, this once.
#[derive(Debug)]
pub struct Opened {
    pub id: Uuid,
    pub secret: String,
    pub principal: Principal,
}

/// A session a request presented, resolved.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: Uuid,
    pub principal: Principal,
    /// The token every form of this session carries.
    pub csrf: String,
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The CSRF token of the session whose secret is `secret`.
pub fn csrf_token(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("csrf:{secret}").as_bytes()))
}

/// Whether `presented` is `expected`, compared in constant time.
pub fn same_token(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Signs `name` in with `password` (the throttling and the activity log of
/// [`sign_in`]) and opens a session.
pub async fn open(
    state: &AppState,
    name: &str,
    password: String,
    address: Option<String>,
) -> Result<Opened, SignInError> {
    let role = sign_in::check_password(state, name, password, address.clone()).await?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let id = Uuid::new_v4();
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    sign_in::forget_failures(&tx, name).await?;
    // Sessions nobody came back to are over: removed here, at each sign-in.
    let idle = state.settings.console.idle_minutes as i32;
    tx.execute("DELETE FROM console_sessions WHERE last_seen_at < now() - make_interval(mins => $1)", &[&idle]).await?;
    tx.execute(
        "INSERT INTO console_sessions (id, secret_hash, operator) VALUES ($1, $2, $3)",
        &[&id, &digest(&secret), &name],
    )
    .await?;
    let actor = Actor::new(name, address);
    let after = json!({"session": id, "via": "console"});
    activity::record(&tx, &actor, "sign_in", &format!("operator:{name}"), None, Some(after)).await?;
    tx.commit().await?;
    tracing::info!(operator = name, session = %id, "Operator signed in to the console.");
    let principal = Principal { operator: name.to_owned(), role, token: None };
    Ok(Opened { id, secret, principal })
}

/// The session whose secret is `presented`, with its operator's current
/// role; marks it seen when the operator acted (`active`; a page refreshing
/// itself is not). An idle session is removed and refused.
pub async fn resolve(state: &AppState, presented: &str, active: bool) -> Result<Session, SessionError> {
    if !presented.starts_with(PREFIX) {
        return Err(SessionError::Unknown);
    }
    let idle = state.settings.console.idle_minutes;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT s.id, s.operator, o.role, o.disabled,
                    s.last_seen_at < now() - make_interval(mins => $2::integer)
               FROM console_sessions s JOIN operators o ON o.name = s.operator WHERE s.secret_hash = $1",
            &[&digest(presented), &(idle as i32)],
        )
        .await?
        .ok_or(SessionError::Unknown)?;
    let (id, operator): (Uuid, String) = (row.get(0), row.get(1));
    if row.get::<_, bool>(4) {
        client.execute("DELETE FROM console_sessions WHERE id = $1", &[&id]).await?;
        tracing::info!(operator, session = %id, "Console session expired.");
        return Err(SessionError::Expired(idle));
    }
    if row.get::<_, bool>(3) {
        return Err(SessionError::Disabled(operator));
    }
    if active {
        client.execute("UPDATE console_sessions SET last_seen_at = now() WHERE id = $1", &[&id]).await?;
    }
    let role = OperatorRole::parse(row.get(2)).unwrap_or(OperatorRole::Auditor);
    Ok(Session { id, principal: Principal { operator, role, token: None }, csrf: csrf_token(presented) })
}

/// Ends session `id` (signing out), recorded in the activity log.
pub async fn close(state: &AppState, actor: &Actor, id: Uuid) -> Result<(), SessionError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let ended = tx.execute("DELETE FROM console_sessions WHERE id = $1", &[&id]).await?;
    if ended > 0 {
        let after = json!({"session": id, "via": "console"});
        activity::record(&tx, actor, "sign_out", &format!("operator:{}", actor.operator), None, Some(after)).await?;
    }
    tx.commit().await?;
    tracing::info!(operator = actor.operator, session = %id, "Operator signed out of the console.");
    Ok(())
}

/// The view of the tree `operator` last chose (the network view at first).
pub async fn tree_view(state: &AppState, operator: &str) -> Result<TreeView, SessionError> {
    let client = state.pool.get().await?;
    let row = client.query_opt("SELECT tree_view FROM console_preferences WHERE operator = $1", &[&operator]).await?;
    Ok(TreeView::parse(row.as_ref().map(|r| r.get::<_, &str>(0))).unwrap_or(TreeView::Network))
}

/// Remembers `view` as `operator`'s view of the tree.
pub async fn remember_tree_view(state: &AppState, operator: &str, view: TreeView) -> Result<(), SessionError> {
    let text = match view {
        TreeView::Network => "network",
        TreeView::Virtual => "virtual",
    };
    let client = state.pool.get().await?;
    client
        .execute(
            "INSERT INTO console_preferences (operator, tree_view) VALUES ($1, $2)
             ON CONFLICT (operator) DO UPDATE SET tree_view = EXCLUDED.tree_view",
            &[&operator, &text],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_follow_the_secret_and_compare_exactly() {
        let a = csrf_token("rps_one");
        assert_eq!(a, csrf_token("rps_one"));
        assert_ne!(a, csrf_token("rps_two"));
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &csrf_token("rps_two")));
        assert!(!same_token(&a, ""));
        assert!(!same_token(&a, &a[1..]));
    }
}
