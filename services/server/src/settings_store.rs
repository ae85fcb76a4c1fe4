//! Operator settings kept in the `settings` table, one JSON value per key.

use deadpool_postgres::GenericClient;
use serde_json::Value;

/// Key of the automatic deployment switch: `{"enabled": bool}`.
pub const AUTO_DEPLOY: &str = "auto_deploy";
/// Key of the SMTP settings.
pub const EMAIL: &str = "email";

pub async fn get<C: GenericClient>(client: &C, key: &str) -> Result<Option<Value>, tokio_postgres::Error> {
    Ok(client.query_opt("SELECT value FROM settings WHERE key = $1", &[&key]).await?.map(|r| r.get(0)))
}

pub async fn put<C: GenericClient>(client: &C, key: &str, value: &Value) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, value],
        )
        .await?;
    Ok(())
}
