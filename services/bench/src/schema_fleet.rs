//! Simulated slaves many to a database: each a real server
//! (`rampart_tests::TestServer`, the same path as [`crate::fleet`]) in a
//! schema of its own (`<Database><Schema>`) of a few shared databases, for
//! fleets too large for a database each.
//!
//! A database each costs PostgreSQL a catalog and a directory per slave (at
//! 1,000 slaves, 1,000 catalogs of the server's ~60 tables, and a
//! `CREATE DATABASE` each, copying the template); one database for all
//! would make one catalog of 1,000 x 60 tables and serialise every
//! schema's first migration step on its lock. The fleet is cut into
//! databases of at most [`SCHEMAS_PER_DATABASE`] schemas, and at least two
//! databases, so that even a small fleet has slaves in several databases
//! and in several schemas of one.

use std::time::Duration;

use futures_util::{stream, StreamExt};
use rampart_tests::{ServerOptions, TestServer, PG_BASE};
use serde::Serialize;
use tokio::time::Instant;

use crate::broker_fanout::CommitTarget;

/// Schemas (slaves) in one shared database at most.
pub const SCHEMAS_PER_DATABASE: usize = 100;
/// The least pool a server accepts (`<Database><PoolSize>`, 2 to 200): an
/// idle slave holds at most this many PostgreSQL connections.
pub const POOL_SIZE: usize = 2;
/// `ReplicationInterval` of every slave, seconds: a day, so no periodic
/// pass runs during the measurement (the server sets no upper bound; the
/// first snapshot after registration and the fan-out do not wait for it).
pub const REPLICATION_INTERVAL: u64 = 86_400;
/// `<Database><IdleTimeout>` of every slave, seconds: short, so that once
/// started and synchronised the fleet holds the one connection each slave's
/// periodic looks keep in use (its outbox relay's and its reporter's, every
/// 10 s), not its whole pool: PostgreSQL's backends, several MB each, were
/// most of what 1,000 slaves cost the machine's memory. Longer than those
/// looks' spacing, so the connection is not opened again for each (about
/// 200 connections a second from 1,000 slaves). The fan-out's applies run
/// on that connection, or open one (a slave whose look holds it at that
/// moment), and that is measured.
pub const IDLE_TIMEOUT: u64 = 30;
/// Slaves started at once: each start is mostly its migrations in
/// PostgreSQL, so a few overlap the waits on two cores.
const PARALLEL: usize = 8;

/// How the slaves are laid out.
#[derive(Clone, Debug, Serialize)]
pub struct Layout {
    pub slaves: usize,
    pub databases: usize,
    /// Schemas of the fullest database.
    pub schemas_per_database: usize,
    /// Slave processes: every slave runs in the benchmark's own.
    pub processes: usize,
    pub pool_size: usize,
    /// `<Database><IdleTimeout>` of every slave.
    pub idle_timeout_s: u64,
    pub replication_interval_s: u64,
}

impl Layout {
    pub fn of(slaves: usize) -> Self {
        let databases = slaves.div_ceil(SCHEMAS_PER_DATABASE).max(2).min(slaves.max(1));
        Self {
            slaves,
            databases,
            schemas_per_database: slaves.div_ceil(databases),
            processes: 1,
            pool_size: POOL_SIZE,
            idle_timeout_s: IDLE_TIMEOUT,
            replication_interval_s: REPLICATION_INTERVAL,
        }
    }

    /// `10 databases x 100 schemas, 1 process, pool 2 closing idle connections after 5 s`.
    pub fn describe(&self) -> String {
        format!(
            "{} databases x {} schemas, {} process, pool {} closing idle connections after {} s",
            self.databases, self.schemas_per_database, self.processes, self.pool_size, self.idle_timeout_s
        )
    }

    /// `10 databases x 100 schemas`: where the slaves' tables are.
    pub fn placement(&self) -> String {
        format!("{} databases x {} schemas", self.databases, self.schemas_per_database)
    }

    /// The database of slave `i` (slaves fill the databases in turn).
    pub fn database(&self, namespace: &str, i: usize) -> String {
        format!("{namespace}_f{:02}", i % self.databases)
    }

