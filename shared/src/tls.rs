//! TLS trust by pinned certificate: the SHA-256 fingerprint of a server's
//! certificate, and a client configuration that accepts exactly that
//! certificate.
//!
//! A registering slave pins its master's certificate from the registration
//! token; `rampartctl` pins a server at first contact. The pinned check
//! replaces the CA chain and the host name (self-signed certificates have
//! neither worth checking), but the handshake signature is still verified,
//! so only the holder of the certificate's private key gets through. Every
//! configuration here uses the `ring` provider.

use std::{
    fmt,
    sync::{Arc, Mutex},
};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{ring, CryptoProvider},
    pki_types::{CertificateDer, ServerName, UnixTime},
    CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme,
};
use sha2::{Digest, Sha256};

/// SHA-256 of a certificate's DER encoding, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`, a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Reads 64 hex digits; colons and case are ignored (`AB:CD:...` as
    /// browsers show it reads too).
    pub fn parse(text: &str) -> Option<Self> {
        let hex: String = text.trim().chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::signing::encode_hex(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The server presented another certificate than the pinned one.
#[derive(Debug, thiserror::Error)]
#[error("the server presented a certificate with SHA-256 fingerprint {presented}, not the expected {expected}")]
pub struct FingerprintMismatch {
    pub expected: Fingerprint,
    pub presented: Fingerprint,
}

/// The `ring` provider every Rampart TLS configuration uses (the project
/// builds without aws-lc-rs; ring has no post-quantum key exchange, hence
/// rustls' deprecation note).
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Accepts the one certificate whose fingerprint is pinned; with no pin,
/// accepts any and records it (first contact: the caller pins what it saw).
#[derive(Debug)]
pub struct PinnedVerifier {
    expected: Option<Fingerprint>,
    seen: Mutex<Option<Fingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    /// Accepts only the certificate with fingerprint `expected`.
    pub fn pinned(expected: Fingerprint) -> Arc<Self> {
        Arc::new(Self { expected: Some(expected), seen: Mutex::new(None), provider: provider() })
    }

    /// Accepts any certificate and remembers the last one presented.
    pub fn first_contact() -> Arc<Self> {
        Arc::new(Self { expected: None, seen: Mutex::new(None), provider: provider() })
    }

    /// The fingerprint of the last certificate presented, if any.
    pub fn seen(&self) -> Option<Fingerprint> {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pinned certificate was not the one presented (the failed call's
    /// own error only says the certificate was invalid).
    pub fn mismatch(&self) -> Option<FingerprintMismatch> {
        match (self.expected, self.seen()) {
            (Some(expected), Some(presented)) if expected != presented => {
                Some(FingerprintMismatch { expected, presented })
            }
            _ => None,
        }
    }

    /// A client configuration that trusts through this verifier only.
    pub fn client_config(self: &Arc<Self>) -> ClientConfig {
        ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth()
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of(end_entity);
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(presented);
        match self.expected {
            Some(expected) if expected != presented => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(FingerprintMismatch { expected, presented })),
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_back_in_any_common_spelling() {
        let fp = Fingerprint::of(b"certificate");
        let text = fp.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(Fingerprint::parse(&text), Some(fp));
        let colons: Vec<String> =
            text.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).to_uppercase()).collect();
        assert_eq!(Fingerprint::parse(&colons.join(":")), Some(fp));
        for bad in ["", "abc", &text[1..], &format!("{}zz", &text[2..])] {
            assert_eq!(Fingerprint::parse(bad), None, "{bad}");
        }
    }
}
