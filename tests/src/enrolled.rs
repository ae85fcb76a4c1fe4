//! Agents that enrol for real, on the machine's broker: a site that
//! requires agent identities and may make broker users (through the
//! management API with the administrator `ops/services` made), and fleets
//! that enrol with a one-time token, run as their own broker user, and are
//! revoked when they stop (so no broker user outlives its test).

use std::{path::PathBuf, sync::Arc, time::Duration};

use rampart_agent::{identity, settings::AgentIdentity, AgentSettings};
use rampart_shared::{
    broker_admin::{grants::url_with_user, NewUser},
    enrolment::EnrolmentRequest,
    site_key::SitePublicKey,
    topology::NameSegment,
    Secret, Shutdown,
};
use serde_json::json;

use crate::{ServerOptions, TestAgent, TestServer};

/// The machine broker's management API (`ops/services` enables it).
pub const MANAGEMENT_URL: &str = "http://127.0.0.1:15672";

/// The administrator's credentials file `ops/services` writes.
pub fn admin_credentials() -> PathBuf {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.rampart/broker-admin.credentials");
    assert!(file.exists(), "{} is missing: run the tests with ops/test (it runs ops/services)", file.display());
    file
}

impl ServerOptions {
    /// These options, requiring agent identities (the production default)
    /// and allowed to make broker users on the machine's broker.
    pub fn with_agent_identities(self) -> Self {
        Self {
            require_agent_identity: true,
            broker_management: Some((MANAGEMENT_URL.to_owned(), admin_credentials())),
            ..self
        }
    }
}

/// A fleet that enrolled on its site, running.
pub struct EnrolledAgent {
    pub agent: TestAgent,
    pub agent_id: String,
}

impl EnrolledAgent {
    /// Makes a token for `endpoints`, enrols a fleet of that size (its
    /// settings as `tune` leaves them) and starts it.
    pub async fn spawn(server: &TestServer, endpoints: u32, tune: impl FnOnce(&mut AgentSettings)) -> Self {
        let mut settings = AgentSettings::new(
            &server.options.amqp_url,
            NameSegment::parse(&server.options.namespace).unwrap(),
            NameSegment::parse(&server.options.instance).unwrap(),
            endpoints,
        );
        settings.detections_per_hour = 0.0;
        settings.scan_duration = Duration::from_millis(200);
        tune(&mut settings);
        let (status, token) = server
            .post("/api/agents/enrolment-tokens", json!({"endpoints": endpoints, "expires_in_seconds": 600}))
            .await;
        assert_eq!(status, 201, "{token}");
        let name = settings.name.as_str();
        let request = EnrolmentRequest {
            token: String::new(),
            name: name.to_owned(),
            endpoints: (1..=endpoints).map(|i| rampart_agent::computer::endpoint_id(name, i)).collect(),
        };
        let enrolment =
            identity::enrol(&server.base, token["token"].as_str().unwrap(), request).await.expect("the fleet enrols");
        let user = NewUser { name: enrolment.broker_user.clone(), password: Secret::new(enrolment.broker_password) };
        settings.amqp_url = Secret::new(url_with_user(&server.options.amqp_url, &user).unwrap());
        settings.site_key = SitePublicKey::from_hex(&enrolment.site_key);
        settings.identity = Some(AgentIdentity {
            agent_id: enrolment.agent_id.clone(),
            broker_user: enrolment.broker_user,
            queue: enrolment.queue.clone(),
        });
        let shutdown = Shutdown::new();
        let refusals = Arc::default();
        let handle = tokio::spawn(rampart_agent::run_with(settings, shutdown.clone(), Arc::clone(&refusals)));
        let agent = TestAgent { queue: enrolment.queue, refusals, shutdown, handle };
        Self { agent, agent_id: enrolment.agent_id }
    }

    /// Stops the fleet and revokes its identity (its broker user and queue go).
    pub async fn stop(self, server: &TestServer) {
        self.agent.stop().await;
        let (status, body) = server.post(&format!("/api/agents/{}/revoke", self.agent_id), json!({})).await;
        assert_eq!(status, 200, "revoking {}: {body}", self.agent_id);
    }
}
