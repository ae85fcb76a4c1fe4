//! The HTTP API of a stand-alone server: auth, errors, roles, migrations.

use rampart_tests::{ServerOptions, TestServer, TOKEN};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn health_is_open_but_everything_else_needs_the_token() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let health = server.http.get(format!("{}/health", server.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["role"], "standalone");

    let none = server.http.get(format!("{}/api/status", server.base)).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = none.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert!(body["error"]["message"].as_str().unwrap().contains("Bearer"));

    let wrong =
        server.http.get(format!("{}/api/endpoints", server.base)).bearer_auth("not-the-token").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let right = server.http.get(format!("{}/api/status", server.base)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    server.stop(&[]).await;
}

#[tokio::test]
async fn bad_requests_get_json_errors_that_say_what_is_wrong() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    // Malformed JSON.
    let response = server
        .http
        .post(format!("{}/api/policies", server.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A field of the wrong type is named.
    let (status, body) =
        server.post("/api/policies", json!({"name": "x", "settings": {"realtime_protection": "yes"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("realtime_protection"), "{body}");
    // A bad value is explained.
    let (status, body) =
        server.post("/api/policies", json!({"name": "x", "settings": {"scan_schedule": "sometimes"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"].as_str().unwrap().contains("scan_schedule"), "{body}");
    // Unknown ids are 404.
    let (status, body) = server.get("/api/policies/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = server.get("/api/endpoints/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A task that targets nothing is refused.
    let (status, body) = server.post("/api/tasks", json!({"kind": "quick_scan", "target": {"all": true}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"].as_str().unwrap().contains("matches no endpoint"), "{body}");
    let (status, _) = server.post("/api/tasks", json!({"kind": "defrag", "target": {"all": true}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The Default group cannot be deleted.
    let (status, _) = server.call(reqwest::Method::DELETE, "/api/groups/1", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    server.stop(&[]).await;
}

#[tokio::test]
async fn a_master_refuses_fleet_features_by_name() {
    let server = TestServer::spawn(ServerOptions::master()).await;
    let refused = [
        ("GET", "/api/dashboard", "management dashboard"),
        ("GET", "/api/audit", "Network audit"),
        ("GET", "/api/license", "Registration"),
        ("POST", "/api/groups", "network builder"),
        ("GET", "/api/settings/auto-deploy", "Automatic deployment"),
        ("POST", "/api/deployments", "deployment tool"),
        ("GET", "/api/deployments", "Deployment status"),
        ("GET", "/api/settings/email", "E-mail settings"),
    ];
    for (method, path, feature) in refused {
        let body = (method == "POST").then(|| json!({"name": "x", "computers": ["a"]}));
        let (status, body) = server.call(method.parse().unwrap(), path, body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "feature_unavailable");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(feature) && message.contains("master"), "{path}: {message}");
    }
    // What a master does have still works.
    let status = server.get_ok("/api/status").await;
    assert_eq!(status["role"], "master");
    server.stop(&[]).await;
}

#[tokio::test]
async fn migrations_rerun_as_a_no_op_and_a_database_keeps_its_owner() {
    let options = ServerOptions::standalone();
    let settings = options.settings();
    let first = TestServer::spawn(options).await;
    let state = first.state.clone();
    let again = rampart_shared::db::migrate(&state.pool, rampart_server::migrations::MIGRATIONS).await.unwrap();
    assert!(again.is_empty(), "re-running migrations applied {again:?}");
    let client = state.pool.get().await.unwrap();
    let applied: i64 = client.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(applied as usize, rampart_server::migrations::MIGRATIONS.len());
    drop(client);

    // Another instance name pointed at this database is refused.
    let mut other = settings.clone();
    other.instance = rampart_shared::topology::NameSegment::parse("site-b").unwrap();
    let err = rampart_server::startup::Application::build(other).await.err().expect("refused");
    assert!(format!("{err:#}").contains("belongs to instance 'site-a'"), "{err:#}");
    first.stop(&[]).await;
}
