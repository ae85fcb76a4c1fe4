//! Test harness: real servers and agents in process, against the real
//! PostgreSQL and RabbitMQ, each test in its own database and namespace.
//!
//! `TestServer::spawn` writes a server.xml, runs it through the same parser
//! as production, starts the server on port 0, and returns helpers to call
//! its API. `stop` shuts it down and removes the database (or its schema of
//! a shared one) and the queues.
//! Servers use the machine's PostgreSQL and RabbitMQ unless their options
//! point at private instances ([`faults`]). `TestAgent::spawn` stands in for
//! an agent with the broker's `guest` (its server does not require agent
//! identities); [`enrolled`] enrols fleets for real.

pub mod abuse;
mod broker;
pub mod checker;
pub mod enrolled;
pub mod faults;
pub mod hierarchy;
pub mod multi_site;
pub mod operators;
pub mod refusals;
pub mod report;
pub mod smtp;

use std::{future::Future, sync::Arc, time::Duration};

pub use broker::{
    delete_queues, delete_queues_at, inject, inject_at, queue_depth, queue_exists, teardown_namespace,
    teardown_namespace_at,
};
use rampart_server::{config::Settings, startup::Application, state::SharedState};
use rampart_shared::{
    topology::{NameSegment, Topology},
    Shutdown,
};
use reqwest::StatusCode;
use serde_json::Value;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const PG_BASE: &str = "postgres://root@127.0.0.1:5432";
pub const TOKEN: &str = "test-token-0123456789abcdef";
/// Upper bound of any wait in these tests.
pub const WAIT: Duration = Duration::from_secs(60);

