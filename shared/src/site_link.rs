//! What a master and a slave with a broker of its own exchange to link
//! their brokers (`docs/multi-site.md`): the link credentials in the
//! registration answer, and the call that withdraws a registration whose
//! links could not be made.

use serde::{Deserialize, Serialize};

use crate::signing::SigningKey;

/// `POST` on the master: the slave withdraws a registration it could not
/// complete (its links to the master's broker did not come up).
pub const CANCEL_REGISTRATION_PATH: &str = "/api/slaves/register/cancel";

/// Where and as whom a slave's broker connects to the master's broker.
/// Sent once, in the registration answer, over the pinned TLS of the
/// registration call.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerLinkGrant {
    /// `amqp(s)://host:port/vhost` of the master's broker, without credentials.
    pub uri: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for BrokerLinkGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerLinkGrant").field("uri", &self.uri).field("user", &self.user).finish_non_exhaustive()
    }
}

/// One link as a slave reports it in its heartbeat (and shows it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkState {
    /// `commands`, `status` or `replication`.
    pub carries: String,
    /// `running`, `starting`, `terminated` or `missing`.
    pub state: String,
    /// The broker's reason for a link that is not running.
    pub reason: Option<String>,
    /// Messages waiting on the slave's broker for this link (outbound links).
    pub waiting: Option<u64>,
}

/// Body of [`CANCEL_REGISTRATION_PATH`]: the slave proves it holds the key
/// the master issued in this registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRegistration {
    pub slave_id: String,
    /// Why (shown in the master's log and the slave's record).
    pub reason: String,
    /// [`cancel_proof`] of the slave id under the slave key.
    pub proof: String,
}

/// The signature that proves a cancellation comes from the slave itself.
pub fn cancel_proof(slave_key: &SigningKey, slave_id: &str) -> String {
    slave_key.sign(format!("cancel-registration:{slave_id}").as_bytes())
}

/// Whether `proof` is [`cancel_proof`] of `slave_id` under `slave_key`.
pub fn cancel_proof_holds(slave_key: &SigningKey, slave_id: &str, proof: &str) -> bool {
    slave_key.verify(format!("cancel-registration:{slave_id}").as_bytes(), proof)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_stays_out_of_debug() {
        let grant =
            BrokerLinkGrant { uri: "amqp://hq:5672/%2f".into(), user: "rt.link.p".into(), password: "pw1".into() };
        assert!(!format!("{grant:?}").contains("pw1"));
    }

    #[test]
    fn a_proof_holds_for_its_slave_and_key_only() {
        let key = SigningKey::generate();
        let proof = cancel_proof(&key, "paris");
        assert!(cancel_proof_holds(&key, "paris", &proof));
        assert!(!cancel_proof_holds(&key, "lyon", &proof));
        assert!(!cancel_proof_holds(&SigningKey::generate(), "paris", &proof));
    }
}
