//! PostgreSQL: the connection pool and the migration runner.
//!
//! Each instance owns one database, or one schema of a shared database
//! ([`schema`]). [`ensure_database`] creates it when it is missing (handy for
//! new sites, demos and tests); [`migrate`] applies the service's numbered
//! SQL migrations once each, under an advisory lock, each in its own
//! transaction, recording them in `schema_migrations` (of the instance's
//! schema).
//! [`CachedStatements`] runs the hot paths' statements prepared once per
//! connection; [`idle::close_idle`] gives connections idle past
//! `<Database><IdleTimeout>` back to PostgreSQL.

mod cached;
pub mod idle;
pub mod schema;

use std::time::Duration;

pub use cached::CachedStatements;
pub use schema::SchemaName;

use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("cannot build the database pool: {0}")]
    Pool(String),
    #[error("cannot get a database connection: {0}")]
    Checkout(#[from] deadpool_postgres::PoolError),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration { version: i32, name: &'static str, source: tokio_postgres::Error },
    #[error("cannot use the schema: {0}")]
    Schema(String),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
}

pub type Result<T> = std::result::Result<T, DbError>;

/// One schema change: applied once, in order of `version`.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A pool with bounded waits and connections verified on checkout, so a
/// database restart is survived. The connection returned last is handed out
/// first: its prepared statements ([`CachedStatements`]) and its backend's
/// caches are warm, where handing them out in turn made every command pay
/// for preparing its statements once on each of the pool's connections.
pub fn pool(url: &str, max_size: usize) -> Result<Pool> {
    pool_in(url, max_size, None)
}

/// [`pool`] whose connections work in `schema` (then `public`) when given.
pub fn pool_in(url: &str, max_size: usize, schema: Option<&SchemaName>) -> Result<Pool> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e: tokio_postgres::Error| DbError::Url(e.to_string()))?;
    if let Some(schema) = schema {
        let options = match config.get_options() {
            Some(own) => format!("{own} {}", schema.search_path_option()),
            None => schema.search_path_option(),
        };
        config.options(&options);
    }
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Verified });
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .queue_mode(QueueMode::Lifo)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Pool(e.to_string()))
}

/// The database name a URL points at.
pub fn database_name(url: &str) -> Result<String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| DbError::Url(e.to_string()))?;
    config.get_dbname().map(str::to_owned).ok_or_else(|| DbError::Url("the URL names no database".into()))
}

async fn maintenance_client(url: &str) -> Result<tokio_postgres::Client> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e: tokio_postgres::Error| DbError::Url(e.to_string()))?;
    config.dbname("postgres");
    config.connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the database `url` names if it does not exist yet.
pub async fn ensure_database(url: &str) -> Result<()> {
    let name = database_name(url)?;
    let client = maintenance_client(url).await?;
    let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await?.is_some();
    if !exists {
        match client.batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name))).await {
            Ok(()) => tracing::info!(database = %name, "Created database."),
            // Another process created it at the same moment (instances in
            // schemas of one database start together): PostgreSQL says so
            // with either code, depending on where the two met.
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
                    || e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Drops the database `url` names (test teardown), closing its sessions.
pub async fn drop_database(url: &str) -> Result<()> {
    let name = database_name(url)?;
    let client = maintenance_client(url).await?;
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name))).await?;
    Ok(())
}

/// The database-wide migration lock. Any constant works; it only has to be
/// the same for every process.
const LOCK_KEY: i64 = 0x0052_414d_5041_5254;

/// The migration lock of the connection's schema: [`LOCK_KEY`] in `public`,
/// one of its own in any other schema (instances of other schemas of the
/// same database migrate side by side).
const SCHEMA_LOCK: &str = "$1 # CASE current_schema() WHEN 'public' THEN 0 ELSE hashtext(current_schema())::bigint END";

/// Applies every migration not applied yet. Safe to run from several
/// processes at once and to re-run: applied versions are skipped.
pub async fn migrate(pool: &Pool, migrations: &[Migration]) -> Result<Vec<i32>> {
    let mut client = pool.get().await?;
    client.execute(&format!("SELECT pg_advisory_lock({SCHEMA_LOCK})"), &[&LOCK_KEY]).await?;
    let result = apply_pending(&mut client, migrations).await;
    client.execute(&format!("SELECT pg_advisory_unlock({SCHEMA_LOCK})"), &[&LOCK_KEY]).await?;
    result
}

async fn apply_pending(client: &mut deadpool_postgres::Client, migrations: &[Migration]) -> Result<Vec<i32>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let applied: Vec<i32> =
        client.query("SELECT version FROM schema_migrations", &[]).await?.iter().map(|r| r.get(0)).collect();
    let mut pending: Vec<&Migration> = migrations.iter().filter(|m| !applied.contains(&m.version)).collect();
    pending.sort_by_key(|m| m.version);
    let mut done = Vec::new();
    for m in pending {
        let tx = client.transaction().await?;
        let wrap = |source| DbError::Migration { version: m.version, name: m.name, source };
        tx.batch_execute(m.sql).await.map_err(wrap)?;
        tx.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", &[&m.version, &m.name])
            .await
            .map_err(wrap)?;
        tx.commit().await.map_err(wrap)?;
        tracing::info!(version = m.version, name = m.name, "Applied migration.");
        done.push(m.version);
    }
    Ok(done)
}

/// True for errors that may pass on their own (connection lost, database
/// restarting, serialization conflicts): the caller should retry later
/// rather than refuse the work.
pub fn is_transient(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if error.is_closed() {
        return true;
    }
    match error.code() {
        None => true, // I/O or protocol error: the connection is in trouble.
        Some(code) => {
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || code.code().starts_with("08")
        }
    }
}
