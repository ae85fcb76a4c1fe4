//! Agent identities: who may speak for which endpoint.
//!
//! An agent process enrols once with a one-time, expiring enrolment token
//! an operator made on this site ([`tokens`]); enrolment ([`enrol`]) gives
//! it its own broker user (no `configure` permission), a queue the site
//! declares and binds to the commands of the endpoints it owns
//! ([`queues`]), the site's public command key, and records which identity
//! owns each endpoint. The agent inbox refuses a message without a
//! broker-validated AMQP `user_id`, or for an endpoint its identity does
//! not own ([`owners`]). Revoking an identity ([`identities::revoke`])
//! deletes its broker user, closes its connections, removes its queue and
//! releases its endpoints. A computer the site deploys an agent to is
//! given to the identity whose endpoint reported it ([`deployed`]).
//! Enrolments and revocations are in the activity log. `docs/security.md` ("Agent identities") explains the choices.

pub mod deployed;
pub mod enrol;
pub mod identities;
pub mod owners;
pub mod queues;
pub mod tokens;

use chrono::{DateTime, Utc};
use deadpool_postgres::PoolError;
use uuid::Uuid;

pub use owners::Owners;

/// Why an operation on agent identities or enrolment tokens was refused.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the enrolment token is not valid on this site")]
    UnknownToken,
    #[error("the enrolment token was already used (by agent '{by}' at {at}): make a new one")]
    TokenUsed { by: String, at: DateTime<Utc> },
    #[error("the enrolment token expired at {0}: make a new one")]
    TokenExpired(DateTime<Utc>),
    #[error("the enrolment token was revoked at {0}")]
    TokenRevoked(DateTime<Utc>),
    #[error("the enrolment token allows {allowed} endpoint(s); the request names {asked}")]
    BeyondAllowance { allowed: i32, asked: usize },
    #[error("endpoint '{endpoint}' is already owned by agent '{agent}'")]
    AlreadyOwned { endpoint: String, agent: String },
    #[error("{0}")]
    Invalid(String),
    #[error("no agent '{0}' on this site")]
    NotFound(String),
    #[error("no enrolment token {0} on this site")]
    TokenNotFound(Uuid),
    #[error("agent '{0}' was already revoked at {1}")]
    AlreadyRevoked(String, DateTime<Utc>),
    #[error("agent enrolment needs the broker's management API: set <Broker><Management> in server.xml")]
    NoBrokerManagement,
    #[error("the broker could not {what}: {detail}")]
    Broker { what: &'static str, detail: String },
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

impl AgentError {
    fn broker(what: &'static str, error: impl std::fmt::Display) -> Self {
        Self::Broker { what, detail: error.to_string() }
    }
}
