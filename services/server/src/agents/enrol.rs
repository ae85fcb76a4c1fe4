//! Enrolment: an agent process presents a one-time enrolment token and the
//! endpoints it runs; the site gives it an identity.
//!
//! In one transaction: the token is checked and marked used, the endpoints
//! are checked against its allowance and against the identities that own
//! them already, the identity and its endpoints are recorded, and so is the
//! enrolment in the activity log (as the agent, naming the token). Before
//! that transaction commits, the identity's broker user is made through the
//! management API and its queue is declared and bound; if either fails
//! nothing is recorded and what was made on the broker is removed, so a
//! refused or failed enrolment leaves the token unused and nothing behind.

use std::collections::HashSet;

use rampart_shared::{
    broker_admin::{
        grants::{self, BrokerGrant},
        settings::vhost_of,
        ManagementClient,
    },
    enrolment::{Enrolment, EnrolmentRequest},
    topology::NameSegment,
};
use uuid::Uuid;

use super::{queues, tokens, AgentError};
use crate::{
    operators::{activity, Actor},
    state::AppState,
};

/// The management client of `<Broker><Management>`, which enrolment and
/// revocation need.
pub(super) fn management(state: &AppState) -> Result<ManagementClient, AgentError> {
    let settings = state.settings.service.broker_management.as_ref().ok_or(AgentError::NoBrokerManagement)?;
    settings.client().map_err(|e| AgentError::broker("reach its management API", e))
}

/// Checks the request's shape: a name and distinct, valid endpoint ids.
fn check(request: &EnrolmentRequest) -> Result<(), AgentError> {
    NameSegment::parse(&request.name).map_err(|e| AgentError::Invalid(format!("name: {e}")))?;
    if request.endpoints.is_empty() {
        return Err(AgentError::Invalid("endpoints: name at least one endpoint this agent runs".into()));
    }
    let mut seen = HashSet::new();
    for endpoint in &request.endpoints {
        NameSegment::parse(endpoint).map_err(|e| AgentError::Invalid(format!("endpoints: {e}")))?;
        if !seen.insert(endpoint.as_str()) {
            return Err(AgentError::Invalid(format!("endpoints: '{endpoint}' is named twice")));
        }
    }
    Ok(())
}

/// Enrols the agent process that presents `request` from `address`.
pub async fn enrol(
    state: &AppState,
    request: EnrolmentRequest,
    address: Option<String>,
) -> Result<Enrolment, AgentError> {
    check(&request)?;
    let admin = management(state)?;
    let site = &state.site;
    let agent_id = format!("ag-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let grant = BrokerGrant::agent(&site.topology, &site.instance, &agent_id);
    let queue = site.topology.agent_queue(&site.instance, &agent_id);

    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let token = tokens::consume(&tx, &request.token, &agent_id).await?;
    let asked = request.endpoints.len();
    if usize::try_from(token.endpoints).unwrap_or(0) < asked {
        return Err(AgentError::BeyondAllowance { allowed: token.endpoints, asked });
    }
    if let Some(row) = tx
        .query_opt(
            "SELECT o.endpoint_id, o.agent_id FROM endpoint_owners o WHERE o.endpoint_id = ANY($1)
              ORDER BY o.endpoint_id LIMIT 1",
            &[&request.endpoints],
        )
        .await?
    {
        return Err(AgentError::AlreadyOwned { endpoint: row.get(0), agent: row.get(1) });
    }
    tx.execute(
        "INSERT INTO agent_identities (id, name, broker_user, queue, token_id, enrolled_from)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&agent_id, &request.name, &grant.user, &queue, &token.id, &address],
    )
    .await?;
    tx.execute(
        "INSERT INTO endpoint_owners (endpoint_id, agent_id) SELECT unnest($1::text[]), $2",
        &[&request.endpoints, &agent_id],
    )
    .await?;
    let actor = Actor::new(format!("agent:{agent_id}"), address);
    let after = serde_json::json!({
        "name": request.name, "endpoints": asked, "token_id": token.id, "broker_user": grant.user,
    });
    activity::record(&tx, &actor, "agent.enrol", &format!("agent:{agent_id}"), None, Some(after)).await?;

    let vhost = vhost_of(state.settings.service.amqp_url.expose());
    let made = async {
        let user = grants::provision(&admin, &vhost, &grant)
            .await
            .map_err(|e| AgentError::broker("make the agent's broker user", e))?;
        queues::declare(state, &queue, &request.endpoints)
            .await
            .map_err(|e| AgentError::broker("declare the agent's queue", e))?;
        Ok::<_, AgentError>(user)
    }
    .await;
    let committed = match made {
        Ok(user) => tx.commit().await.map(|()| user).map_err(AgentError::from),
        Err(e) => Err(e),
    };
    let user = match committed {
        Ok(user) => user,
        Err(e) => {
            undo(state, &admin, &grant.user, &queue).await;
            return Err(e);
        }
    };
    state.agents.grant(&agent_id, &grant.user, request.endpoints.iter().cloned());
    tracing::info!(agent_id, name = %request.name, token_id = %token.id, endpoints = asked, queue,
                   "Enrolled an agent process.");
    Ok(Enrolment {
        agent_id,
        site: site.instance.clone(),
        namespace: site.topology.namespace().to_owned(),
        broker_user: user.name,
        broker_password: user.password.expose().clone(),
        queue,
        site_key: site.command_key.public().to_hex(),
        endpoints: request.endpoints,
    })
}

/// Removes what a failed enrolment made on the broker (best effort: the
/// identity was never recorded, so nothing else refers to them).
async fn undo(state: &AppState, admin: &ManagementClient, user: &str, queue: &str) {
    if let Err(e) = admin.delete_user(user).await {
        if !e.is_not_found() {
            tracing::warn!(user, error = %e, "Could not remove the broker user of a failed enrolment.");
        }
    }
    if let Err(e) = queues::delete(state, queue).await {
        tracing::warn!(queue, error = %e, "Could not remove the queue of a failed enrolment.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(endpoints: &[&str]) -> EnrolmentRequest {
        EnrolmentRequest {
            token: "rre_x".into(),
            name: "sim1".into(),
            endpoints: endpoints.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    #[test]
    fn a_request_names_distinct_valid_endpoints() {
        assert!(check(&request(&["sim1-00001", "sim1-00002"])).is_ok());
        assert!(check(&request(&[])).unwrap_err().to_string().contains("at least one"));
        assert!(check(&request(&["a", "a"])).unwrap_err().to_string().contains("named twice"));
        assert!(check(&request(&["a.b"])).unwrap_err().to_string().contains("endpoints"));
    }
}
