//! The console's sessions and access over plain HTTP: every console route
//! with every role, the cookie under TLS, idle expiry, forms posted from
//! another site; and pages of a 10,000-computer site served fast.

use rampart_server::{
    api::access::{Access, CONSOLE_TABLE},
    operators::OperatorRole,
};
use rampart_tests::{hierarchy::insert_endpoints, ServerOptions, TestServer};
use reqwest::{header, redirect, StatusCode};

use super::{
    http::{csrf_of, HttpSession},
    operator, password,
};

/// Every console route of the access table, with an operator of each role:
/// refused (403, naming the role needed) exactly when the role is too low.
async fn walk_every_console_route(server: &TestServer) {
    for role in OperatorRole::ALL {
        let name = format!("walker-{role}");
        operator(server, &name, role.as_str()).await;
        let session = HttpSession::sign_in(server, &name).await;
        let csrf = csrf_of(&session.get("/console").await.text().await.unwrap());
        let mut walked = 0;
        for (method, route, access) in CONSOLE_TABLE {
            let Access::Role(needed) = access else { continue };
            if *route == "/sign-out" {
                continue;
            }
            let path = match *route {
                "/" => "/console".to_owned(),
                // A node of the tree: a group of a site, a slave of a master.
                "/tree/children" if server.options.role == "master" => "/console/tree/children?slave=nobody".to_owned(),
                "/tree/children" => "/console/tree/children?group=1".to_owned(),
                route => format!("/console{}", route.replace("{id}", "no-such-id")),
            };
            let response = match *method {
                "GET" => session.get(&path).await,
                _ => session.post(&path, &[("csrf", &csrf)]).await,
            };
            let status = response.status();
            let body = response.text().await.unwrap();
            if status == StatusCode::NOT_FOUND && body.contains("no such console page") {
                // A route of the other kind of server (a master's slaves on a site).
                continue;
            }
            walked += 1;
            if role.allows(*needed) {
                assert_ne!(status, StatusCode::FORBIDDEN, "{role} on {method} {path}: {body}");
                assert!(!status.is_server_error(), "{role} on {method} {path}: {status} {body}");
                if *method == "GET" && !route.contains('{') {
                    // A page, or a site feature a master refuses.
                    assert!(matches!(status, StatusCode::OK | StatusCode::CONFLICT), "{role} on GET {path}: {status}");
                }
            } else {
                assert_eq!(status, StatusCode::FORBIDDEN, "{role} on {method} {path}");
                assert!(body.contains(&format!("needs the {needed} role")), "{role} on {method} {path}: {body}");
            }
        }
        assert!(walked >= 10, "only {walked} console routes answered on this server");
    }
}

#[tokio::test]
async fn every_console_route_with_every_role_on_a_site_and_a_master() {
    for options in [ServerOptions::standalone(), ServerOptions::master()] {
        let server = TestServer::spawn(options).await;
        walk_every_console_route(&server).await;
        server.stop(&[]).await;
    }
}

#[tokio::test]
async fn under_tls_the_session_cookie_is_secure() {
    let server = TestServer::spawn(ServerOptions { tls: true, ..ServerOptions::standalone() }).await;
    operator(&server, "alice", "auditor").await;
    let session = HttpSession::sign_in(&server, "alice").await;
    assert_eq!(session.get("/console").await.status(), StatusCode::OK);
    server.stop(&[]).await;
}

#[tokio::test]
async fn forms_posted_from_another_site_are_refused() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    operator(&server, "alice", "operator").await;
    let http = reqwest::Client::builder().redirect(redirect::Policy::none()).build().unwrap();
    let sign_in = http
        .post(format!("{}/console/sign-in", server.base))
        .header(header::ORIGIN, "http://evil.example")
        .form(&[("name", "alice".to_owned()), ("password", password("alice"))])
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), StatusCode::FORBIDDEN, "no one is signed in from another site");
    assert!(sign_in.headers().get(header::SET_COOKIE).is_none());

    let session = HttpSession::sign_in(&server, "alice").await;
    let csrf = csrf_of(&session.get("/console/policies").await.text().await.unwrap());
    let forged = session
        .http
        .post(format!("{}/console/policies", server.base))
        .header(header::COOKIE, &session.cookie)
        .header(header::ORIGIN, "http://evil.example")
        .form(&[("csrf", csrf.as_str()), ("name", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let same_site = session.post("/console/policies", &[("csrf", csrf.as_str()), ("name", "mine")]).await;
    assert_eq!(same_site.status(), StatusCode::SEE_OTHER, "the same form from the console itself is taken");
    let (_, policies) = server.get("/api/policies").await;
    let names: Vec<&str> = policies.as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["mine"]);
    server.stop(&[]).await;
}

#[tokio::test]
async fn an_idle_session_is_over() {
    let options = ServerOptions {
        extra_xml: "<Console><IdleMinutes>5</IdleMinutes></Console>".into(),
        ..ServerOptions::standalone()
    };
    let server = TestServer::spawn(options).await;
    operator(&server, "alice", "auditor").await;
    let session = HttpSession::sign_in(&server, "alice").await;
    assert_eq!(session.get("/console").await.status(), StatusCode::OK);
    let client = server.state.pool.get().await.unwrap();
    client.execute("UPDATE console_sessions SET last_seen_at = now() - interval '6 minutes'", &[]).await.unwrap();
    let page = session.get("/console/computers").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()[header::LOCATION], "/console/sign-in?expired");
    let left: i64 = client.query_one("SELECT count(*) FROM console_sessions", &[]).await.unwrap().get(0);
    assert_eq!(left, 0, "the idle session is removed");
    // One nobody comes back to is removed at the next sign-in.
    HttpSession::sign_in(&server, "alice").await;
    client.execute("UPDATE console_sessions SET last_seen_at = now() - interval '6 minutes'", &[]).await.unwrap();
    HttpSession::sign_in(&server, "alice").await;
    let left: i64 = client.query_one("SELECT count(*) FROM console_sessions", &[]).await.unwrap().get(0);
    assert_eq!(left, 1, "only the new session is kept");
    drop(client);
    server.stop(&[]).await;
}

#[tokio::test]
async fn pages_of_a_ten_thousand_computer_site_are_served_fast() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    insert_endpoints(&server, "pc", 10_000).await;
    operator(&server, "alice", "auditor").await;
    let session = HttpSession::sign_in(&server, "alice").await;
    let pages = ["/console/computers", "/console/computers?offset=9950", "/console/computers?search=pc-99", "/console"];
    let mut times = Vec::new();
    for _ in 0..5 {
        for page in pages {
            let started = std::time::Instant::now();
            let response = session.get(page).await;
            assert_eq!(response.status(), StatusCode::OK, "{page}");
            response.text().await.unwrap();
            times.push(started.elapsed());
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    eprintln!("console pages on 10,000 computers: median {median:?}, slowest {:?}", times[times.len() - 1]);
    // Paged by the database: a page costs about the same at any size. A
    // generous bound, for a busy test machine.
    assert!(median < std::time::Duration::from_millis(500), "median page time {median:?}");
    server.stop(&[]).await;
}
