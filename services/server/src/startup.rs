//! Building and running one server: database, broker, consumers, API.
//!
//! `Application::build(settings)` does everything that can fail at start
//! (database creation and migrations, instance identity check, license,
//! broker topology, binding the port) so a bad start fails fast with context;
//! `run_until_stopped` then serves until the shutdown signal and drains.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{bail, Context};
use rampart_shared::{
    amqp::{close_channel, publisher::Publisher, Broker},
    db,
    topology::{self, Topology},
    Shutdown,
};
use tokio::task::JoinSet;

use crate::{
    agents,
    api::{self, PeerAddress, TlsListener},
    config::{ConfiguredRole, Settings},
    consumers,
    hierarchy::{self, Keyring},
    licensing, migrations, outbox, reports,
    role::Role,
    site_key,
    state::{AppState, OwnedQueue, SharedState, Site},
    tls::{self, ServerIdentity, Transport},
};

/// How long running work may take to finish after shutdown is asked.
const GRACE_PERIOD: Duration = Duration::from_secs(10);

pub struct Application {
    state: SharedState,
    broker: Arc<Broker>,
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    /// The API's certificate; `None` where `server.xml` asks for plain HTTP.
    identity: Option<ServerIdentity>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let db_url = settings.service.database_url.expose();
        db::ensure_database(db_url).await.context("Failed to create or reach the database")?;
        let schema = settings.service.database_schema.as_ref();
        let pool = db::pool_in(db_url, settings.service.database_pool_size, schema)
            .context("Failed to build the database pool")?;
        if let Some(schema) = schema {
            db::schema::prepare(&pool, schema, migrations::EXTENSIONS)
                .await
                .with_context(|| format!("Failed to prepare the schema {schema} (<Database>/<Schema>)"))?;
        }
        db::migrate(&pool, migrations::MIGRATIONS).await.context("Failed to migrate the database")?;
        let role = claim_instance(&pool, &settings).await?;
        let keyring = {
            let client = pool.get().await.context("Failed to get a database connection")?;
            if role == Role::Master {
                hierarchy::ensure_master_key(&client).await?;
            }
            Keyring::load(&client, role).await.context("Failed to load the hierarchy keys")?
        };
        let identity = match &settings.tls.transport {
            Transport::Plain => None,
            Transport::Tls { files, names } => {
                let client = pool.get().await.context("Failed to get a database connection")?;
                let instance = settings.instance.as_str();
                let identity = tls::identity(&client, instance, settings.service.api_listen, files.as_ref(), names)
                    .await
                    .context("Failed to load the API's TLS certificate (<Server>/<Api>/<Tls>)")?;
                Some(identity)
            }
        };
        let command_key = {
            let client = pool.get().await.context("Failed to get a database connection")?;
            site_key::ensure(&client).await.context("Failed to load the site's command key")?
        };
        if let Some(key) = &settings.license_key {
            install_configured_license(&pool, key.expose()).await?;
        }

        let topology = Topology::new(&settings.service.namespace);
        let broker = Arc::new(
            Broker::connect(settings.service.amqp_url.clone(), format!("rampart-server {}", settings.instance))
                .await
                .context("Failed to connect to the broker")?,
        );
        let site = Site {
            instance: settings.instance.to_string(),
            topology: topology.clone(),
            command_key: Arc::new(command_key),
        };
        let publishes_events = settings.reports.event_key.is_some();
        declare_topology(&broker, &site, role, publishes_events)
            .await
            .context("Failed to declare the broker topology")?;

