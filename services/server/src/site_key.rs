//! The site's command key: made at first start, kept in the `site_key`
//! table, loaded at every start. It seals every endpoint command the outbox
//! publishes (see `rampart_shared::site_key`); its public half is served at
//! `GET /api/site-key` for agents to verify with.

use deadpool_postgres::GenericClient;
use rampart_shared::site_key::SiteKey;

/// Why the key cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SiteKeyError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("the site_key table holds a key of the wrong length")]
    Corrupt,
}

/// The site's key, made and stored now if this is the first start.
pub async fn ensure<C: GenericClient>(client: &C) -> Result<SiteKey, SiteKeyError> {
    let fresh = SiteKey::generate();
    client
        .execute(
            "INSERT INTO site_key (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            &[&&fresh.to_bytes()[..]],
        )
        .await?;
    let row = client.query_one("SELECT secret FROM site_key WHERE id = 1", &[]).await?;
    SiteKey::from_bytes(row.get::<_, &[u8]>(0)).ok_or(SiteKeyError::Corrupt)
}

/// The public half of the site's command key, as the API serves it.
#[derive(Debug, serde::Serialize)]
pub struct SiteKeyView {
    /// Always `ed25519`.
    pub algorithm: &'static str,
    /// 64 hex digits: what an agent's `--site-key` takes.
    pub public_key: String,
    /// SHA-256 of the key, first 16 bytes, for comparing by eye.
    pub fingerprint: String,
}

impl SiteKeyView {
    pub fn of(key: &SiteKey) -> Self {
        let public = key.public();
        Self {
            algorithm: rampart_shared::site_key::SCHEME,
            public_key: public.to_hex(),
            fingerprint: public.fingerprint(),
        }
    }
}
