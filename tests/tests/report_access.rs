//! Who may read the report service (issue 20, item 5): the master's
//! operators with their own tokens, on the report service's own port (the
//! token checked with the master over pinned TLS) and through the master's
//! forwarding; a forged token refused in the master's words; a report
//! service pinned to another certificate checks nothing.

use std::time::Duration;

use rampart_tests::{operators::signed_in, report::TestReport, ServerOptions, TestServer};
use reqwest::StatusCode;
use serde_json::Value;

/// `GET {base}{path}` with `token` (or none): status and JSON body.
async fn read(http: &reqwest::Client, base: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = http.get(format!("{base}{path}")).timeout(Duration::from_secs(30));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("reachable");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn the_masters_operators_read_reports_with_their_own_tokens() {
    let forwarded_to = TestReport::spawn(&rampart_tests::namespace()).await;
    let master = TestServer::spawn(ServerOptions { tls: true, ..forwarded_to.master_options() }).await;
    let auditor = signed_in(&master, "audrey", "auditor").await;

    // Through the master's forwarding, as any operator.
    let (status, body) = read(&master.http, &master.base, "/api/reports/security-status", Some(&auditor)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["sites"].is_array(), "a consolidated report: {body}");

    // On the report service's own port, checked with the master.
    let pinned =
        format!("<Master><Url>{}</Url><Fingerprint>{}</Fingerprint></Master>", master.base, master.fingerprint());
    let report = TestReport::spawn_for_master(&master.options.namespace, &pinned).await;
    let (status, body) = read(&report.http, &report.base, "/api/reports/security-status", Some(&auditor)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["sites"].is_array(), "a consolidated report: {body}");
    let (status, body) = read(&report.http, &report.base, "/api/status", Some(&auditor)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A token the master never issued: refused in the master's words.
    let (status, body) = read(&report.http, &report.base, "/api/status", Some("rpt_forged.token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(message(&body).contains("not valid for this server"), "{body}");
    // No token: told which tokens it takes.
    let (status, body) = read(&report.http, &report.base, "/api/status", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(message(&body).contains("operator's token of the master"), "{body}");

    // Pinned to another certificate: no token is shown to whoever answers.
    let wrong = format!("<Master><Url>{}</Url><Fingerprint>{}</Fingerprint></Master>", master.base, "ab".repeat(32));
    let misled = TestReport::spawn_for_master(&master.options.namespace, &wrong).await;
    let (status, body) = read(&misled.http, &misled.base, "/api/status", Some(&auditor)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(message(&body).contains("could not be checked with the master"), "{body}");

    // Without <Master>, only the service token opens it.
    let (status, body) = read(&forwarded_to.http, &forwarded_to.base, "/api/status", Some(&auditor)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(message(&body).contains("<Master>"), "{body}");

    misled.stop().await;
    report.stop().await;
    master.stop(&[]).await;
    forwarded_to.stop().await;
}
