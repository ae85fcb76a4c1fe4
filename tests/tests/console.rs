//! The web console in a real browser (headless Chromium from Debian, over
//! WebDriver, [`browser`]), on real servers: signing in and out, hostile
//! data from agents shown as text with nothing run, what a role may not do
//! neither offered nor accepted, a master's site features refused,
//! registering and unregistering from the console, a master's policy
//! read-only on its slave, replicate now, the master's network and virtual
//! views of its slaves. Screenshots of the main pages go to
//! `target/console-shots/`. Sessions and access over plain HTTP are in
//! [`sessions`], the site features' forms in [`features`], registering and
//! a master's views of its slaves in [`hierarchy_views`], the pages at
//! 1280 and 800 pixels in [`widths`].

mod browser;
mod features;
mod hierarchy_views;
pub(crate) mod http;
mod sessions;
mod widths;

use chrono::Utc;
use rampart_shared::{
    amqp::publisher::Outgoing,
    messages::{kind, Heartbeat},
    topology::Topology,
    Envelope,
};
use rampart_tests::{hierarchy, ServerOptions, TestServer};
use reqwest::{header, StatusCode};
use serde_json::json;

use browser::Browser;
use fantoccini::key::Key;
use http::{download_report, HttpSession};

/// The password the tests give operator `name`.
pub(crate) fn password(name: &str) -> String {
    format!("{name}-console-password")
}

/// Creates operator `name` with `role` (as the bootstrap administrator).
pub(crate) async fn operator(server: &TestServer, name: &str, role: &str) {
    let (status, body) =
        server.post("/api/operators", json!({"name": name, "role": role, "password": password(name)})).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn an_operator_signs_in_and_out_and_every_page_is_guarded() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    operator(&server, "alice", "administrator").await;
    hierarchy::insert_endpoints(&server, "pc", 55).await;
    let browser = Browser::start(&server).await;

    // Not signed in: every page leads to the sign-in.
    browser.open("/").await;
    assert_eq!(browser.path().await, "/console/sign-in");
    browser.shot("sign-in").await;
    let refused = browser.sign_in_refused("alice", "not-her-password").await;
    assert!(refused.contains("wrong operator name or password"), "{refused}");

    browser.sign_in("alice", &password("alice")).await;
    browser.find("#main h1").await;
    assert_eq!(browser.path().await, "/console");
    assert!(browser.page_text().await.contains("Signed in as alice, administrator."));
    browser.shot("home").await;
    browser.open("/console/computers").await;
    assert_eq!(browser.count("tbody tr").await, 50, "a page of 50 computers");
    browser.shot("computers").await;
    browser.click("a[href*='offset=50']").await;
    browser.wait_for_text("55 computer(s), showing 51–55").await;
    browser.open("/console/computers?search=pc-54").await;
    assert_eq!(browser.count("tbody tr").await, 1, "a search narrows the list");

    // The tree: a group opens from the keyboard and loads its computers,
    // 50 at a time.
    browser.open("/console").await;
    let group = browser.find("li[data-node^='group:']").await;
    group.send_keys(&Key::Right.to_string()).await.expect("the group takes keys");
    browser.find("li[data-node='computer:pc-00049']").await;
    assert_eq!(browser.count("li[data-node^='computer:']").await, 50);
    browser.click("a[data-more]").await;
    browser.find("li[data-node='computer:pc-00054']").await;
    assert_eq!(browser.count("li[data-node^='computer:']").await, 55);
    browser.shot("tree").await;
    browser.open("/console/computers/pc-00002").await;
    assert!(browser.page_text().await.contains("Policy assigned"));
    browser.shot("computer").await;
    for (page, title) in [
        ("/console/dashboard", "Dashboard"),
        ("/console/audit", "Network audit"),
        ("/console/groups", "Network groups"),
        ("/console/deployments", "Deployments"),
        ("/console/settings/email", "E-mail settings"),
        ("/console/license", "License"),
        ("/console/reports", "Reports"),
        ("/console/refused-messages", "Refused messages"),
        ("/console/activity", "Activity log"),
    ] {
        browser.open(page).await;
        assert_eq!(browser.text("#main h1").await, title, "{page}");
    }
    browser.open("/console/dashboard").await;
    browser.shot("dashboard").await;
    let csv = download_report(&server).await;
    assert!(csv.contains("protected"), "the security status report downloads as CSV: {csv}");
    browser.client.set_window_size(800, 900).await.expect("a narrower window");
    browser.open("/console").await;
    browser.shot("home-800").await;

    browser.click("header.top form button").await;
    browser.find("main.sign-in").await;
    browser.open("/console/policies").await;
    assert_eq!(browser.path().await, "/console/sign-in", "signed out, pages lead to the sign-in again");

    // Without the session's CSRF token a form is refused, even signed in.
    let session = HttpSession::sign_in(&server, "alice").await;
    let refused = session.post("/console/policies", &[("name", "no-token")]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("CSRF token"));
    let (_, policies) = server.get("/api/policies").await;
    assert_eq!(policies, json!([]), "nothing was created");
    let (_, activity) = server.get("/api/activity?operator=alice").await;
    let actions: Vec<&str> = activity.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["sign_in.failed", "sign_in", "sign_out"] {
        assert!(actions.contains(&action), "the activity log records {action}: {actions:?}");
    }
    browser.stop().await;
    server.stop(&[]).await;
}

