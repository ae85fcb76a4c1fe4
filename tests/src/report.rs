//! The report service in process, for tests: its own database, the test
//! namespace, port 0; and a master wired to it.

use std::time::Duration;

use rampart_report::{config::Settings, startup::Application};
use rampart_shared::Shutdown;
use serde_json::Value;

use crate::{wait_for, ServerOptions, AMQP_URL, PG_BASE, TOKEN};

/// The key a test master signs its events with.
pub const EVENT_KEY: &str = "test-event-key-0123456789";

pub struct TestReport {
    pub base: String,
    pub database_url: String,
    pub namespace: String,
    pub http: reqwest::Client,
    pub pool: deadpool_postgres::Pool,
    shutdown: Shutdown,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestReport {
    /// Starts a report service on `namespace` with a fresh database.
    pub async fn spawn(namespace: &str) -> Self {
        Self::spawn_on(namespace, &format!("rt_report_{}", uuid::Uuid::new_v4().simple())).await
    }

    /// Starts a report service on `namespace` with `database` (kept if it exists).
    pub async fn spawn_on(namespace: &str, database: &str) -> Self {
        Self::spawn_with(namespace, database, AMQP_URL).await
    }

    /// Starts a report service on `namespace` of the broker at `amqp_url`
    /// (with its own broker user, say), with a fresh database.
    pub async fn spawn_at(namespace: &str, amqp_url: &str) -> Self {
        Self::spawn_with(namespace, &format!("rt_report_{}", uuid::Uuid::new_v4().simple()), amqp_url).await
    }

    /// Starts a report service on `namespace` whose `<Master>` (where the
    /// operators' tokens are checked) is `master_xml`'s.
    pub async fn spawn_for_master(namespace: &str, master_xml: &str) -> Self {
        let database = format!("rt_report_{}", uuid::Uuid::new_v4().simple());
        Self::spawn_with_xml(namespace, &database, AMQP_URL, master_xml).await
    }

    async fn spawn_with(namespace: &str, database: &str, amqp_url: &str) -> Self {
        Self::spawn_with_xml(namespace, database, amqp_url, "").await
    }

    async fn spawn_with_xml(namespace: &str, database: &str, amqp_url: &str, extra_xml: &str) -> Self {
        let database_url = format!("{PG_BASE}/{database}");
        let xml = format!(
            "<Report><Database><Url>{database_url}</Url></Database>
               <Broker><Url>{amqp_url}</Url><Namespace>{namespace}</Namespace></Broker>
               <Api><Listen>127.0.0.1:0</Listen><Token>{TOKEN}</Token></Api><EventKey>{EVENT_KEY}</EventKey>{extra_xml}</Report>"
        );
        let settings = Settings::parse(&xml, |_| None, None).expect("test report configuration is valid");
        let app = Application::build(settings).await.expect("report service starts");
        let base = format!("http://{}", app.address());
        let pool = app.pool();
        let shutdown = Shutdown::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self {
            base,
            database_url,
            namespace: namespace.to_owned(),
            http: reqwest::Client::new(),
            pool,
            shutdown,
            handle,
        }
    }

    /// The `<Reports>` element of a master that uses this service.
    pub fn master_xml(&self) -> String {
        format!("<Reports><ServiceUrl>{}</ServiceUrl><ServiceToken>{TOKEN}</ServiceToken><EventKey>{EVENT_KEY}</EventKey></Reports>", self.base)
    }

    /// Options of a master (in this service's namespace) wired to it.
    pub fn master_options(&self) -> ServerOptions {
        ServerOptions { namespace: self.namespace.clone(), extra_xml: self.master_xml(), ..ServerOptions::master() }
    }

    /// `GET /api/reports/{path}` as JSON (path may carry a query).
    pub async fn report(&self, path: &str) -> Value {
        let url = format!("{}/api/reports/{path}", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("report service reachable");
        assert!(response.status().is_success(), "GET {url}: {}", response.status());
        response.json().await.expect("a JSON report")
    }

    /// `GET /api/status`: what the read model holds and the event counters.
    pub async fn status(&self) -> Value {
        let url = format!("{}/api/status", self.base);
        let response = self
            .http
            .get(&url)
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("report service reachable");
        response.json().await.expect("a JSON status")
    }

    /// Waits until the security-status report satisfies `done`; returns it.
    pub async fn wait_for_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, || async {
            let report = self.report("security-status").await;
            done(&report).then_some(report)
        })
        .await
    }

    /// Stops the service and keeps its database.
    pub async fn halt(self) -> String {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.handle).await;
        self.database_url
    }

    /// Stops the service and drops its database.
    pub async fn stop(self) {
        let url = self.halt().await;
        let _ = rampart_shared::db::drop_database(&url).await;
    }
}
