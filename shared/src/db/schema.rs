//! An instance in a schema of a shared database (`<Database><Schema>`):
//! several small sites' databases in one PostgreSQL database.
//!
//! Every pooled connection starts with `search_path` set to the schema and
//! then `public` ([`SchemaName::search_path_option`]): the instance's tables,
//! sequences, views and change-capture functions are made in its schema and
//! found there first; extensions, which PostgreSQL keeps once per database,
//! live in `public` ([`prepare`]) where every schema finds them.

use super::{DbError, Result};

/// A schema name: a plain SQL identifier (lowercase letter or `_`, then
/// lowercase letters, digits and `_`; at most 63 bytes, PostgreSQL's limit),
/// so it needs no quoting anywhere it is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaName(String);

/// Schemas an instance may not be put in: PostgreSQL's own, and `public`
/// (where an instance without `<Schema>` lives, and the extensions).
const RESERVED: [&str; 3] = ["public", "information_schema", "pg_catalog"];

impl SchemaName {
    pub fn parse(value: &str) -> std::result::Result<Self, String> {
        let value = value.trim();
        let mut chars = value.chars();
        let Some(first) = chars.next() else {
            return Err("the schema name is empty".into());
        };
        if !(first.is_ascii_lowercase() || first == '_') {
            return Err(format!("'{value}' must start with a lowercase letter or '_'"));
        }
        if let Some(bad) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')) {
            return Err(format!("'{value}' contains '{bad}': use lowercase letters, digits and '_' only"));
        }
        if value.len() > 63 {
            return Err(format!("'{value}' is longer than 63 characters, PostgreSQL's limit"));
        }
        if RESERVED.contains(&value) || value.starts_with("pg_") {
            return Err(format!("'{value}' is reserved: name a schema of this instance's own"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The connection's startup `options`: this schema, then `public`.
    pub fn search_path_option(&self) -> String {
        format!("-c search_path={},public", self.0)
    }
}

impl std::fmt::Display for SchemaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Creates `schema` and the `extensions` (in `public`) when missing, under
/// the database-wide migration lock, since instances of other schemas may
/// be creating the same extensions at the same moment. Refuses a database
/// whose `public` schema holds an instance's tables: every schema would
/// find them where its own are missing.
pub async fn prepare(pool: &deadpool_postgres::Pool, schema: &SchemaName, extensions: &[&str]) -> Result<()> {
    let client = pool.get().await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&super::LOCK_KEY]).await?;
    let result = create(&client, schema, extensions).await;
    client.execute("SELECT pg_advisory_unlock($1)", &[&super::LOCK_KEY]).await?;
    result
}

async fn create(client: &tokio_postgres::Client, schema: &SchemaName, extensions: &[&str]) -> Result<()> {
    let plain_instance = client
        .query_opt("SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tablename = 'schema_migrations'", &[])
        .await?;
    if plain_instance.is_some() {
        return Err(DbError::Schema(format!(
            "the database's public schema holds an instance's tables (schema_migrations), which schema {schema} would \
             see as its own: use a database without one"
        )));
    }
    for extension in extensions {
        let name = super::quote_ident(extension);
        client.batch_execute(&format!("CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA public")).await?;
    }
    client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await?;
    Ok(())
}

/// Drops `schema` of the database `url` names with everything in it (test
/// and benchmark teardown); the database and its other schemas stay.
pub async fn drop(url: &str, schema: &SchemaName) -> Result<()> {
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e: tokio_postgres::Error| DbError::Url(e.to_string()))?;
    config.connect_timeout(std::time::Duration::from_secs(5));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_are_schema_names() {
        for good in ["site_0042", "_a", "s", "site_x9"] {
            assert_eq!(SchemaName::parse(good).unwrap().as_str(), good);
        }
        assert_eq!(SchemaName::parse(" site_1 ").unwrap().as_str(), "site_1");
        assert_eq!(SchemaName::parse("site_1").unwrap().search_path_option(), "-c search_path=site_1,public");
    }

    #[test]
    fn other_names_are_refused_with_the_reason() {
        assert!(SchemaName::parse("").unwrap_err().contains("empty"));
        assert!(SchemaName::parse("0site").unwrap_err().contains("must start"));
        assert!(SchemaName::parse("Site").unwrap_err().contains("must start"));
        assert!(SchemaName::parse("site-1").unwrap_err().contains("contains '-'"));
        assert!(SchemaName::parse("site\"; DROP").unwrap_err().contains("contains '\"'"));
        assert!(SchemaName::parse("a b").unwrap_err().contains("contains ' '"));
        assert!(SchemaName::parse(&"s".repeat(64)).unwrap_err().contains("63"));
        assert!(SchemaName::parse(&"s".repeat(63)).is_ok());
        for reserved in ["public", "pg_catalog", "pg_temp", "information_schema"] {
            assert!(SchemaName::parse(reserved).unwrap_err().contains("reserved"), "{reserved}");
        }
    }
}
