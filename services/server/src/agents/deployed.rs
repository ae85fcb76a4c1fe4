//! Computers deployed through an enrolled agent become its endpoints.
//!
//! A discovered computer is reported by an endpoint; when the site deploys
//! an agent to it (an operator's deployment, or automatic deployment that
//! an operator turned on), the computer is given to the identity that owns
//! the reporting endpoint: the deploy command and every later command for
//! it reach that identity's queue, and its heartbeats are taken from that
//! identity only. No message of an agent makes an endpoint owned: only the
//! site's own decision to deploy.

use deadpool_postgres::Transaction;

use crate::state::AppState;

/// A computer given to an identity, to record in memory and bind after commit.
#[derive(Debug)]
pub struct Claim {
    pub computer_id: String,
    pub agent_id: String,
    pub broker_user: String,
    pub queue: String,
}

/// In the caller's transaction: each of `computers` that an owned endpoint
/// reported, and that no identity owns yet, becomes that identity's.
pub async fn claim(tx: &Transaction<'_>, computers: &[String]) -> Result<Vec<Claim>, tokio_postgres::Error> {
    let rows = tx
        .query(
            "WITH claimed AS (
                 INSERT INTO endpoint_owners (endpoint_id, agent_id)
                 SELECT c.computer_id, o.agent_id FROM discovered_computers c
                   JOIN endpoint_owners o ON o.endpoint_id = c.reported_by
                  WHERE c.computer_id = ANY($1)
                 ON CONFLICT (endpoint_id) DO NOTHING
                 RETURNING endpoint_id, agent_id)
             SELECT c.endpoint_id, a.id, a.broker_user, a.queue
               FROM claimed c JOIN agent_identities a ON a.id = c.agent_id",
            &[&computers],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Claim { computer_id: r.get(0), agent_id: r.get(1), broker_user: r.get(2), queue: r.get(3) })
        .collect())
}

/// After the claims committed: the inbox takes the computers' messages
/// from their identities, and their commands reach the identities' queues.
/// A binding that fails is logged (the deploy command then waits in the
/// outbox as unroutable); the site binds it again when the queue is
/// declared again.
pub async fn apply(state: &AppState, claims: &[Claim]) {
    if claims.is_empty() {
        return;
    }
    for c in claims {
        state.agents.grant(&c.agent_id, &c.broker_user, [c.computer_id.clone()]);
    }
    let pairs: Vec<(&str, &str)> = claims.iter().map(|c| (c.queue.as_str(), c.computer_id.as_str())).collect();
    if let Err(error) = super::queues::bind(state, &pairs, "deployed computers bound").await {
        tracing::error!(%error, computers = claims.len(), "Cannot bind deployed computers to their agents' queues.");
    } else {
        tracing::info!(computers = claims.len(), "Gave deployed computers to the agents that reported them.");
    }
}
