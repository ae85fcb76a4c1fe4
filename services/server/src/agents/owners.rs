//! Which identity owns which endpoint, as the agent inbox checks it on
//! every message.
//!
//! The `endpoint_owners` table is the record; [`Owners`] is its copy in
//! memory, loaded at start and changed only after an enrolment or a
//! revocation commits, so the inbox checks a message without a query. The
//! broker vouches for the AMQP `user_id` of a delivery (it refuses a
//! publish whose `user_id` is not the connection's user), so that user is
//! the identity that sent it.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        RwLock,
    },
};

use deadpool_postgres::GenericClient;
use rampart_shared::{envelope::Rejection, messages::AgentMessage};

/// The ownership of endpoints by identities, and the refusals it caused.
#[derive(Debug, Default)]
pub struct Owners {
    map: RwLock<Ownership>,
    /// Messages refused for want of the right identity (`/metrics`).
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Ownership {
    /// Endpoint id -> agent id.
    endpoints: HashMap<String, String>,
    /// Broker user -> agent id, for identities not revoked.
    users: HashMap<String, String>,
}

impl Owners {
    /// Loads every identity not revoked and the endpoints it owns.
    pub async fn load<C: GenericClient>(client: &C) -> Result<Self, tokio_postgres::Error> {
        let owners = Self::default();
        let rows = client
            .query(
                "SELECT a.id, a.broker_user, o.endpoint_id FROM agent_identities a
                   LEFT JOIN endpoint_owners o ON o.agent_id = a.id
                  WHERE a.revoked_at IS NULL",
                &[],
            )
            .await?;
        for row in &rows {
            owners.grant(row.get(0), row.get(1), row.get::<_, Option<String>>(2));
        }
        Ok(owners)
    }

    /// Records a new identity and its endpoints (after its enrolment committed).
    pub fn grant(&self, agent: &str, broker_user: &str, endpoints: impl IntoIterator<Item = String>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.users.insert(broker_user.to_owned(), agent.to_owned());
        for endpoint in endpoints {
            map.endpoints.insert(endpoint, agent.to_owned());
        }
    }

    /// Forgets an identity and releases its endpoints (after its revocation committed).
    pub fn revoke(&self, agent: &str) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.users.retain(|_, a| a != agent);
        map.endpoints.retain(|_, a| a != agent);
    }

    /// Messages refused so far for want of the right identity.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether `user_id` (the delivery's broker-validated AMQP `user_id`)
    /// may send `message`. `require` is `<Agents><RequireIdentity>`: on,
    /// only an enrolled identity may speak, and only for its endpoints;
    /// off, a sender that is no identity may still speak for endpoints no
    /// identity owns.
    pub fn check(&self, user_id: Option<&str>, message: &AgentMessage, require: bool) -> Result<(), Rejection> {
        let checked = self.decide(user_id, subject(message), require);
        if checked.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        checked
    }

    fn decide(&self, user_id: Option<&str>, endpoint: Option<&str>, require: bool) -> Result<(), Rejection> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let owner = endpoint.and_then(|e| map.endpoints.get(e));
        match (user_id.and_then(|u| map.users.get(u)), user_id) {
            (Some(agent), _) => match (endpoint, owner) {
                (None, _) => Ok(()),
                (Some(_), Some(owner)) if owner == agent => Ok(()),
                (Some(endpoint), _) => {
                    Err(Rejection::Identity(format!("agent '{agent}' does not own endpoint '{endpoint}'")))
                }
            },
            (None, None) if require => {
                Err(Rejection::Identity("no AMQP user_id: the message does not come from an enrolled agent".into()))
            }
            (None, Some(user)) if require => {
                Err(Rejection::Identity(format!("broker user '{user}' is not an enrolled agent of this site")))
            }
            (None, _) => match (endpoint, owner) {
                (Some(endpoint), Some(owner)) => Err(Rejection::Identity(format!(
                    "endpoint '{endpoint}' is owned by agent '{owner}'; only that agent may speak for it"
                ))),
                _ => Ok(()),
            },
        }
    }
}

/// The endpoint a message speaks for (none for a deployment's result, which
/// names a computer that is not an endpoint yet).
fn subject(message: &AgentMessage) -> Option<&str> {
    match message {
        AgentMessage::Heartbeat(h) => Some(&h.endpoint_id),
        AgentMessage::Detection(d) => Some(&d.endpoint_id),
        AgentMessage::TaskResult(r) => Some(&r.endpoint_id),
        AgentMessage::Discovery(d) => Some(&d.reported_by),
        AgentMessage::DeployResult(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners() -> Owners {
        let owners = Owners::default();
        owners.grant("a1", "rt.agent.paris.a1", ["ep-1".to_owned(), "ep-2".to_owned()]);
        owners.grant("a2", "rt.agent.paris.a2", ["ep-3".to_owned()]);
        owners
    }

    #[test]
    fn an_identity_speaks_only_for_its_endpoints() {
        let o = owners();
        assert!(o.decide(Some("rt.agent.paris.a1"), Some("ep-1"), true).is_ok());
        let err = o.decide(Some("rt.agent.paris.a1"), Some("ep-3"), true).unwrap_err().to_string();
        assert!(err.contains("'a1' does not own endpoint 'ep-3'"), "{err}");
        assert!(o.decide(Some("rt.agent.paris.a1"), Some("ep-9"), false).is_err(), "unowned: not claimed by speaking");
        assert!(o.decide(Some("rt.agent.paris.a1"), None, true).is_ok());
    }

    #[test]
    fn without_an_identity_only_when_allowed_and_never_for_an_owned_endpoint() {
        let o = owners();
        assert!(o.decide(None, Some("ep-9"), true).unwrap_err().to_string().contains("no AMQP user_id"));
        assert!(o.decide(Some("guest"), Some("ep-9"), true).unwrap_err().to_string().contains("'guest'"));
        assert!(o.decide(Some("guest"), Some("ep-9"), false).is_ok());
        assert!(o.decide(None, Some("ep-9"), false).is_ok());
        assert!(o.decide(None, Some("ep-1"), false).unwrap_err().to_string().contains("owned by agent 'a1'"));
    }

    #[test]
    fn a_revoked_identity_is_forgotten() {
        let o = owners();
        o.revoke("a1");
        assert!(o.decide(Some("rt.agent.paris.a1"), Some("ep-1"), true).is_err());
        assert!(o.decide(None, Some("ep-1"), false).is_ok(), "its endpoints are released");
        assert!(o.decide(Some("rt.agent.paris.a2"), Some("ep-3"), true).is_ok());
    }
}
