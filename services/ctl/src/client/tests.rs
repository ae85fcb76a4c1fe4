//! Errors carry the server's message or name the status; paths are appended and encoded.

use super::*;

fn client(base: &str) -> ApiClient {
    ApiClient::new(base.parse().unwrap(), None).unwrap()
}

#[test]
fn the_server_message_is_the_error() {
    let body = br#"{ "error": { "code": "feature_unavailable", "message": "The management dashboard is not available on a master server." } }"#;
    let error = ApiError::from_answer(StatusCode::CONFLICT, body);
    assert_eq!(error.to_string(), "The management dashboard is not available on a master server.");
    assert_eq!(error.status(), Some(StatusCode::CONFLICT));
    let ApiError::Refused { code, .. } = error else { panic!() };
    assert_eq!(code.as_deref(), Some("feature_unavailable"));
}

#[test]
fn answers_that_are_not_rampart_errors_name_the_status() {
    let html = b"<html>\n<h1>502 Bad Gateway</h1></html>";
    assert_eq!(
        ApiError::from_answer(StatusCode::BAD_GATEWAY, html).to_string(),
        "the server answered HTTP 502 Bad Gateway: <html>"
    );
    assert_eq!(ApiError::from_answer(StatusCode::NOT_FOUND, b"").to_string(), "the server answered HTTP 404 Not Found");
    assert_eq!(
        ApiError::from_answer(StatusCode::CONFLICT, br#"{"error":{"code":"read_only","message":""}}"#).to_string(),
        "the server answered HTTP 409 Conflict (read_only)"
    );
}

#[test]
fn paths_are_appended_and_encoded() {
    let c = client("http://127.0.0.1:7073");
    assert_eq!(c.url(&["api", "endpoints", "sim1-00001"]).as_str(), "http://127.0.0.1:7073/api/endpoints/sim1-00001");
    assert_eq!(c.url(&["api", "tasks", "../x y"]).as_str(), "http://127.0.0.1:7073/api/tasks/..%2Fx%20y");
    assert_eq!(c.server(), "http://127.0.0.1:7073");
    let behind_proxy = client("http://gw.example/rampart/");
    assert_eq!(behind_proxy.url(&["api", "status"]).as_str(), "http://gw.example/rampart/api/status");
}
