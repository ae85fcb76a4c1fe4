//! Operators for tests: made by the bootstrap administrator, signed in with
//! their own password, and calls made with their own token.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::TestServer;

/// Calls `path` with `token` (or none); status and JSON body.
pub async fn call(
    server: &TestServer,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = server.http.request(method, format!("{}{path}", server.base)).timeout(Duration::from_secs(30));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("API reachable");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Creates operator `name` with `role` (as the bootstrap administrator).
pub async fn create(server: &TestServer, name: &str, role: &str) {
    let (status, body) =
        server.post("/api/operators", json!({"name": name, "role": role, "password": password(name)})).await;
    assert_eq!(status, 201, "{body}");
}

/// The password [`create`] gives `name`.
pub fn password(name: &str) -> String {
    format!("{name}-secret-password")
}

/// Signs `name` in; the whole answer (token, id, expires_at).
pub async fn login(server: &TestServer, name: &str, ttl_hours: Option<i64>) -> Value {
    let mut body = json!({"operator": name, "password": password(name)});
    if let Some(ttl) = ttl_hours {
        body["ttl_hours"] = json!(ttl);
    }
    let (status, body) = call(server, None, Method::POST, "/api/login", Some(body)).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Creates `name` with `role` and signs it in: its token.
pub async fn signed_in(server: &TestServer, name: &str, role: &str) -> String {
    create(server, name, role).await;
    login(server, name, None).await["token"].as_str().expect("a token").to_owned()
}
