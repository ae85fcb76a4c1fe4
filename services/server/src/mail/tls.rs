//! Which certificates the relay's is checked against: the system's roots
//! plus the CA file of the e-mail settings, if any. The check is never
//! skipped; the crypto provider is rustls's `ring`.

use std::path::Path;

use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
use rustls::pki_types::{pem::PemObject, CertificateDer};

use super::{MailError, SmtpSettings, TlsMode};

/// The TLS parameters for the relay in `settings`; `None` for plain SMTP.
pub(super) fn parameters(settings: &SmtpSettings) -> Result<Option<TlsParameters>, MailError> {
    if settings.tls == TlsMode::None {
        return Ok(None);
    }
    let mut builder = TlsParameters::builder(settings.host.clone()).certificate_store(CertificateStore::Default);
    if let Some(path) = &settings.ca_file {
        for certificate in read_ca_file(path)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let parameters = builder.build_rustls().map_err(|e| match &settings.ca_file {
        Some(path) => ca_error(path, format!("not a usable CA certificate: {}", super::error::reason(&e))),
        None => {
            MailError::Tls { address: format!("{}:{}", settings.host, settings.port), reason: super::error::reason(&e) }
        }
    })?;
    Ok(Some(parameters))
}

/// Checks that `path` holds at least one PEM CA certificate usable as a
/// root, as the e-mail settings are saved.
pub fn check_ca_file(path: &Path) -> Result<(), MailError> {
    let mut builder = TlsParameters::builder("localhost".into()).certificate_store(CertificateStore::None);
    for certificate in read_ca_file(path)? {
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map(drop)
        .map_err(|e| ca_error(path, format!("not a usable CA certificate: {}", super::error::reason(&e))))
}

/// The certificates of a PEM file (other PEM sections, such as keys, are
/// skipped).
fn read_ca_file(path: &Path) -> Result<Vec<Certificate>, MailError> {
    let pem = std::fs::read(path).map_err(|e| ca_error(path, e.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(path, format!("not a PEM file ({e})")))?;
    if certificates.is_empty() {
        return Err(ca_error(path, "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into()));
    }
    certificates
        .into_iter()
        .map(|der| Certificate::from_der(der.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| ca_error(path, super::error::reason(&e)))
}

fn ca_error(path: &Path, reason: String) -> MailError {
    MailError::CaFile { path: path.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("rampart-mail-{}-{name}", uuid::Uuid::new_v4()));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn refuses_missing_empty_and_broken_ca_files() {
        let missing = std::env::temp_dir().join("rampart-no-such-ca.pem");
        assert!(matches!(check_ca_file(&missing), Err(MailError::CaFile { .. })));

        let text = file("text", "not a certificate\n");
        let error = check_ca_file(&text).unwrap_err().to_string();
        assert!(error.contains("no PEM certificate") && error.contains(&*text.to_string_lossy()), "{error}");

        let garbage = file("garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(matches!(check_ca_file(&garbage), Err(MailError::CaFile { .. })));
        for path in [text, garbage] {
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn plain_smtp_needs_no_tls_parameters() {
        let settings = SmtpSettings {
            host: "relay".into(),
            port: 25,
            username: None,
            password: None,
            tls: TlsMode::None,
            ca_file: Some("/nonexistent".into()),
        };
        assert!(parameters(&settings).unwrap().is_none());
    }
}
