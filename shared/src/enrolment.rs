//! Agent enrolment on `:7073`: the one call an agent process makes to its
//! site's API, and the enrolment token it presents.
//!
//! An operator makes a one-time, expiring enrolment token on the site
//! (`rampartctl agents enrolment-token create`). A token made on a site that
//! serves TLS reads `rre_<secret>.<fingerprint>`: the SHA-256 fingerprint of
//! the site's API certificate rides along, and the agent connects only to
//! the holder of that certificate (the scheme of registration tokens). Only
//! `rre_<secret>` is sent, in the body of [`ENROL_PATH`]; the answer gives
//! the agent its identity: its own broker user and password, its queue, and
//! the site's public command key.

use serde::{Deserialize, Serialize};

use crate::tls::Fingerprint;

/// Where an agent process enrols (no bearer token: the enrolment token in
/// the body is the credential).
pub const ENROL_PATH: &str = "/api/agents/enrol";
/// Prefix that makes an enrolment token recognisable in a paste.
pub const TOKEN_PREFIX: &str = "rre_";

/// A token as the operator pastes it: the secret the site checks, and the
/// fingerprint of the site's certificate (absent in a token of a site that
/// serves plain HTTP).
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedToken<'a> {
    pub secret: &'a str,
    pub fingerprint: Option<Fingerprint>,
}

/// Splits a pasted enrolment token; `Err` says what is wrong with it.
pub fn split_token(token: &str) -> Result<PresentedToken<'_>, String> {
    let token = token.trim();
    if !token.starts_with(TOKEN_PREFIX) {
        return Err(format!("an enrolment token starts with '{TOKEN_PREFIX}'; copy it again, whole"));
    }
    match token.split_once('.') {
        None => Ok(PresentedToken { secret: token, fingerprint: None }),
        Some((secret, fingerprint)) => match Fingerprint::parse(fingerprint) {
            Some(fingerprint) => Ok(PresentedToken { secret, fingerprint: Some(fingerprint) }),
            None => Err("the enrolment token is damaged: what follows its '.' is not a certificate fingerprint \
                         (64 hex digits); copy it again, whole"
                .into()),
        },
    }
}

/// What an agent process asks for: the endpoints it will speak for (at
/// most the token's allowance).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolmentRequest {
    /// `rre_<secret>`, without the fingerprint.
    pub token: String,
    /// The process's own name (the fleet's name), shown to operators.
    pub name: String,
    /// The ids of the endpoints this process runs.
    pub endpoints: Vec<String>,
}

/// The site's answer: everything the agent keeps in its identity file.
#[derive(Clone, Serialize, Deserialize)]
pub struct Enrolment {
    /// The identity's id on the site.
    pub agent_id: String,
    /// The site's instance id (part of every routing key).
    pub site: String,
    /// The AMQP namespace of the site.
    pub namespace: String,
    /// The agent's own broker user; the AMQP `user_id` of every publish.
    pub broker_user: String,
    /// Its password: generated at enrolment, shown only here.
    pub broker_password: String,
    /// The queue the site declared for it, bound to its endpoints' commands.
    pub queue: String,
    /// The site's public command key, 64 hex digits.
    pub site_key: String,
    /// The endpoints it owns.
    pub endpoints: Vec<String>,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("agent_id", &self.agent_id)
            .field("site", &self.site)
            .field("broker_user", &self.broker_user)
            .field("broker_password", &"***")
            .field("queue", &self.queue)
            .field("endpoints", &self.endpoints.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_splits_into_secret_and_fingerprint() {
        let fingerprint = Fingerprint::of(b"site certificate");
        let pasted = format!(" rre_abc.{fingerprint}\n");
        assert_eq!(split_token(&pasted).unwrap(), PresentedToken { secret: "rre_abc", fingerprint: Some(fingerprint) });
        assert_eq!(split_token("rre_abc").unwrap(), PresentedToken { secret: "rre_abc", fingerprint: None });
        assert!(split_token("rre_abc.123").unwrap_err().contains("damaged"));
        assert!(split_token("rrt_abc").unwrap_err().contains("'rre_'"));
    }

    #[test]
    fn the_password_never_prints() {
        let e = Enrolment {
            agent_id: "a1".into(),
            site: "paris".into(),
            namespace: "rampart".into(),
            broker_user: "rampart.agent.paris.a1".into(),
            broker_password: "s3cret".into(),
            queue: "q".into(),
            site_key: String::new(),
            endpoints: vec![],
        };
        assert!(!format!("{e:?}").contains("s3cret"));
    }
}