        let listener = tokio::net::TcpListener::bind(settings.service.api_listen)
            .await
            .with_context(|| format!("Failed to bind the API to {}", settings.service.api_listen))?;
        let address = listener.local_addr()?;
        let owners = {
            let client = pool.get().await.context("Failed to get a database connection")?;
            agents::Owners::load(&client).await.context("Failed to load the agent identities")?
        };
        let mut state = AppState::new(pool, broker.clone(), settings, site, role, keyring);
        state.agents = Arc::new(owners);
        state.api_fingerprint = identity.as_ref().map(|i| i.fingerprint);
        Ok(Self { state: Arc::new(state), broker, listener, address, identity })
    }

    /// Where the API listens (the real port when configured with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn state(&self) -> SharedState {
        self.state.clone()
    }

    /// Serves until `shutdown` triggers, then drains within the grace period.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self { state, broker, listener, address, identity } = self;
        let mut tasks = JoinSet::new();
        let publisher = Arc::new(Publisher::new(broker.clone()));
        tasks.spawn(outbox::relay(
            state.pool.clone(),
            publisher.clone(),
            state.wakes.outbox_relay.clone(),
            state.failpoints.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(consumers::run(state.clone(), broker.clone(), shutdown.clone()));
        tasks.spawn(db::idle::close_idle(
            state.pool.weak(),
            state.settings.service.database_idle_timeout,
            shutdown.clone(),
        ));
        tasks.spawn(reports::schedules::run(state.clone(), shutdown.clone()));
        if state.settings.hierarchy.site_broker {
            tasks.spawn(crate::hierarchy::link_keeper::run(state.clone(), shutdown.clone()));
        }
        if state.role() != Role::Master {
            tasks.spawn(agents::queues::keep(state.clone(), shutdown.clone()));
        }
        if state.role() == Role::Master {
            let state = state.clone();
            tasks.spawn(async move { crate::hierarchy::link_users::refresh_grants(&state).await });
        }
        if state.role() == Role::Master && reports::events::enabled(&state) {
            tasks.spawn(reports::events::run_roster(state.clone(), shutdown.clone()));
            tasks.spawn(reports::due::run(state.clone(), shutdown.clone()));
        }
        let app = api::router(state.clone());
        let server_shutdown = shutdown.clone();
        let stopped = async move { server_shutdown.wait().await };
        match &identity {
            Some(identity) => {
                let listener = TlsListener::new(listener, identity.config.clone())?;
                tasks.spawn(async move {
                    if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<PeerAddress>())
                        .with_graceful_shutdown(stopped)
                        .await
                    {
                        tracing::error!(error = %e, "API server failed.");
                    }
                });
            }
            None => {
                tasks.spawn(async move {
                    if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<PeerAddress>())
                        .with_graceful_shutdown(stopped)
                        .await
                    {
                        tracing::error!(error = %e, "API server failed.");
                    }
                });
            }
        }
        let fingerprint = identity.as_ref().map(|i| i.fingerprint.to_string());
        let transport = if identity.is_some() { "https" } else { "http" };
        tracing::info!(instance = %state.site.instance, role = %state.role(), api = %address, transport,
                       fingerprint = fingerprint.as_deref().unwrap_or("-"),
                       namespace = state.site.topology.namespace(), "Rampart server started.");
        shutdown.wait().await;
        tracing::info!("Shutting down.");
        if tokio::time::timeout(GRACE_PERIOD, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
            tracing::warn!(grace = ?GRACE_PERIOD, "Some work did not finish within the grace period; stopping it.");
            tasks.abort_all();
        }
        publisher.close().await;
        broker.close().await;
        Ok(())
    }
}

/// Records this instance in its database on first start, and refuses a
/// database that belongs to another instance or role.
async fn claim_instance(pool: &deadpool_postgres::Pool, settings: &Settings) -> anyhow::Result<Role> {
    let client = pool.get().await.context("Failed to get a database connection")?;
    let configured = match settings.role {
        ConfiguredRole::Master => Role::Master,
        ConfiguredRole::Standalone => Role::Standalone,
    };
    client
        .execute(
            "INSERT INTO instance (id, name, role) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
            &[&settings.instance.as_str(), &configured.as_str()],
        )
        .await?;
    let row = client.query_one("SELECT name, role FROM instance WHERE id = 1", &[]).await?;
    let (name, stored): (String, String) = (row.get(0), row.get(1));
    if name != settings.instance.as_str() {
        bail!("This database belongs to instance '{name}', not '{}': check <Database><Url>.", settings.instance);
    }
    let stored = Role::parse(&stored).context("Unknown role in the instance table")?;
    match (configured, stored) {
        (Role::Master, Role::Master) => Ok(Role::Master),
        (Role::Standalone, Role::Standalone | Role::Slave) => Ok(stored),
        (c, s) => bail!("server.xml configures this instance as {c} but its database holds a {s}; use a new database to change roles."),
    }
}

async fn install_configured_license(pool: &deadpool_postgres::Pool, key: &str) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let current: Option<String> = client.query_opt("SELECT key FROM license", &[]).await?.map(|r| r.get(0));
    if current.as_deref() == Some(key.trim()) {
        return Ok(());
    }
    licensing::install(&mut client, None, key).await.map_err(|e| anyhow::anyhow!("<Server>/<License>/<Key>: {e}"))?;
    Ok(())
}

async fn declare_topology(broker: &Broker, site: &Site, role: Role, publishes_events: bool) -> anyhow::Result<()> {
    let channel = broker.channel().await?;
    topology::declare_exchanges(&channel, &site.topology).await?;
    let owned = if role.has_fleet() {
        vec![site.inbox_queue()]
    } else if publishes_events {
        vec![
            site.master_status_queue(),
            site.master_replication_queue(),
            site.master_live_replication_queue(),
            site.report_events_queue(),
        ]
    } else {
        vec![site.master_status_queue(), site.master_replication_queue(), site.master_live_replication_queue()]
    };
    for OwnedQueue { name, spec } in owned {
        topology::declare_queue(&channel, &spec.topology, &name, &spec.exchange, &spec.bindings).await?;
    }
    let _ = close_channel(&channel, "declared").await;
    Ok(())
}
