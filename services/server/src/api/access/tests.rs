//! Every route has one row in the access table, and each role gets exactly what its row says.

use std::collections::BTreeSet;

use super::*;

/// Every (method, path) the files of `src/<folder>` declare with `.route(...)`.
fn declared_routes_in(folder: &str) -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(folder);
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for call in text.split(".route(\"").skip(1) {
            let Some((route, rest)) = call.split_once('"') else { continue };
            // The methods: `get(`, `.post(`, ... up to the end of this call.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let body = &rest[..end];
            for method in ["get", "post", "put", "patch", "delete"] {
                let called = body
                    .match_indices(&format!("{method}("))
                    .any(|(i, _)| i == 0 || !body[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
                if called {
                    routes.insert((method.to_uppercase(), route.to_owned()));
                }
            }
        }
    }
    routes
}

/// Every (method, path) the api files declare.
fn declared_routes() -> BTreeSet<(String, String)> {
    let mut routes = declared_routes_in("api");
    // Outside `/api`: no bearer token (health, metrics, the server-to-server registration).
    routes.retain(|(_, p)| !matches!(p.as_str(), "/health" | "/metrics"));
    routes
}

#[test]
fn every_console_route_has_an_entry_and_every_entry_a_route() {
    let declared = declared_routes_in("console");
    assert!(declared.len() > 10, "the route scan found too little: {declared:?}");
    let missing: Vec<_> = declared.iter().filter(|(m, p)| console_required(&m.parse().unwrap(), p).is_none()).collect();
    assert!(missing.is_empty(), "console routes without an entry in the access table: {missing:?}");
    let stale: Vec<_> =
        CONSOLE_TABLE.iter().filter(|(m, p, _)| !declared.contains(&(m.to_string(), p.to_string()))).collect();
    assert!(stale.is_empty(), "console access table entries without a route: {stale:?}");
}

#[test]
fn the_console_needs_what_the_api_needs_for_the_same_change() {
    // Console form -> the API route that makes the same change.
    let same = [
        ("/policies", "POST", "/policies"),
        ("/policies/{id}/delete", "DELETE", "/policies/{id}"),
        ("/tasks", "POST", "/tasks"),
        ("/tasks/{id}/cancel", "POST", "/tasks/{id}/cancel"),
        ("/hierarchy/register", "POST", "/hierarchy/register"),
        ("/hierarchy/unregister", "POST", "/hierarchy/unregister"),
        ("/slaves/{id}/replicate", "POST", "/slaves/{id}/replicate"),
        ("/slaves/{id}/verify", "POST", "/verifications"),
        ("/slaves/{id}/remove", "DELETE", "/slaves/{id}"),
        ("/registration-tokens", "POST", "/registration-tokens"),
        ("/groups", "POST", "/groups"),
        ("/groups/{id}/rename", "PATCH", "/groups/{id}"),
        ("/groups/{id}/delete", "DELETE", "/groups/{id}"),
        ("/groups/move", "POST", "/endpoints/{id}/move"),
        ("/deployments", "POST", "/deployments"),
        ("/settings/email", "PUT", "/settings/email"),
        ("/license", "PUT", "/license"),
    ];
    for (method, path, access) in CONSOLE_TABLE {
        if *method == "GET" {
            if *access != Public {
                assert_eq!(*access, AUDITOR, "{method} {path}");
            }
            continue;
        }
        if matches!(*path, "/sign-in" | "/sign-out" | "/tree-view") {
            continue;
        }
        let Some((_, api_method, api_path)) = same.iter().find(|(p, _, _)| p == path) else {
            panic!("console form {method} {path} names no API route that makes the same change");
        };
        assert_eq!(required(&api_method.parse().unwrap(), api_path), Some(*access), "{method} {path}");
    }
}

#[test]
fn every_declared_route_has_an_entry_and_every_entry_a_route() {
    let declared = declared_routes();
    assert!(declared.len() > 40, "the route scan found too little: {declared:?}");
    let missing: Vec<_> = declared.iter().filter(|(m, p)| required(&m.parse().unwrap(), p).is_none()).collect();
    assert!(missing.is_empty(), "routes without an entry in the access table: {missing:?}");
    let stale: Vec<_> = TABLE.iter().filter(|(m, p, _)| !declared.contains(&(m.to_string(), p.to_string()))).collect();
    assert!(stale.is_empty(), "access table entries without a route: {stale:?}");
}

#[test]
fn reading_needs_an_auditor_and_changing_more() {
    for (method, path, access) in TABLE {
        if *method == "GET" && !matches!(*path, "/operators") {
            assert_eq!(*access, AUDITOR, "{method} {path}");
        } else if *path != "/login" && !path.starts_with("/tokens") {
            assert_ne!(*access, AUDITOR, "{method} {path}: a change an auditor could make");
        }
    }
    assert_eq!(required(&Method::HEAD, "/policies"), Some(AUDITOR));
    assert_eq!(required(&Method::GET, "/nowhere"), None);
}

#[test]
fn a_refusal_names_the_role_needed() {
    let p = Principal { operator: "carol".into(), role: OperatorRole::Auditor, token: None };
    let message = refusal(&p, OperatorRole::Operator).to_string();
    assert!(message.contains("needs the operator role"), "{message}");
    assert!(message.contains("'carol' is an auditor"), "{message}");
}
