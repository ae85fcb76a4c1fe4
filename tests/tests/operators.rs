//! Operators, roles, personal tokens and the activity log (issue 20, items
//! 5 and 6): every route with every role against the access table, on a
//! master and on a site; sign-in throttling; token expiry and revocation;
//! an auditor refused; a slave's activity seen on its master.

use std::time::Instant;

use rampart_server::{
    api::access::{Access, TABLE},
    operators::{sign_in::delay_after, OperatorRole},
};
use rampart_tests::{
    hierarchy::register,
    operators::{call, create, login, password},
    wait_for, ServerOptions, TestServer,
};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// An operator of each role, signed in: (role, token).
async fn one_of_each(server: &TestServer) -> Vec<(OperatorRole, String)> {
    let mut tokens = Vec::new();
    for role in OperatorRole::ALL {
        let name = format!("{}-1", role.as_str());
        create(server, &name, role.as_str()).await;
        tokens.push((role, login(server, &name, None).await["token"].as_str().unwrap().to_owned()));
    }
    tokens
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "00000000-0000-0000-0000-000000000000")
        .replace("{name}", "nobody")
        .replace("{kind}", "licenses")
}

/// Every entry of the access table with every role: refused (403, naming
/// the role needed) exactly when the table says so. The unit test
/// `api::access::tests` proves the table covers every route declared.
async fn walk_every_route(server: &TestServer) {
    let tokens = one_of_each(server).await;
    for (method, path, access) in TABLE {
        let url = format!("/api{}", concrete(path));
        let method: Method = method.parse().unwrap();
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        let (status, answer) = call(server, None, method.clone(), &url, body.clone()).await;
        match access {
            Access::Public | Access::EnrolmentToken => {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {url}: {answer}")
            }
            Access::Role(_) => assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {url} without a token: {answer}"),
        }
        let Access::Role(needed) = access else { continue };
        for (role, token) in &tokens {
            let (status, answer) = call(server, Some(token), method.clone(), &url, body.clone()).await;
            if role.allows(*needed) {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{method} {url} as {role}: {status} {answer}"
                );
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {url} as {role}: {answer}");
                let message = answer["error"]["message"].as_str().unwrap();
                assert!(message.contains(&format!("needs the {needed} role")), "{method} {url}: {message}");
            }
        }
    }
}

#[tokio::test]
async fn every_route_with_every_role_on_a_site() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    walk_every_route(&server).await;
    server.stop(&[]).await;
}

#[tokio::test]
async fn every_route_with_every_role_on_a_master() {
    let server = TestServer::spawn(ServerOptions::master()).await;
    walk_every_route(&server).await;
    server.stop(&[]).await;
}

#[tokio::test]
async fn an_auditor_changes_nothing_and_is_told_the_role_needed() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    create(&server, "carol", "auditor").await;
    let token = login(&server, "carol", None).await["token"].as_str().unwrap().to_owned();
    let policy = json!({"name": "forged", "settings": {"realtime_protection": false}});
    let (status, body) = call(&server, Some(&token), Method::POST, "/api/policies", Some(policy)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("needs the operator role") && message.contains("auditor"), "{message}");
    let (status, body) = call(&server, Some(&token), Method::PUT, "/api/license", Some(json!({"key": "x"}))).await;
    assert_eq!(status, 403);
    assert!(body["error"]["message"].as_str().unwrap().contains("needs the administrator role"), "{body}");
    let (status, policies) = call(&server, Some(&token), Method::GET, "/api/policies", None).await;
    assert_eq!(status, 200);
    assert!(policies.as_array().unwrap().iter().all(|p| p["name"] != "forged"), "{policies}");
    // Nor can an operator manage operators.
    create(&server, "olga", "operator").await;
    let olga = login(&server, "olga", None).await["token"].as_str().unwrap().to_owned();
    let new = json!({"name": "mallory", "role": "administrator", "password": password("mallory")});
    let (status, body) = call(&server, Some(&olga), Method::POST, "/api/operators", Some(new)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("needs the administrator role"));
    server.stop(&[]).await;
}

