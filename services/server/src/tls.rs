//! The API's transport: TLS with this server's certificate, or plain HTTP
//! where `server.xml` asks for it.
//!
//! ```xml
//! <Api>
//!   <Tls>
//!     <Certificate>/etc/rampart/api.crt</Certificate><Key>/etc/rampart/api.key</Key>
//!     <Names><Name>hq.example.com</Name></Names>
//!   </Tls>
//!   <!-- or, explicitly: <Plain>true</Plain>, and <PlainRegistration>true</PlainRegistration> -->
//! </Api>
//! ```
//!
//! Without `<Certificate>`/`<Key>` the server makes a self-signed
//! certificate at first start and keeps it in its database (table
//! `api_certificate`): the database is already this instance's identity
//! (its name, role and hierarchy keys live there), it survives a read-only
//! or replaced configuration directory, and a restored backup brings back
//! the same fingerprint that slaves and `rampartctl` have pinned.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use deadpool_postgres::GenericClient;
use rampart_shared::tls::{provider, Fingerprint};
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    ServerConfig,
};

/// How the API on 7073 is served.
#[derive(Clone, Debug)]
pub enum Transport {
    /// TLS; `files` are the configured certificate and key (PEM), or none
    /// for the kept self-signed one, whose names get `names` added.
    Tls { files: Option<CertificateFiles>, names: Vec<String> },
    /// Plain HTTP, asked for with `<Api><Plain>true</Plain>`.
    Plain,
}

/// A configured certificate chain and its private key, both PEM files.
#[derive(Clone, Debug)]
pub struct CertificateFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// `<Api>` transport settings.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub transport: Transport,
    /// `<Api><PlainRegistration>`: this server takes part in a registration
    /// over plain HTTP (a master accepts one, a stand-alone sends one).
    /// Both servers must say so.
    pub plain_registration: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self { transport: Transport::Tls { files: None, names: Vec::new() }, plain_registration: false }
    }
}

/// Why the API's certificate could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{0} holds no PEM certificate")]
    NoCertificate(String),
    #[error("the certificate and key are not usable together: {0}")]
    Unusable(rustls::Error),
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot keep the certificate in the database: {0}")]
    Database(#[from] tokio_postgres::Error),
}

/// What the API serves TLS with.
#[derive(Clone)]
pub struct ServerIdentity {
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the certificate's DER encoding (the first of a chain).
    pub fingerprint: Fingerprint,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

/// The configured certificate, or the kept self-signed one (made now if
/// this is the first start).
pub async fn identity<C: GenericClient>(
    client: &C,
    instance: &str,
    listen: SocketAddr,
    files: Option<&CertificateFiles>,
    names: &[String],
) -> Result<ServerIdentity, CertificateError> {
    let (certificate_pem, key_pem) = match files {
        Some(files) => (read(&files.certificate)?, read(&files.key)?),
        None => kept_or_new(client, instance, listen, names).await?,
    };
    from_pem(&certificate_pem, &key_pem, files.map(|f| f.certificate.display().to_string()))
}

fn read(path: &std::path::Path) -> Result<String, CertificateError> {
    std::fs::read_to_string(path)
        .map_err(|e| CertificateError::Unreadable { path: path.display().to_string(), reason: e.to_string() })
}

fn from_pem(certificate: &str, key: &str, source: Option<String>) -> Result<ServerIdentity, CertificateError> {
    let source = source.unwrap_or_else(|| "the kept certificate".into());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(certificate.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| CertificateError::Unreadable { path: source.clone(), reason: e.to_string() })?;
    let Some(first) = chain.first() else {
        return Err(CertificateError::NoCertificate(source));
    };
    let fingerprint = Fingerprint::of(first);
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| CertificateError::Unreadable { path: "the private key".into(), reason: e.to_string() })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(CertificateError::Unusable)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(CertificateError::Unusable)?;
    Ok(ServerIdentity { config: Arc::new(config), fingerprint })
}

/// The self-signed certificate kept in the database, or a new one kept now.
async fn kept_or_new<C: GenericClient>(
    client: &C,
    instance: &str,
    listen: SocketAddr,
    names: &[String],
) -> Result<(String, String), CertificateError> {
    if let Some(row) = client.query_opt("SELECT certificate, key FROM api_certificate WHERE id = 1", &[]).await? {
        return Ok((row.get(0), row.get(1)));
    }
    let (certificate, key) = self_signed(instance, listen, names)?;
    // Two first starts racing on one database keep the first certificate.
    client
        .execute(
            "INSERT INTO api_certificate (id, certificate, key) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
            &[&certificate, &key],
        )
        .await?;
    let row = client.query_one("SELECT certificate, key FROM api_certificate WHERE id = 1", &[]).await?;
    tracing::info!("Made a self-signed certificate for the API and kept it in the database.");
    Ok((row.get(0), row.get(1)))
}

/// A self-signed certificate (ECDSA P-256) for the instance name,
/// `localhost`, the listen address and `extra` names; PEM certificate and key.
pub fn self_signed(instance: &str, listen: SocketAddr, extra: &[String]) -> Result<(String, String), rcgen::Error> {
    let mut names = vec![instance.to_owned(), "localhost".to_owned()];
    if !listen.ip().is_unspecified() {
        names.push(listen.ip().to_string());
    }
    names.extend(extra.iter().cloned());
    names.dedup();
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("Rampart server {instance}"));
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(4000, 1, 1);
    let key = rcgen::KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_serves_and_names_the_instance() {
        let listen: SocketAddr = "10.1.2.3:7073".parse().unwrap();
        let (certificate, key) = self_signed("paris", listen, &["paris.example".into()]).unwrap();
        let identity = from_pem(&certificate, &key, None).unwrap();
        let der = CertificateDer::pem_slice_iter(certificate.as_bytes()).next().unwrap().unwrap();
        assert_eq!(identity.fingerprint, Fingerprint::of(&der));
        let again = from_pem(&certificate, &key, None).unwrap();
        assert_eq!(again.fingerprint, identity.fingerprint, "the same certificate, the same fingerprint");
        let err = from_pem("", &key, Some("/etc/x.crt".into())).unwrap_err().to_string();
        assert_eq!(err, "/etc/x.crt holds no PEM certificate");
    }
}
