//! The bad requests every route is tried with ([`abuse`]), and the checks
//! shared by the areas' own cases: each refusal is a JSON error with a code,
//! a message and the expected 4xx status.

use rampart_tests::{
    abuse::{json, request, Answer, Auth},
    TestServer,
};
use reqwest::Method;
use serde_json::{json, Value};

/// One route, as an operator would call it, and the same route with ids
/// that name nothing and ids that cannot be ids.
pub struct Route {
    method: Method,
    path: String,
    /// A valid body, for routes that take one.
    body: Option<Value>,
    unknown: Option<String>,
    malformed: Option<String>,
}

pub fn route(method: Method, path: impl Into<String>, body: Option<Value>) -> Route {
    Route { method, path: path.into(), body, unknown: None, malformed: None }
}

impl Route {
    pub fn ids(mut self, unknown: impl Into<String>, malformed: Option<&str>) -> Self {
        self.unknown = Some(unknown.into());
        self.malformed = malformed.map(str::to_owned);
        self
    }
}

/// Asserts a JSON error with `status`; returns the answer for more checks.
fn refused(what: &str, answer: Answer, status: u16) -> Answer {
    assert_eq!(answer.status.as_u16(), status, "{what}: {} {}", answer.status, answer.body);
    assert!(
        answer.content_type.starts_with("application/json"),
        "{what}: not JSON ({}): {}",
        answer.content_type,
        answer.body
    );
    assert!(
        !answer.code().is_empty() && !answer.message().is_empty(),
        "{what}: no error code and message: {}",
        answer.body
    );
    answer
}

/// Every kind of bad request against one route. Nothing here may reach a
/// handler with a valid body, so nothing may change.
pub async fn abuse(server: &TestServer, r: &Route) {
    let name = format!("{} {}", r.method, r.path);
    let body = r.body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
    for auth in [Auth::None, Auth::Wrong] {
        let answer = request(server, r.method.clone(), &r.path, auth, Some("application/json"), body.clone()).await;
        let answer = refused(&format!("{name} with {auth:?} token"), answer, 401);
        assert_eq!(answer.code(), "unauthorized", "{name}");
    }
    if let Some(valid) = &r.body {
        let object = valid.as_object().expect("bodies are objects");
        let send = |bytes: Vec<u8>| json(server, r.method.clone(), &r.path, bytes);
        refused(&format!("{name}: malformed JSON"), send(b"{,}".to_vec()).await, 400);
        refused(
            &format!("{name}: truncated JSON"),
            send(body.clone().unwrap()[..body.as_ref().unwrap().len() - 1].to_vec()).await,
            400,
        );
        for not_object in [&b"[1, 2, 3]"[..], b"[]", b"\"a string\"", b"42", b"null"] {
            refused(
                &format!("{name}: {} is not an object", String::from_utf8_lossy(not_object)),
                send(not_object.to_vec()).await,
                422,
            );
        }
        let mut unknown = object.clone();
        unknown.insert("bogus_field".into(), json!(1));
        let answer = refused(&format!("{name}: unknown field"), send(serde_json::to_vec(&unknown).unwrap()).await, 422);
        assert!(answer.message().contains("bogus_field"), "{name}: {}", answer.body);
        for field in object.keys() {
            let mut wrong = object.clone();
            wrong.insert(field.clone(), json!([[]]));
            let answer = refused(
                &format!("{name}: {field} of a wrong type"),
                send(serde_json::to_vec(&wrong).unwrap()).await,
                422,
            );
            assert!(answer.message().contains(field.as_str()), "{name}: the message names {field}: {}", answer.body);
        }
        for (field, value) in object.iter().filter(|(_, v)| v.is_string()) {
            let mut nul = object.clone();
            nul.insert(field.clone(), json!(format!("{}\u{0}x", value.as_str().unwrap())));
            let answer =
                refused(&format!("{name}: NUL in {field}"), send(serde_json::to_vec(&nul).unwrap()).await, 422);
            assert!(answer.message().contains("NUL"), "{name}: {}", answer.body);
        }
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
        let answer = refused(&format!("{name}: 3 MiB body"), send(big.into_bytes()).await, 413);
        assert!(answer.message().contains("limit"), "{name}: {}", answer.body);
        let first = object.keys().next().expect("a field");
        let deep = format!("{{\"{first}\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        let answer = send(deep.into_bytes()).await;
        assert!(matches!(answer.status.as_u16(), 400 | 422), "{name}: deep nesting: {} {}", answer.status, answer.body);
        let plain = request(server, r.method.clone(), &r.path, Auth::Right, Some("text/plain"), body.clone()).await;
        refused(&format!("{name}: text/plain"), plain, 415);
    }
    for (path, what) in [(&r.unknown, "unknown"), (&r.malformed, "malformed")] {
        if let Some(path) = path {
            let answer =
                request(server, r.method.clone(), path, Auth::Right, Some("application/json"), body.clone()).await;
            let answer = refused(&format!("{} {path} ({what} id)", r.method), answer, 404);
            assert_eq!(answer.code(), "not_found", "{path}: {}", answer.body);
        }
    }
}

/// Well-formed requests that must be refused, each with the words the message must hold.
pub async fn invalid(server: &TestServer, cases: &[(Method, String, Value, u16, &str)]) {
    for (method, path, body, status, words) in cases {
        let answer = json(server, method.clone(), path, serde_json::to_vec(body).unwrap()).await;
        let answer = refused(&format!("{method} {path} {body}"), answer, *status);
        assert!(answer.message().contains(words), "{method} {path}: expected '{words}' in {}", answer.body);
    }
}

/// Bad query strings and methods, each with its status.
pub async fn bad_queries(server: &TestServer, cases: &[(Method, &str, u16)]) {
    for (method, path, status) in cases {
        let answer = request(server, method.clone(), path, Auth::Right, None, None).await;
        refused(&format!("{method} {path}"), answer, *status);
    }
}