#[tokio::test]
async fn a_hostile_hostname_is_shown_as_text_and_nothing_runs() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    operator(&server, "alice", "auditor").await;
    let hostile = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">";
    let heartbeat = Heartbeat {
        endpoint_id: "evil-1".into(),
        hostname: hostile.into(),
        ip: "10.9.0.66".into(),
        os: "Debian 12".into(),
        agent_version: "7.2.0".into(),
        signatures_version: "today".into(),
        signatures_date: Utc::now().date_naive(),
        realtime_protection: true,
        active_threats: 0,
        policy_id: None,
        policy_version: None,
    };
    let site = server.options.instance.clone();
    let envelope = Envelope::new(kind::HEARTBEAT, "evil-1", 1, &heartbeat);
    let key = Topology::site_key(&site, kind::HEARTBEAT);
    rampart_tests::inject(vec![Outgoing::envelope(server.topology().site_exchange(), key, &envelope, None)]).await;
    server.wait_for_endpoints(1).await;

    let browser = Browser::start(&server).await;
    browser.sign_in("alice", &password("alice")).await;
    for page in ["/console/computers", "/console/computers/evil-1"] {
        browser.open(page).await;
        assert!(browser.page_text().await.contains(hostile), "{page} shows the hostname as text");
        let flag = browser.run("return window.__pwned === undefined;").await;
        assert_eq!(flag, json!(true), "nothing from the hostname ran on {page}");
        assert_eq!(browser.count("img").await, 0, "no element was made from the hostname on {page}");
    }
    browser.shot("hostile-hostname").await;

    let session = HttpSession::sign_in(&server, "alice").await;
    let page = session.get("/console/computers").await;
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
    assert_eq!(
        csp,
        "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self'"
    );
    assert_eq!(page.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(page.headers().contains_key(header::REFERRER_POLICY));
    let html = page.text().await.unwrap();
    assert!(html.contains("&lt;script&gt;window.__pwned=1&lt;/script&gt;"), "the hostname is escaped");
    browser.stop().await;
    server.stop(&[]).await;
}

#[tokio::test]
async fn a_role_that_may_not_create_policies_is_not_offered_the_form_and_its_forged_post_is_refused() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    operator(&server, "carol", "auditor").await;
    operator(&server, "oscar", "operator").await;
    let browser = Browser::start(&server).await;

    browser.sign_in("oscar", &password("oscar")).await;
    browser.open("/console/policies").await;
    browser.fill("name", "office").await;
    browser.click("#new-policy button[type=submit]").await;
    browser.find("tr[data-policy='office']").await;
    assert_eq!(browser.text("tr[data-policy='office'] td.owner").await, "local");
    browser.shot("policies").await;
    browser.fill("name", "   ").await;
    browser.click("#new-policy button[type=submit]").await;
    assert!(!browser.text("#policy-error").await.is_empty(), "a refused name is explained next to the form");
    browser.click("header.top form button").await;

    browser.sign_in("carol", &password("carol")).await;
    browser.open("/console/policies").await;
    browser.find("tr[data-policy='office']").await;
    assert_eq!(browser.count("#new-policy").await, 0, "an auditor is not offered the form");
    assert_eq!(browser.count("tr[data-policy='office'] form").await, 0, "nor a delete");
    // The same form forged with the session's own token: refused by role.
    let answer = browser
        .run(
            "const csrf = document.querySelector('input[name=csrf]').value;
             return fetch('/console/policies', {method: 'POST',
                 headers: {'content-type': 'application/x-www-form-urlencoded'},
                 body: 'csrf=' + encodeURIComponent(csrf) + '&name=forged'})
               .then(async r => [r.status, await r.text()]);",
        )
        .await;
    assert_eq!(answer[0], 403, "{answer}");
    let text = answer[1].as_str().unwrap();
    assert!(text.contains("needs the operator role") && text.contains("'carol' is an auditor"), "{text}");
    let (_, policies) = server.get("/api/policies").await;
    assert_eq!(policies.as_array().unwrap().len(), 1, "nothing forged was created: {policies}");
    browser.stop().await;
    server.stop(&[]).await;
}

#[tokio::test]
async fn a_masters_site_features_answer_that_they_are_not_available() {
    let server = TestServer::spawn(ServerOptions::master()).await;
    operator(&server, "alice", "auditor").await;
    let browser = Browser::start(&server).await;
    browser.sign_in("alice", &password("alice")).await;
    assert_eq!(browser.count("header.top a[href='/console/dashboard']").await, 0, "a master offers no dashboard");
    browser.open("/console/dashboard").await;
    assert!(browser.page_text().await.contains("The management dashboard is not available on a master server"));
    browser.shot("master-dashboard-refused").await;
    let session = HttpSession::sign_in(&server, "alice").await;
    for page in ["/console/dashboard", "/console/audit", "/console/license", "/console/settings/email"] {
        assert_eq!(session.get(page).await.status(), StatusCode::CONFLICT, "{page}");
    }
    // The site features' forms too, as the API refuses them, for a role that may use them elsewhere.
    operator(&server, "root", "administrator").await;
    let root = HttpSession::sign_in(&server, "root").await;
    let csrf = http::csrf_of(&root.get("/console").await.text().await.unwrap());
    for (form, feature) in [
        ("/console/groups", "The network builder"),
        ("/console/groups/move", "The network builder"),
        ("/console/groups/1/rename", "The network builder"),
        ("/console/deployments", "The deployment tool"),
        ("/console/settings/email", "E-mail settings"),
        ("/console/license", "Registration (license)"),
    ] {
        let answer = root.post(form, &[("csrf", &csrf)]).await;
        assert_eq!(answer.status(), StatusCode::CONFLICT, "{form}");
        let text = answer.text().await.unwrap();
        assert!(text.contains(&format!("{feature} is not available on a master server")), "{form}: {text}");
    }
    browser.stop().await;
    server.stop(&[]).await;
}
