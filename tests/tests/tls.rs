//! TLS on the API: a kept certificate, registration pinned to the master's
//! certificate, a man in the middle that gets nothing, and plain HTTP only
//! where both servers ask for it.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use rampart_shared::tls::{Fingerprint, PinnedVerifier};
use rampart_tests::{
    hierarchy::{self, wait_for_receipts},
    ServerOptions, TestServer,
};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

fn tls(options: ServerOptions) -> ServerOptions {
    ServerOptions { tls: true, plain_registration: false, ..options }
}

async fn try_register(slave: &TestServer, master: &str, token: &str) -> (u16, String) {
    let (status, body) = slave.post("/api/hierarchy/register", json!({"master": master, "token": token})).await;
    (status.as_u16(), body["error"]["message"].as_str().unwrap_or_default().to_owned())
}

async fn token_state(master: &TestServer) -> Value {
    master.get_ok("/api/registration-tokens").await[0]["state"].clone()
}

#[tokio::test]
async fn the_certificate_is_kept_across_restarts_and_shown_by_health() {
    let server = TestServer::spawn(tls(ServerOptions::standalone())).await;
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let fingerprint = server.fingerprint();
    let health = server.get_ok("/health").await;
    assert_eq!(health["tls_fingerprint"], fingerprint.to_string(), "{health}");

    // A client pinned to another certificate does not get through.
    let verifier = PinnedVerifier::pinned(Fingerprint::of(b"another certificate"));
    let other = reqwest::Client::builder().use_preconfigured_tls(verifier.client_config()).build().unwrap();
    assert!(other.get(format!("{}/health", server.base)).send().await.is_err());
    assert_eq!(verifier.mismatch().expect("a fingerprint mismatch").presented, fingerprint);
    // Nor does plain HTTP.
    let plain = reqwest::Client::new().get(format!("http://{}/health", server.address())).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    let options = server.halt().await;
    let again = TestServer::spawn(options).await;
    assert_eq!(again.fingerprint(), fingerprint, "the same certificate after a restart");
    assert_eq!(again.get_ok("/health").await["tls_fingerprint"], fingerprint.to_string());
    again.stop(&[]).await;

    // A plain server says nothing of a certificate.
    let plain = TestServer::spawn(ServerOptions::standalone()).await;
    let health = plain.get_ok("/health").await;
    assert!(health.get("tls_fingerprint").is_none(), "{health}");
    plain.stop(&[]).await;
}

#[tokio::test]
async fn a_slave_registers_over_tls_to_the_certificate_its_token_names() {
    let master = TestServer::spawn(tls(ServerOptions::master())).await;
    let slave = TestServer::spawn(tls(ServerOptions::site("paris", &master.options.namespace))).await;
    let token = hierarchy::token(&master).await;
    let (secret, fingerprint) = token.split_once('.').expect("the token carries a fingerprint");
    assert!(secret.starts_with("rrt_"), "{token}");
    assert_eq!(fingerprint, master.fingerprint().to_string());

    // The token without its fingerprint is refused by the slave, unused.
    let (status, message) = try_register(&slave, &master.address(), secret).await;
    assert_eq!(status, 422, "{message}");
    assert!(message.contains("no fingerprint") && message.contains("make a new token"), "{message}");
    assert_eq!(token_state(&master).await, "unused");

    let (status, body) =
        slave.post("/api/hierarchy/register", json!({"master": master.address(), "token": token})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "slave");

    let (status, policy) = master.post("/api/policies", json!({"name": "HQ", "target": {"slaves": "all"}})).await;
    assert_eq!(status, 201, "{policy}");
    let path = format!("/api/policies/{}", policy["id"].as_str().unwrap());
    wait_for_receipts(&master, &path, &["paris"], "the policy received by paris", |r| r["state"] == "applied").await;
    assert_eq!(slave.get_ok(&path).await["owner"], "master");

    slave.stop(&[]).await;
    master.stop(&[]).await;
}

/// A TLS server with a certificate of its own at some address: counts the
/// bytes any client manages to send it after a handshake.
async fn impostor() -> (String, Arc<AtomicUsize>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate =
        rcgen::CertificateParams::new(vec!["hq".into(), "localhost".into()]).unwrap().self_signed(&key).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(rampart_shared::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received = Arc::new(AtomicUsize::new(0));
    let counted = received.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                if let Ok(mut stream) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        counted.fetch_add(n, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    (address, received)
}

#[tokio::test]
async fn a_man_in_the_middle_gets_neither_token_nor_keys() {
    let master = TestServer::spawn(tls(ServerOptions::master())).await;
    let slave = TestServer::spawn(tls(ServerOptions::site("paris", &master.options.namespace))).await;
    let token = hierarchy::token(&master).await;
    let (address, received) = impostor().await;

    let (status, message) = try_register(&slave, &address, &token).await;
    assert_eq!(status, 502, "{message}");
    assert!(message.contains("presented a certificate with fingerprint"), "{message}");
    assert!(message.contains(&master.fingerprint().to_string()) && message.contains("nothing was sent"), "{message}");
    assert_eq!(received.load(Ordering::SeqCst), 0, "the impostor read nothing");
    assert_eq!(slave.get_ok("/api/hierarchy").await["role"], "standalone");
    assert_eq!(token_state(&master).await, "unused");
    assert_eq!(master.get_ok("/api/slaves").await, json!([]));

    // The token still works with the real master.
    let (status, message) = try_register(&slave, &master.address(), &token).await;
    assert_eq!(status, 200, "{message}");
    slave.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test]
async fn plain_registration_needs_both_servers_to_allow_it() {
    // A plain master that does not allow it.
    let master = TestServer::spawn(ServerOptions { plain_registration: false, ..ServerOptions::master() }).await;
    let slave = TestServer::spawn(ServerOptions::site("paris", &master.options.namespace)).await;
    let token = hierarchy::token(&master).await;
    assert!(!token.contains('.'), "a plain master has no certificate to name: {token}");
    let (status, message) = try_register(&slave, &master.address(), &token).await;
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("serves plain HTTP") && message.contains("PlainRegistration"), "{message}");
    assert_eq!(token_state(&master).await, "unused");
    slave.stop(&[]).await;
    master.stop(&[]).await;

    // A plain master that allows it, a registering server that does not.
    let master = TestServer::spawn(ServerOptions::master()).await;
    let slave = TestServer::spawn(ServerOptions {
        plain_registration: false,
        ..ServerOptions::site("paris", &master.options.namespace)
    })
    .await;
    let token = hierarchy::token(&master).await;
    let (status, message) = try_register(&slave, &master.address(), &token).await;
    assert_eq!(status, 422, "{message}");
    assert!(message.contains("no fingerprint") && message.contains("PlainRegistration"), "{message}");
    assert_eq!(token_state(&master).await, "unused");

    // Both allow it: registered.
    let other = TestServer::spawn(ServerOptions::site("lyon", &master.options.namespace)).await;
    let (status, message) = try_register(&other, &master.address(), &token).await;
    assert_eq!(status, 200, "{message}");
    other.stop(&[]).await;
    slave.stop(&[]).await;
    master.stop(&[]).await;
}
