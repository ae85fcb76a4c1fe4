//! A certificate authority made by a test, and a relay certificate it signs
//! for `127.0.0.1` and `localhost`, so that the SMTP sink can speak TLS that
//! the client checks for real. The CA is written to a PEM file for the
//! e-mail settings' `ca_file`.

use std::{net::IpAddr, path::PathBuf, sync::Arc};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use tokio_rustls::{
    rustls::{
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
        ServerConfig,
    },
    TlsAcceptor,
};

/// A fresh CA and the relay certificate it issued.
pub struct TestCa {
    /// The CA certificate in PEM, to trust in the client.
    pub ca_pem: String,
    /// Where [`TestCa::new`] wrote `ca_pem`; removed on drop.
    pub ca_file: PathBuf,
    acceptor: TlsAcceptor,
}

impl TestCa {
    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Rampart test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let relay_key = KeyPair::generate().expect("relay key");
        let mut relay_params = CertificateParams::new(vec!["localhost".to_owned()]).expect("relay parameters");
        relay_params.subject_alt_names.push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
        relay_params.distinguished_name.push(DnType::CommonName, "sink.rampart.test");
        let relay_cert = relay_params.signed_by(&relay_key, &issuer).expect("relay certificate");

        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(relay_key.serialize_der()));
        // The process's provider: `ring`, the only one built into the workspace.
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![relay_cert.der().clone()], key)
            .expect("relay TLS configuration");

        let ca_pem = ca_cert.pem();
        let ca_file = std::env::temp_dir().join(format!("rampart-test-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&ca_file, &ca_pem).expect("CA file written");
        TestCa { ca_pem, ca_file, acceptor: TlsAcceptor::from(Arc::new(config)) }
    }

    /// Accepts TLS connections with the relay certificate.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}