    pub fn database_urls(&self, namespace: &str) -> Vec<String> {
        (0..self.databases).map(|d| format!("{PG_BASE}/{}", self.database(namespace, d))).collect()
    }

    /// Where the floor's consumer standing for slave `i` commits.
    pub fn commit_target(&self, namespace: &str, i: usize) -> anyhow::Result<CommitTarget> {
        Ok(CommitTarget {
            database_url: format!("{PG_BASE}/{}", self.database(namespace, i)),
            schema: Some(rampart_shared::db::SchemaName::parse(&schema_name(i)).map_err(anyhow::Error::msg)?),
        })
    }
}

/// Instance name of slave `i`: `f0000`, `f0001`...
pub fn slave_name(i: usize) -> String {
    format!("f{i:04}")
}

/// Schema of slave `i`: `s0000`, `s0001`...
pub fn schema_name(i: usize) -> String {
    format!("s{i:04}")
}

/// Creates the shared databases and each slave's schema (the floor commits
/// there before the slaves start).
pub async fn create(layout: &Layout, namespace: &str) -> anyhow::Result<()> {
    for url in layout.database_urls(namespace) {
        rampart_shared::db::ensure_database(&url).await?;
    }
    for d in 0..layout.databases {
        let url = format!("{PG_BASE}/{}", layout.database(namespace, d));
        let client = crate::stats::connect(&url, "a shared slaves' database").await?;
        let sql: String = (d..layout.slaves)
            .step_by(layout.databases)
            .map(|i| format!("CREATE SCHEMA IF NOT EXISTS {};", schema_name(i)))
            .collect();
        client.batch_execute(&sql).await?;
    }
    Ok(())
}

/// Starts the slaves, [`PARALLEL`] at a time, logging the progress.
pub async fn start(layout: &Layout, namespace: &str) -> Vec<TestServer> {
    let started = Instant::now();
    let mut slaves = Vec::with_capacity(layout.slaves);
    let mut starting = stream::iter(0..layout.slaves)
        .map(|i| {
            let mut options = ServerOptions::site(&slave_name(i), namespace);
            options.database = layout.database(namespace, i);
            options.schema = Some(schema_name(i));
            options.pool_size = layout.pool_size;
            options.idle_timeout_s = Some(layout.idle_timeout_s);
            options.extra_xml = format!("<ReplicationInterval>{}</ReplicationInterval>", layout.replication_interval_s);
            TestServer::spawn(options)
        })
        .buffered(PARALLEL);
    let mut logged = Instant::now();
    while let Some(slave) = starting.next().await {
        slaves.push(slave);
        if logged.elapsed() >= Duration::from_secs(15) {
            logged = Instant::now();
            tracing::info!(
                started = slaves.len(),
                of = layout.slaves,
                seconds = started.elapsed().as_secs(),
                "Starting slaves."
            );
        }
    }
    slaves
}

/// Drops the shared databases (with whatever schemas are left in them).
pub async fn drop_databases(layout: &Layout, namespace: &str) {
    for url in layout.database_urls(namespace) {
        if let Err(e) = rampart_shared::db::drop_database(&url).await {
            tracing::warn!(error = %e, url, "Could not drop a shared slaves' database.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaves_fill_databases_of_at_most_a_hundred_schemas() {
        let full = Layout::of(1000);
        assert_eq!((full.databases, full.schemas_per_database), (10, 100));
        assert_eq!(
            full.describe(),
            "10 databases x 100 schemas, 1 process, pool 2 closing idle connections after 30 s"
        );
        let quick = Layout::of(20);
        assert_eq!((quick.databases, quick.schemas_per_database), (2, 10));
        assert_eq!(Layout::of(1).databases, 1);
        assert_eq!(Layout::of(201).databases, 3);
        assert_eq!(quick.database("rb_x", 3), "rb_x_f01");
        assert_eq!(quick.database("rb_x", 4), "rb_x_f00");
        assert_eq!((slave_name(7), schema_name(999)), ("f0007".to_owned(), "s0999".to_owned()));
    }
}
