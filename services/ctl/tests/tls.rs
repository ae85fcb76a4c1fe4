//! `rampartctl` against a TLS server: the certificate pinned at first
//! contact, a changed certificate refused naming both fingerprints, a CA
//! file instead of a pin, and plain `http://` where the server is plain.

use std::process::Output;

use rampart_shared::tls::Fingerprint;
use rampart_tests::{ServerOptions, TestServer, TOKEN};

use crate::common::{stderr, stdout};

/// Runs `rampartctl` against `server` with `config_dir` as its configuration directory.
async fn ctl_in(server: &TestServer, config_dir: &std::path::Path, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rampartctl"));
    command
        .args(args)
        .env("RAMPART_SERVER", &server.base)
        .env("RAMPART_TOKEN", TOKEN)
        .env("RAMPARTCTL_CONFIG_DIR", config_dir)
        .env_remove("RAMPART_CA_FILE");
    tokio::task::spawn_blocking(move || command.output().expect("rampartctl runs")).await.unwrap()
}

fn temp_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rampartctl-{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_certificate_is_pinned_at_first_contact_and_a_changed_one_refused() {
    let server =
        TestServer::spawn(ServerOptions { tls: true, plain_registration: false, ..ServerOptions::standalone() }).await;
    let fingerprint = server.fingerprint().to_string();
    let dir = temp_dir("pins");

    let first = ctl_in(&server, &dir, &["status"]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("Pinned the certificate") && stderr(&first).contains(&fingerprint),
        "{}",
        stderr(&first)
    );
    assert!(stdout(&first).contains(&format!("SHA-256 {fingerprint}")), "{}", stdout(&first));
    let known = std::fs::read_to_string(dir.join("known_servers")).unwrap();
    assert_eq!(known.trim(), format!("{} {fingerprint}", server.address()));

    let again = ctl_in(&server, &dir, &["health"]).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!stderr(&again).contains("Pinned"), "pinned once: {}", stderr(&again));
    assert!(stdout(&again).contains(&fingerprint), "{}", stdout(&again));

    // The server now presents another certificate than the pinned one.
    let pinned = Fingerprint::of(b"the certificate first seen");
    std::fs::write(dir.join("known_servers"), format!("{} {pinned}\n", server.address())).unwrap();
    let refused = ctl_in(&server, &dir, &["status"]).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let message = stderr(&refused);
    assert!(message.contains("certificate of") && message.contains("changed"), "{message}");
    assert!(message.contains(&fingerprint) && message.contains(&pinned.to_string()), "{message}");
    assert!(message.contains("remove the line for") && message.contains("known_servers"), "{message}");
    assert!(stdout(&refused).is_empty());

    // A CA file that does not vouch for the server's certificate is refused too.
    let ca = dir.join("other-ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["ca.example".into()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();
    let with_ca = ctl_in(&server, &dir, &["--ca-file", ca.to_str().unwrap(), "health"]).await;
    assert_eq!(with_ca.status.code(), Some(1), "{}", stdout(&with_ca));
    assert!(stderr(&with_ca).contains("cannot reach"), "{}", stderr(&with_ca));

    server.stop(&[]).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_ca_file_verifies_a_server_with_a_configured_certificate() {
    let dir = temp_dir("ca");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec![]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate =
        rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap().signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("api.crt"), certificate.pem()).unwrap();
    std::fs::write(dir.join("api.key"), key.serialize_pem()).unwrap();

    // The harness's XML has no <Tls>: configure it through the parser the server uses.
    let options = ServerOptions { tls: true, plain_registration: false, ..ServerOptions::standalone() };
    let xml_files = format!(
        "<Tls><Certificate>{}</Certificate><Key>{}</Key></Tls>",
        dir.join("api.crt").display(),
        dir.join("api.key").display()
    );
    let server = TestServer::spawn_with_api_xml(options, &xml_files).await;
    let expected = Fingerprint::of(certificate.der()).to_string();
    assert_eq!(server.fingerprint().to_string(), expected);

    let out = ctl_in(&server, &dir, &["--ca-file", dir.join("ca.pem").to_str().unwrap(), "health"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&expected), "{}", stdout(&out));
    assert!(!dir.join("known_servers").exists(), "a CA file pins nothing");
    server.stop(&[]).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn plain_http_servers_keep_working() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    assert!(server.base.starts_with("http://"));
    let dir = temp_dir("plain");
    let out = ctl_in(&server, &dir, &["health"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("SHA-256"), "{}", stdout(&out));
    assert!(!dir.join("known_servers").exists());
    server.stop(&[]).await;
    let _ = std::fs::remove_dir_all(dir);
}