/// A fresh AMQP namespace for one test.
pub fn namespace() -> String {
    format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Options for [`TestServer::spawn`].
pub struct ServerOptions {
    pub instance: String,
    pub role: &'static str,
    pub namespace: String,
    pub database: String,
    /// Extra XML inserted before `</Server>` (license, endpoints...).
    pub extra_xml: String,
    /// Whether stopping this server removes the namespace's exchanges
    /// (not for a slave sharing its master's namespace).
    pub owns_namespace: bool,
    /// `<Database><PoolSize>`.
    pub pool_size: usize,
    /// `<Database><IdleTimeout>`, seconds: the server's default when `None`.
    pub idle_timeout_s: Option<u64>,
    /// `<Database><Schema>`: the server lives in this schema of `database`
    /// (shared with others); stopping it drops the schema, not the database.
    pub schema: Option<String>,
    /// `<Broker><Url>`: the machine's broker unless a test starts its own.
    pub amqp_url: String,
    /// Extra XML inside `<Broker>` (e.g. its `<Management>`).
    pub broker_xml: String,
    /// Where the database lives (`postgres://user@host:port`), without the name.
    pub pg_base: String,
    /// Serve the API over TLS (the production default); off, the server is
    /// told `<Plain>true</Plain>`, as the older tests expect.
    pub tls: bool,
    /// `<Api><PlainRegistration>`: on unless a test says otherwise.
    pub plain_registration: bool,
    /// `<Agents><RequireIdentity>`: off unless a test says otherwise, since
    /// most tests stand in for agents with the machine's `guest` user
    /// (`TestAgent::spawn`, [`inject`]); `tests/tests/agent_identities.rs`
    /// runs with the production default, on.
    pub require_agent_identity: bool,
    /// `<Broker><Management>`: the management API's URL and the file with
    /// its administrator's `user:password` (enrolment makes broker users).
    pub broker_management: Option<(String, std::path::PathBuf)>,
}

impl ServerOptions {
    pub fn standalone() -> Self {
        Self {
            instance: "site-a".into(),
            role: "standalone",
            namespace: namespace(),
            database: format!("rt_{}", uuid::Uuid::new_v4().simple()),
            extra_xml: String::new(),
            owns_namespace: true,
            pool_size: 8,
            idle_timeout_s: None,
            schema: None,
            amqp_url: AMQP_URL.to_owned(),
            broker_xml: String::new(),
            pg_base: PG_BASE.to_owned(),
            tls: false,
            plain_registration: true,
            require_agent_identity: false,
            broker_management: None,
        }
    }

    pub fn master() -> Self {
        Self { role: "master", instance: "hq".into(), ..Self::standalone() }
    }

    /// A stand-alone named `instance` in `namespace` (to join a master there).
    pub fn site(instance: &str, namespace: &str) -> Self {
        Self { instance: instance.into(), namespace: namespace.into(), owns_namespace: false, ..Self::standalone() }
    }

    pub fn database_url(&self) -> String {
        format!("{}/{}", self.pg_base, self.database)
    }

    pub fn settings(&self) -> Settings {
        self.settings_with_api_xml("")
    }

    /// [`Self::settings`] with `api_xml` added inside `<Api>` (a `<Tls>` of its own).
    pub fn settings_with_api_xml(&self, api_xml: &str) -> Settings {
        let transport = match (self.tls, self.plain_registration) {
            (true, false) => "",
            (true, true) => "<PlainRegistration>true</PlainRegistration>",
            (false, false) => "<Plain>true</Plain>",
            (false, true) => "<Plain>true</Plain><PlainRegistration>true</PlainRegistration>",
        };
        let management = match &self.broker_management {
            Some((url, file)) => {
                format!(
                    "<Management><Url>{url}</Url><CredentialsFile>{}</CredentialsFile></Management>",
                    file.display()
                )
            }
            None => String::new(),
        };
        let schema = self.schema.as_ref().map(|s| format!("<Schema>{s}</Schema>")).unwrap_or_default();
        let idle = self.idle_timeout_s.map(|s| format!("<IdleTimeout>{s}</IdleTimeout>")).unwrap_or_default();
        let xml = format!(
            "<Server><Instance><Name>{}</Name><Role>{}</Role></Instance>
               <Database><Url>{}</Url><PoolSize>{}</PoolSize>{idle}{schema}</Database>
               <Broker><Url>{}</Url><Namespace>{}</Namespace>{}{management}</Broker>
               <Api><Listen>127.0.0.1:0</Listen><Token>{TOKEN}</Token>{}{}</Api>
               <Agents><RequireIdentity>{}</RequireIdentity></Agents>{}</Server>",
            self.instance,
            self.role,
            self.database_url(),
            self.pool_size,
            self.amqp_url,
            self.namespace,
            self.broker_xml,
            transport,
            api_xml,
            self.require_agent_identity,
            self.extra_xml
        );
        Settings::parse(&xml, |_| None, None).expect("test configuration is valid")
    }
}

pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub state: SharedState,
    pub options: ServerOptions,
    shutdown: Shutdown,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    pub async fn spawn(options: ServerOptions) -> Self {
        Self::spawn_with_api_xml(options, "").await
    }

    /// [`Self::spawn`] with `api_xml` added inside `<Api>`.
    pub async fn spawn_with_api_xml(options: ServerOptions, api_xml: &str) -> Self {
        // Logs only when asked: RAMPART_TEST_LOG=info cargo test ... -- --nocapture
        if let Ok(level) = std::env::var("RAMPART_TEST_LOG") {
            rampart_shared::telemetry::init(rampart_shared::telemetry::LogFormat::Text, &level);
        }
        let app = Application::build(options.settings_with_api_xml(api_xml)).await.expect("server starts");
        let state = app.state();
        let (base, http) = match state.api_fingerprint {
            Some(fingerprint) => (format!("https://{}", app.address()), pinned_client(fingerprint)),
            None => (format!("http://{}", app.address()), reqwest::Client::new()),
        };
        let shutdown = Shutdown::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Self { base, http, state, options, shutdown, handle }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&NameSegment::parse(&self.options.namespace).unwrap())
    }

    /// Calls the API with the right token; returns status and JSON body.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = tokio::time::timeout(Duration::from_secs(30), request.send())
            .await
            .expect("API answers in time")
            .expect("API reachable");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// A GET that must succeed.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    /// `HOST:PORT` of the API, as another server would be told.
    pub fn address(&self) -> String {
        self.base.trim_start_matches("https://").trim_start_matches("http://").to_owned()
    }

    /// SHA-256 of the API's certificate (a TLS server only).
    pub fn fingerprint(&self) -> rampart_shared::tls::Fingerprint {
        self.state.api_fingerprint.expect("this test server serves TLS")
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// The Prometheus text of `/metrics` (served without a token).
    pub async fn metrics(&self) -> String {
        let response = self.http.get(format!("{}/metrics", self.base)).timeout(Duration::from_secs(30)).send().await;
        response.expect("metrics reachable").text().await.expect("metrics body read")
    }

    /// Waits until `GET path` shows `expected` in `field`; returns that body.
    pub async fn wait_for_field(&self, path: &str, field: &str, expected: impl Into<Value>) -> Value {
        let expected = expected.into();
        wait_for(&format!("{path} to show {field} = {expected}"), || async {
            let body = self.get_ok(path).await;
            (body[field] == expected).then_some(body)
        })
        .await
    }

    /// Waits until the server knows `count` endpoints.
    pub async fn wait_for_endpoints(&self, count: i64) {
        wait_for(&format!("{count} endpoints enrolled"), || async {
            let (_, body) = self.get("/api/endpoints?limit=1").await;
            (body["total"].as_i64() == Some(count)).then_some(())
        })
        .await
    }

    /// Stops the server and keeps its database (to start it again later).
    pub async fn halt(self) -> ServerOptions {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.handle).await;
        self.options
    }

    /// Kills the server as `kill -9` would: no draining, no acks; the broker
    /// connection drops, so the broker redelivers whatever was unacked. The
    /// database stays (start the server again with the returned options).
    pub async fn kill(self) -> ServerOptions {
        self.handle.abort();
        let _ = self.handle.await;
        self.state.broker.close().await;
        self.options
    }

    /// Stops the server, then removes its database and AMQP names.
    pub async fn stop(self, extra_queues: &[String]) {
        let topo = self.topology();
        let instance = self.options.instance.clone();
        let is_master = self.options.role == "master";
        let self_owns_namespace = self.options.owns_namespace;
        let database_url = self.options.database_url();
        let amqp_url = self.options.amqp_url.clone();
        let schema = self.options.schema.clone();
        self.halt().await;
        let mut queues = if is_master {
            vec![
                topo.master_status_queue(),
                topo.master_replication_queue(),
                topo.master_live_replication_queue(),
                topo.report_events_queue(),
            ]
        } else {
            vec![topo.site_inbox(&instance), topo.slave_commands_queue(&instance)]
        };
        queues.extend_from_slice(extra_queues);
        if self_owns_namespace {
            teardown_namespace_at(&amqp_url, &topo, &queues).await;
        } else {
            delete_queues_at(&amqp_url, &queues).await;
        }
        match schema.map(|s| rampart_shared::db::SchemaName::parse(&s)) {
            Some(Ok(schema)) => {
                let _ = rampart_shared::db::schema::drop(&database_url, &schema).await;
            }
            _ => {
                let _ = rampart_shared::db::drop_database(&database_url).await;
            }
        }
    }
}

