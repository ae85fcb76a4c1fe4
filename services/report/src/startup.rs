//! Building and running the report service: database, consumer, API.

use std::{
    net::SocketAddr,
    sync::{atomic::AtomicU64, Arc},
    time::Duration,
};

use anyhow::Context;
use deadpool_postgres::Pool;
use rampart_shared::{
    amqp::{
        close_channel,
        consumer::{self, ConsumerMetrics, ConsumerSettings, QueueSpec},
        Broker,
    },
    db,
    signing::SigningKey,
    topology::{self, Topology},
    Shutdown,
};
use tokio::task::JoinSet;

use crate::{api, config::Settings, events::EventInbox, migrations, operators::OperatorCheck, state::AppState};

pub struct Application {
    state: Arc<AppState>,
    broker: Arc<Broker>,
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    queue: (String, QueueSpec),
}

impl Application {
    /// Does everything that can fail at start: database, migrations, broker, port.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        let url = settings.service.database_url.expose();
        db::ensure_database(url).await.context("Failed to create or reach the database")?;
        let schema = settings.service.database_schema.as_ref();
        let pool = db::pool_in(url, settings.service.database_pool_size, schema)
            .context("Failed to build the database pool")?;
        if let Some(schema) = schema {
            db::schema::prepare(&pool, schema, &[])
                .await
                .with_context(|| format!("Failed to prepare the schema {schema} (<Database>/<Schema>)"))?;
        }
        db::migrate(&pool, migrations::MIGRATIONS).await.context("Failed to migrate the database")?;
        let topology = Topology::new(&settings.service.namespace);
        let broker = Arc::new(
            Broker::connect(settings.service.amqp_url.clone(), "rampart-report")
                .await
                .context("Failed to connect to the broker")?,
        );
        let name = topology.report_events_queue();
        let spec = QueueSpec {
            topology: topology.clone(),
            exchange: topology.events_exchange(),
            bindings: vec![Topology::REPORT_BINDING.to_owned()],
        };
        {
            // The report service's broker user may not declare exchanges:
            // checked (and declared only while the broker lets it).
            topology::ensure_exchanges(&broker, &topology).await.context("Failed to check the exchanges")?;
            let channel = broker.channel().await.context("Failed to open a broker channel")?;
            topology::declare_queue(&channel, &topology, &name, &spec.exchange, &spec.bindings)
                .await
                .context("Failed to declare the events queue")?;
            let _ = close_channel(&channel, "declared").await;
        }
        let listener = tokio::net::TcpListener::bind(settings.service.api_listen)
            .await
            .with_context(|| format!("Failed to bind the API to {}", settings.service.api_listen))?;
        let address = listener.local_addr()?;
        let operators = settings
            .master
            .as_ref()
            .map(OperatorCheck::new)
            .transpose()
            .context("Failed to build the HTTP client that checks operators' tokens")?;
        let state = Arc::new(AppState {
            pool,
            operators,
            source: format!("rampart-report ({})", settings.service.namespace),
            settings,
            metrics: Arc::new(ConsumerMetrics::default()),
            reports_served: AtomicU64::new(0),
        });
        Ok(Self { state, broker, listener, address, queue: (name, spec) })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn pool(&self) -> Pool {
        self.state.pool.clone()
    }

    /// Serves until `shutdown`, then drains.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let Self { state, broker, listener, address, queue: (queue, spec) } = self;
        let mut tasks = JoinSet::new();
        let settings = ConsumerSettings {
            queue: queue.clone(),
            dead_letter_exchange: spec.topology.dead_letter_exchange(),
            prefetch: state.settings.service.prefetch,
            batch_max: 200,
            linger: Duration::from_millis(20),
            concurrency: 1,
            declare: Some(spec),
        };
        let inbox =
            EventInbox { pool: state.pool.clone(), key: SigningKey::from_secret(state.settings.event_key.expose()) };
        tasks.spawn(consumer::run(broker.clone(), settings, Arc::new(inbox), state.metrics.clone(), shutdown.clone()));
        tasks.spawn(db::idle::close_idle(
            state.pool.weak(),
            state.settings.service.database_idle_timeout,
            shutdown.clone(),
        ));
        let app = api::router(state.clone());
        let stop = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { stop.wait().await }).await {
                tracing::error!(error = %e, "API server failed.");
            }
        });
        tracing::info!(api = %address, queue = %queue, "Rampart report service started.");
        shutdown.wait().await;
        if tokio::time::timeout(Duration::from_secs(10), async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tasks.abort_all();
        }
        broker.close().await;
        Ok(())
    }
}
