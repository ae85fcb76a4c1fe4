//! The enrolled agent identities: listing them, and revoking one.
//!
//! Revoking closes the identity's broker access at once: its broker user is
//! deleted (so it cannot log in again) and its open connections are closed
//! through the management API, its queue is deleted, and its endpoints are
//! released; the revocation is in the activity log.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{enrol::management, queues, AgentError};
use crate::{
    operators::{activity, Actor},
    state::AppState,
};

/// One identity as `GET /api/agents` lists it.
#[derive(Debug, Serialize)]
pub struct AgentView {
    pub id: String,
    pub name: String,
    pub broker_user: String,
    pub queue: String,
    pub token_id: Uuid,
    pub enrolled_at: DateTime<Utc>,
    pub enrolled_from: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    /// Endpoints it owns (none once revoked).
    pub endpoints: i64,
    /// `active` or `revoked`.
    pub state: &'static str,
}

/// One identity with the endpoints it owns (`GET /api/agents/{id}`).
#[derive(Debug, Serialize)]
pub struct AgentDetail {
    #[serde(flatten)]
    pub agent: AgentView,
    pub owned_endpoints: Vec<String>,
}

const SELECT: &str = "SELECT a.id, a.name, a.broker_user, a.queue, a.token_id, a.enrolled_at, a.enrolled_from,
                             a.revoked_at, a.revoked_by,
                             (SELECT count(*) FROM endpoint_owners o WHERE o.agent_id = a.id)
                        FROM agent_identities a";

fn view(r: &Row) -> AgentView {
    let revoked_at: Option<DateTime<Utc>> = r.get(7);
    AgentView {
        id: r.get(0),
        name: r.get(1),
        broker_user: r.get(2),
        queue: r.get(3),
        token_id: r.get(4),
        enrolled_at: r.get(5),
        enrolled_from: r.get(6),
        revoked_at,
        revoked_by: r.get(8),
        endpoints: r.get(9),
        state: if revoked_at.is_some() { "revoked" } else { "active" },
    }
}

/// Every identity, newest first.
pub async fn list<C: GenericClient>(client: &C) -> Result<Vec<AgentView>, AgentError> {
    let rows = client.query(&format!("{SELECT} ORDER BY a.enrolled_at DESC LIMIT 1000"), &[]).await?;
    Ok(rows.iter().map(view).collect())
}

/// One identity and its endpoints.
pub async fn show<C: GenericClient>(client: &C, id: &str) -> Result<AgentDetail, AgentError> {
    let row = client
        .query_opt(&format!("{SELECT} WHERE a.id = $1"), &[&id])
        .await?
        .ok_or_else(|| AgentError::NotFound(id.to_owned()))?;
    let owned = client
        .query("SELECT endpoint_id FROM endpoint_owners WHERE agent_id = $1 ORDER BY endpoint_id", &[&id])
        .await?;
    Ok(AgentDetail { agent: view(&row), owned_endpoints: owned.iter().map(|r| r.get(0)).collect() })
}

/// Revokes identity `id` for `actor`: its broker user and connections go
/// before the revocation commits (a broker that cannot do it refuses the
/// revocation, which can be tried again), then its queue.
pub async fn revoke(state: &AppState, actor: &Actor, id: &str) -> Result<AgentView, AgentError> {
    let admin = management(state)?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt("SELECT broker_user, queue, revoked_at FROM agent_identities WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .ok_or_else(|| AgentError::NotFound(id.to_owned()))?;
    let (user, queue): (String, String) = (row.get(0), row.get(1));
    if let Some(at) = row.get::<_, Option<DateTime<Utc>>>(2) {
        return Err(AgentError::AlreadyRevoked(id.to_owned(), at));
    }
    let released = tx.execute("DELETE FROM endpoint_owners WHERE agent_id = $1", &[&id]).await?;
    tx.execute(
        "UPDATE agent_identities SET revoked_at = now(), revoked_by = $2 WHERE id = $1",
        &[&id, &actor.operator],
    )
    .await?;
    let after = serde_json::json!({"released_endpoints": released, "broker_user": user});
    activity::record(&tx, actor, "agent.revoke", &format!("agent:{id}"), None, Some(after)).await?;

    match admin.delete_user(&user).await {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(AgentError::broker("delete the agent's broker user", e)),
    }
    // RabbitMQ also closes a deleted user's connections itself; closing them
    // here does not wait for that, and a failure here (a connection gone
    // between listing and closing) leaves nothing open.
    let closed = match admin.close_connections_of(&user, "agent identity revoked").await {
        Ok(closed) => closed,
        Err(e) => {
            tracing::warn!(agent_id = id, error = %e, "Could not close a revoked agent's connections; its deleted user's are closed by the broker.");
            0
        }
    };
    tx.commit().await?;
    state.agents.revoke(id);
    if let Err(e) = queues::delete(state, &queue).await {
        tracing::warn!(agent_id = id, queue, error = %e, "Could not delete a revoked agent's queue; delete it by hand.");
    }
    tracing::info!(agent_id = id, operator = %actor.operator, released, closed, "Revoked an agent identity.");
    let row = client.query_one(&format!("{SELECT} WHERE a.id = $1"), &[&id]).await?;
    Ok(view(&row))
}
