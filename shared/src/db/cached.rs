//! Statements prepared once per connection and reused.
//!
//! `client.query("SELECT ..", ..)` with a text statement costs two round
//! trips to PostgreSQL (prepare, then execute), and the server parses it
//! every time. The hot paths (applying master commands, receipts, the
//! outbox, replication) call the `*_cached` methods of [`CachedStatements`]
//! instead: the first call on a connection prepares the statement and keeps
//! it in the pool's per-connection cache, later calls only execute it. A
//! fan-out to 100 slaves runs about a dozen statements on each, so this
//! halves the round trips on its path (`bench/README.md`).
//!
//! Only for fixed statement texts: a text built with values in it would
//! fill the cache.

use std::future::Future;

use deadpool_postgres::GenericClient;
use tokio_postgres::{types::ToSql, Error, Row};

/// The cached twins of [`GenericClient`]'s `query`, `query_one`,
/// `query_opt` and `execute`, for every client and transaction.
pub trait CachedStatements: GenericClient {
    fn query_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;
    fn query_one_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send;
    fn query_opt_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send;
    fn execute_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send;
}

impl<C: GenericClient> CachedStatements for C {
    async fn query_cached(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query(&statement, params).await
    }

    async fn query_one_cached(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_one(&statement, params).await
    }

    async fn query_opt_cached(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.query_opt(&statement, params).await
    }

    async fn execute_cached(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        let statement = self.prepare_cached(sql).await?;
        self.execute(&statement, params).await
    }
}