#[tokio::test]
async fn failed_sign_ins_are_slowed_counted_and_logged() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    create(&server, "alice", "operator").await;
    let wrong = json!({"operator": "alice", "password": "not-her-password"});
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let (status, body) = call(&server, None, Method::POST, "/api/login", Some(wrong.clone())).await;
        took.push(started.elapsed());
        assert_eq!(status, 401, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("wrong operator name or password"));
    }
    assert!(took[0] < delay_after(4), "the first attempt is not slowed: {took:?}");
    assert!(took[4] >= delay_after(4), "the fifth attempt waits for four failures: {took:?}");
    // Another account from the same address is slowed too (per address).
    let other = json!({"operator": "nobody", "password": "whatever-it-is"});
    let started = Instant::now();
    call(&server, None, Method::POST, "/api/login", Some(other)).await;
    assert!(started.elapsed() >= delay_after(5), "per address: {:?}", started.elapsed());
    // The right password still works (after its delay), and clears the account's count.
    login(&server, "alice", None).await;

    let metrics = server.metrics().await;
    assert!(metrics.contains("rampart_sign_in_failures_total 6"), "{metrics}");
    let failed = server.get_ok("/api/activity?object=operator:alice").await;
    let failed: Vec<&Value> = failed.as_array().unwrap().iter().filter(|e| e["action"] == "sign_in.failed").collect();
    assert_eq!(failed.len(), 5);
    assert_eq!(failed[0]["address"], "127.0.0.1");
    assert_eq!(failed[0]["site"], "site-a");
    let signed_in = server.get_ok("/api/activity?operator=alice").await;
    assert!(signed_in.as_array().unwrap().iter().any(|e| e["action"] == "sign_in"), "{signed_in}");
    server.stop(&[]).await;
}

#[tokio::test]
async fn tokens_expire_and_can_be_revoked() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    create(&server, "bob", "operator").await;
    let first = login(&server, "bob", Some(1)).await;
    let token = first["token"].as_str().unwrap();
    let (status, me) = call(&server, Some(token), Method::GET, "/api/me", None).await;
    assert_eq!((status, me["operator"].clone(), me["role"].clone()), (StatusCode::OK, json!("bob"), json!("operator")));
    // Only the hash is kept.
    let client = server.state.pool.get().await.unwrap();
    let stored: i64 = client
        .query_one(
            "SELECT count(*) FROM operator_tokens WHERE position($1::bytea in token_hash) > 0",
            &[&token.as_bytes()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    client.execute("UPDATE operator_tokens SET expires_at = now() - interval '1 second'", &[]).await.unwrap();
    let (status, body) = call(&server, Some(token), Method::GET, "/api/status", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("expired"), "{body}");

    let second = login(&server, "bob", None).await;
    let token = second["token"].as_str().unwrap();
    let (status, listed) = call(&server, Some(token), Method::GET, "/api/tokens", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    assert!(listed.to_string().find("rpt_").is_none(), "a token's text is never listed");
    let path = format!("/api/tokens/{}", second["id"].as_str().unwrap());
    let (status, revoked) = call(&server, Some(token), Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{revoked}");
    let (status, body) = call(&server, Some(token), Method::GET, "/api/status", None).await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].as_str().unwrap().contains("revoked"), "{body}");
    let log = server.get_ok("/api/activity?operator=bob").await;
    assert!(log.as_array().unwrap().iter().any(|e| e["action"] == "token.revoke"), "{log}");

    // A disabled account's tokens stop working at once.
    let third = login(&server, "bob", None).await;
    let (status, _) = server.call(Method::PATCH, "/api/operators/bob", Some(json!({"disabled": true}))).await;
    assert_eq!(status, 200);
    let (status, _) = call(&server, third["token"].as_str(), Method::GET, "/api/status", None).await;
    assert_eq!(status, 401);
    // The bootstrap token of server.xml still acts as an administrator.
    let (status, me) = server.get("/api/me").await;
    assert_eq!(
        (status, me["operator"].clone(), me["role"].clone()),
        (StatusCode::OK, json!("bootstrap"), json!("administrator"))
    );
    server.stop(&[]).await;
}

#[tokio::test]
async fn a_change_at_a_slave_shows_in_its_masters_activity() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let site = TestServer::spawn(ServerOptions::site("lille", &master.options.namespace)).await;
    register(&master, &site).await;
    create(&site, "dave", "operator").await;
    let entry = wait_for("the slave's activity on the master", || async {
        master.post("/api/replication/now", json!({})).await;
        let log = master.get_ok("/api/activity?object=operator:dave").await;
        log.as_array().unwrap().iter().find(|e| e["action"] == "operator.create").cloned()
    })
    .await;
    assert_eq!(entry["site"], "lille", "{entry}");
    assert_eq!(entry["operator"], "bootstrap");
    assert_eq!(entry["after"]["role"], "operator");
    site.stop(&[]).await;
    master.stop(&[]).await;
}