/// An HTTP client that trusts exactly the certificate with `fingerprint`.
pub fn pinned_client(fingerprint: rampart_shared::tls::Fingerprint) -> reqwest::Client {
    let config = rampart_shared::tls::PinnedVerifier::pinned(fingerprint).client_config();
    reqwest::Client::builder().use_preconfigured_tls(config).build().expect("a pinned HTTP client")
}

/// A connection of the test's own to the database at `url` (to read or
/// write beside a server, or while it is down); its driver runs in a task.
pub async fn connect_database(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test's database {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// Polls `probe` every 100 ms until it yields `Some`, failing after `WAIT`.
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {WAIT:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A simulated fleet running in process against a test server.
pub struct TestAgent {
    pub queue: String,
    /// Commands the agent refused, by reason.
    pub refusals: Arc<rampart_agent::trust::CommandRefusals>,
    shutdown: Shutdown,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestAgent {
    /// Starts `endpoints` simulated computers for `server`'s site; `tune`
    /// adjusts the settings (fast scans, no random detections...).
    pub fn spawn(server: &TestServer, endpoints: u32, tune: impl FnOnce(&mut rampart_agent::AgentSettings)) -> Self {
        let mut settings = rampart_agent::AgentSettings::new(
            &server.options.amqp_url,
            NameSegment::parse(&server.options.namespace).unwrap(),
            NameSegment::parse(&server.options.instance).unwrap(),
            endpoints,
        );
        settings.detections_per_hour = 0.0;
        settings.scan_duration = Duration::from_millis(200);
        settings.heartbeat_interval = Duration::from_secs(30);
        settings.site_key = Some(server.state.site.command_key.public());
        tune(&mut settings);
        let queue = server.topology().agent_queue(server.options.instance.as_str(), settings.name.as_str());
        let shutdown = Shutdown::new();
        let refusals = Arc::default();
        let handle = tokio::spawn(rampart_agent::run_with(settings, shutdown.clone(), Arc::clone(&refusals)));
        Self { queue, refusals, shutdown, handle }
    }

    pub async fn stop(self) -> String {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.handle).await;
        self.queue
    }
}
