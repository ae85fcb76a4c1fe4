//! API abuse on every route group of a stand-alone and of a master, and on
//! the report service: no or a wrong token, malformed JSON, a body that is
//! not an object, wrong types, unknown fields, NUL characters, an oversized
//! or deeply nested body, the wrong content type or method, unknown and
//! malformed ids, bad query parameters, and requests that are well formed
//! but invalid. Each gets a JSON error with a 4xx status that says what is
//! wrong, and the database is exactly as before (a snapshot of every table).

use rampart_tests::{
    abuse::{changed, snapshot},
    hierarchy::insert_endpoints,
    report::TestReport,
    ServerOptions, TestServer,
};
use reqwest::Method;
use serde_json::{json, Value};

mod route;
use route::{abuse, bad_queries, invalid, route};

fn id(v: &Value) -> String {
    match &v["id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_refuses_every_kind_of_bad_request_and_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("rampart-abuse-api-{}", uuid::Uuid::new_v4().simple()));
    let mut options = ServerOptions::standalone();
    options.extra_xml = format!("<Reports><Directory>{}</Directory></Reports>", dir.display());
    let site = TestServer::spawn(options).await;
    insert_endpoints(&site, "ep", 3).await;
    let (_, group) = site.post("/api/groups", json!({"name": "Lab", "subnet": "10.9.0.0/16"})).await;
    let (_, vgroup) = site.post("/api/virtual-groups", json!({"name": "VIP"})).await;
    let (g, v) = (id(&group), id(&vgroup));
    site.post(&format!("/api/virtual-groups/{v}/members"), json!({"endpoints": ["ep-00000"]})).await;
    let (_, policy) = site.post("/api/policies", json!({"name": "Office"})).await;
    let p = id(&policy);
    let (_, task) = site.post("/api/tasks", json!({"kind": "quick_scan", "target": {"all": true}})).await;
    let t = id(&task);
    let (_, schedule) = site
        .post("/api/reports/schedules", json!({"name": "daily", "kind": "security-status", "daily_at": "07:00"}))
        .await;
    let s = id(&schedule);
    rampart_tests::wait_for("the outbox to drain", || async {
        (site.get_ok("/api/status").await["messages"]["outbox_depth"] == 0).then_some(())
    })
    .await;
    let uuid = uuid::Uuid::new_v4();
    let email = json!({"smtp_host": "mail.example.com", "smtp_port": 25, "username": "u", "password": "p",
                       "from": "a@example.com", "to": ["b@example.com"], "starttls": false});
    let routes = vec![
        route(Method::GET, "/api/status", None),
        route(Method::GET, "/api/dashboard", None),
        route(Method::GET, "/api/detections?limit=5", None),
        route(Method::GET, "/api/audit", None),
        route(Method::GET, "/api/refused-messages?limit=5", None),
        route(Method::GET, "/api/tree?view=virtual", None),
        route(Method::GET, "/api/endpoints?limit=2", None),
        route(Method::GET, "/api/endpoints/ep-00000", None).ids("/api/endpoints/nobody", None),
        route(Method::POST, "/api/endpoints/ep-00000/move", Some(json!({"group_id": 1})))
            .ids("/api/endpoints/nobody/move", None),
        route(Method::GET, "/api/groups", None),
        route(Method::POST, "/api/groups", Some(json!({"name": "New", "parent_id": 1, "subnet": "10.20.0.0/16"}))),
        route(Method::PATCH, format!("/api/groups/{g}"), Some(json!({"name": "Renamed", "subnet": "10.21.0.0/16"})))
            .ids("/api/groups/999999", Some("/api/groups/lab")),
        route(Method::DELETE, format!("/api/groups/{g}"), None).ids("/api/groups/999999", Some("/api/groups/1.5")),
        route(Method::GET, "/api/virtual-groups", None),
        route(Method::POST, "/api/virtual-groups", Some(json!({"name": "New VG", "description": "d"}))),
        route(Method::DELETE, format!("/api/virtual-groups/{v}"), None)
            .ids("/api/virtual-groups/999999", Some("/api/virtual-groups/x")),
        route(Method::GET, format!("/api/virtual-groups/{v}/members"), None)
            .ids("/api/virtual-groups/999999/members", Some("/api/virtual-groups/-/members")),
        route(Method::POST, format!("/api/virtual-groups/{v}/members"), Some(json!({"endpoints": ["ep-00001"]})))
            .ids("/api/virtual-groups/999999/members", None),
        route(Method::DELETE, format!("/api/virtual-groups/{v}/members"), Some(json!({"endpoints": ["ep-00000"]})))
            .ids("/api/virtual-groups/999999/members", None),
        route(Method::GET, "/api/policies", None),
        route(
            Method::POST,
            "/api/policies",
            Some(json!({"name": "Second", "settings": {"realtime_protection": false}})),
        ),
        route(Method::GET, format!("/api/policies/{p}"), None)
            .ids(format!("/api/policies/{uuid}"), Some("/api/policies/not-a-uuid")),
        route(
            Method::PATCH,
            format!("/api/policies/{p}"),
            Some(json!({"name": "Renamed", "settings": {"scan_schedule": "off"}})),
        )
        .ids(format!("/api/policies/{uuid}"), Some("/api/policies/42")),
        route(Method::DELETE, format!("/api/policies/{p}"), None)
            .ids(format!("/api/policies/{uuid}"), Some("/api/policies/x")),
        route(Method::POST, format!("/api/policies/{p}/assignments"), Some(json!({"target": "all"})))
            .ids(format!("/api/policies/{uuid}/assignments"), None),
        route(Method::DELETE, format!("/api/policies/{p}/assignments"), Some(json!({"target": "all"})))
            .ids(format!("/api/policies/{uuid}/assignments"), None),
        route(Method::GET, "/api/tasks", None),
        route(Method::POST, "/api/tasks", Some(json!({"name": "Scan", "kind": "quick_scan", "target": {"all": true}}))),
        route(Method::GET, format!("/api/tasks/{t}"), None).ids(format!("/api/tasks/{uuid}"), Some("/api/tasks/7")),
        route(Method::POST, format!("/api/tasks/{t}/cancel"), None)
            .ids(format!("/api/tasks/{uuid}/cancel"), Some("/api/tasks/x/cancel")),
        route(Method::GET, "/api/deployments", None),
        route(Method::POST, "/api/deployments", Some(json!({"computers": ["nowhere-1"]}))),
        route(Method::GET, "/api/settings/auto-deploy", None),
        route(Method::PUT, "/api/settings/auto-deploy", Some(json!({"enabled": true}))),
        route(Method::GET, "/api/settings/email", None),
        route(Method::PUT, "/api/settings/email", Some(email.clone())),
        route(Method::GET, "/api/license", None),
        route(Method::PUT, "/api/license", Some(json!({"key": "RAMPART1.x.y"}))),
        route(Method::GET, "/api/hierarchy", None),
        route(Method::POST, "/api/hierarchy/register", Some(json!({"master": "127.0.0.1:1", "token": "rrt_x"}))),
        route(Method::POST, "/api/hierarchy/unregister", None),
        route(Method::GET, "/api/replication", None),
        route(Method::POST, "/api/replication/now", Some(json!({"full": true}))),
        route(Method::GET, "/api/reports/security-status", None).ids("/api/reports/weather", None),
        route(Method::GET, "/api/reports/schedules", None),
        route(
            Method::POST,
            "/api/reports/schedules",
            Some(json!({"name": "weekly", "kind": "malware", "format": "csv", "every_seconds": 600, "email": false})),
        ),
        route(Method::DELETE, format!("/api/reports/schedules/{s}"), None)
            .ids(format!("/api/reports/schedules/{uuid}"), Some("/api/reports/schedules/x")),
        route(Method::POST, format!("/api/reports/schedules/{s}/run"), None)
            .ids(format!("/api/reports/schedules/{uuid}/run"), None),
    ];
    let before = snapshot(&site.state.pool).await;
    for r in &routes {
        abuse(&site, r).await;
    }
    invalid(
        &site,
        &[
            (Method::POST, "/api/endpoints/ep-00000/move".into(), json!({"group_id": 999999}), 422, "group_id 999999"),
            (Method::POST, "/api/groups".into(), json!({"name": "Bad", "subnet": "10.0.0.0/99"}), 422, "subnet"),
            (Method::POST, "/api/groups".into(), json!({"name": "  "}), 422, "name"),
            (Method::PATCH, format!("/api/groups/{g}"), json!({"parent_id": 1}), 422, "parent_id"),
            (Method::POST, "/api/virtual-groups".into(), json!({"name": "VIP"}), 409, "VIP"),
            (
                Method::POST,
                format!("/api/virtual-groups/{v}/members"),
                json!({"endpoints": ["ep-00001", "ghost"]}),
                422,
                "ghost",
            ),
            (
                Method::PATCH,
                format!("/api/policies/{p}"),
                json!({"settings": {"update_interval_minutes": 1}}),
                422,
                "update_interval_minutes",
            ),
            (
                Method::POST,
                format!("/api/policies/{p}/assignments"),
                json!({"target": "group", "id": "999999"}),
                422,
                "group 999999",
            ),
            (Method::POST, format!("/api/policies/{p}/assignments"), json!({"target": "planet"}), 422, "planet"),
            (
                Method::POST,
                "/api/tasks".into(),
                json!({"kind": "quick_scan", "target": {"endpoints": ["ep-00000", "ghost"]}}),
                422,
                "ghost",
            ),
            (Method::POST, "/api/tasks".into(), json!({"kind": "defrag", "target": {"all": true}}), 422, "defrag"),
            (Method::POST, "/api/deployments".into(), json!({"computers": []}), 422, "computers"),
            (
                Method::PUT,
                "/api/settings/email".into(),
                json!({"smtp_host": "m", "from": "nobody", "to": ["b@example.com"]}),
                422,
                "from",
            ),
            (
                Method::PUT,
                "/api/settings/email".into(),
                json!({"smtp_host": "m", "from": "a@example.com", "to": ["b@example.com"], "ca_file": "/nonexistent/ca.pem"}),
                422,
                "ca_file",
            ),
            (
                Method::PUT,
                "/api/settings/email".into(),
                json!({"smtp_host": "m", "from": "a@example.com", "to": ["b@example.com"], "ca_file": "/etc/passwd"}),
                422,
                "ca_file",
            ),
            (
                Method::PUT,
                "/api/settings/email".into(),
                json!({"smtp_host": "m", "from": "a@example.com", "to": ["b@example.com"], "tls": "none", "starttls": true}),
                422,
                "starttls",
            ),
            (
                Method::PUT,
                "/api/settings/email".into(),
                json!({"smtp_host": "m", "from": "a@example.com", "to": ["b@example.com"], "tls": "ssl"}),
                422,
                "tls",
            ),
            (Method::PUT, "/api/license".into(), json!({"key": "RAMPART1.e30.c2ln"}), 422, "license key"),
            (
                Method::POST,
                "/api/hierarchy/register".into(),
                json!({"master": "http://hq", "token": "rrt_x"}),
                422,
                "HOST:PORT",
            ),
            (Method::POST, "/api/replication/now".into(), json!({}), 409, "stand-alone"),
            (
                Method::POST,
                "/api/reports/schedules".into(),
                json!({"name": "x y", "kind": "malware", "every_seconds": 600}),
                422,
                "name",
            ),
            (
                Method::POST,
                "/api/reports/schedules".into(),
                json!({"name": "fast", "kind": "malware", "every_seconds": 1}),
                422,
                "every_seconds",
            ),
        ],
    )
    .await;
    bad_queries(
        &site,
        &[
            (Method::GET, "/api/endpoints?limit=abc", 400),
            (Method::GET, "/api/endpoints?limit=0", 422),
            (Method::GET, "/api/endpoints?offset=-1", 422),
            (Method::GET, "/api/endpoints?status=glowing", 422),
            (Method::GET, "/api/endpoints?colour=red", 400),
            (Method::GET, "/api/endpoints?search=%00", 400),
            (Method::GET, "/api/endpoints?slave=paris", 422),
            (Method::GET, "/api/detections?limit=100000", 422),
            (Method::GET, "/api/tree?view=upside-down", 422),
            (Method::GET, "/api/refused-messages?limit=0", 422),
            (Method::GET, "/api/refused-messages?colour=red", 400),
            (Method::GET, "/api/reports/security-status?format=pdf", 400),
            (Method::GET, "/api/reports/security-status?slave=paris", 400),
            (Method::PUT, "/api/status", 405),
            (Method::DELETE, "/api/policies", 405),
            (Method::POST, "/health", 405),
            (Method::GET, "/no-such-page", 404),
            (Method::GET, "/api/no-such-route", 404),
            (Method::POST, "/api/no-such-route", 404),
        ],
    )
    .await;
    let after = snapshot(&site.state.pool).await;
    assert!(changed(&before, &after).is_empty(), "refused requests changed {:?}", changed(&before, &after));
    // And the server still serves.
    assert_eq!(site.get_ok(&format!("/api/policies/{p}")).await["version"], 1);
    site.stop(&[]).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_and_the_report_service_refuse_bad_requests_and_change_nothing() {
    // No report service wired to this master: its roster would be written every 30 s.
    let master = TestServer::spawn(ServerOptions::master()).await;
    let (_, policy) = master.post("/api/policies", json!({"name": "HQ", "target": {"slaves": "all"}})).await;
    let p = id(&policy);
    let uuid = uuid::Uuid::new_v4();
    let routes = vec![
        route(Method::GET, "/api/registration-tokens", None),
        route(Method::POST, "/api/registration-tokens", Some(json!({"expires_in_seconds": 60}))),
        route(Method::GET, "/api/slaves", None),
        route(Method::GET, "/api/slaves/paris", None).ids("/api/slaves/nobody", None),
        route(Method::DELETE, "/api/slaves/paris", None).ids("/api/slaves/nobody", None),
        route(Method::POST, "/api/slaves/paris/replicate", Some(json!({"full": true})))
            .ids("/api/slaves/nobody/replicate", None),
        route(Method::POST, "/api/verifications", Some(json!({"slave": "paris"}))),
        route(Method::GET, format!("/api/verifications/{uuid}"), None)
            .ids(format!("/api/verifications/{uuid}"), Some("/api/verifications/1")),
        route(Method::POST, "/api/policies", Some(json!({"name": "More", "target": {"slaves": ["paris"]}}))),
        route(Method::PATCH, format!("/api/policies/{p}"), Some(json!({"name": "Renamed"})))
            .ids(format!("/api/policies/{uuid}"), Some("/api/policies/p")),
        route(
            Method::POST,
            "/api/tasks",
            Some(json!({"name": "Scan", "kind": "full_scan", "target": {"slaves": "all"}})),
        ),
        route(Method::POST, format!("/api/tasks/{uuid}/cancel"), None)
            .ids(format!("/api/tasks/{uuid}/cancel"), Some("/api/tasks/t/cancel")),
        route(Method::POST, "/api/replication/now", Some(json!({"full": false}))),
        route(Method::POST, "/api/reports/resend", None),
        route(Method::GET, "/api/tree", None),
        route(Method::GET, "/api/endpoints?slave=paris", None).ids("/api/endpoints/nobody", None),
    ];
    let before = snapshot(&master.state.pool).await;
    for r in &routes {
        abuse(&master, r).await;
    }
    invalid(
        &master,
        &[
            (
                Method::POST,
                "/api/registration-tokens".into(),
                json!({"expires_in_seconds": 0}),
                422,
                "expires_in_seconds",
            ),
            (
                Method::POST,
                "/api/registration-tokens".into(),
                json!({"expires_in_seconds": 99_999_999}),
                422,
                "30 days",
            ),
            (Method::POST, "/api/policies".into(), json!({"name": "No target"}), 422, "target"),
            (
                Method::POST,
                "/api/policies".into(),
                json!({"name": "Bad", "target": {"slaves": "some"}}),
                422,
                "target.slaves",
            ),
            (
                Method::POST,
                "/api/policies".into(),
                json!({"name": "Ghost", "target": {"slaves": ["ghost"]}}),
                422,
                "ghost",
            ),
            (Method::POST, format!("/api/policies/{p}/assignments"), json!({"target": "all"}), 409, "target"),
            (Method::POST, "/api/tasks".into(), json!({"kind": "quick_scan", "target": {"slaves": []}}), 422, "empty"),
            (Method::POST, "/api/verifications".into(), json!({}), 409, "no active slave"),
            (Method::POST, "/api/verifications".into(), json!({"slave": "nobody"}), 404, "nobody"),
            (
                Method::POST,
                "/api/hierarchy/register".into(),
                json!({"master": "127.0.0.1:1", "token": "rrt_x"}),
                409,
                "master",
            ),
            (Method::PUT, "/api/license".into(), json!({"key": "RAMPART1.e30.c2ln"}), 409, "master"),
        ],
    )
    .await;
    bad_queries(
        &master,
        &[
            (Method::GET, "/api/endpoints?group=3", 422),
            (Method::GET, "/api/endpoints?slave=Not%20A%20Slave&offset=-5", 422),
            (Method::DELETE, "/api/slaves/nobody?purge=maybe", 400),
            (Method::GET, "/api/reports/security-status?slave=Bad%20Name", 400),
            (Method::GET, "/api/reports/security-status?slave=nobody", 409),
            (Method::GET, "/api/reports/weather", 404),
        ],
    )
    .await;
    let after = snapshot(&master.state.pool).await;
    assert!(changed(&before, &after).is_empty(), "refused requests changed {:?}", changed(&before, &after));

    master.stop(&[]).await;

    // The report service's own API.
    let namespace = rampart_tests::namespace();
    let report = TestReport::spawn(&namespace).await;
    let report_server = |path: &str| format!("{}{path}", report.base);
    for (path, auth, status) in [
        ("/api/status", None, 401),
        ("/api/reports/security-status", Some("wrong-token-0123456789"), 401),
        ("/api/reports/weather", Some(rampart_tests::TOKEN), 404),
        ("/api/reports/security-status?format=pdf", Some(rampart_tests::TOKEN), 400),
        ("/api/reports/security-status?colour=red", Some(rampart_tests::TOKEN), 400),
        ("/api/reports/security-status?slave=nobody", Some(rampart_tests::TOKEN), 404),
        ("/api/nothing", Some(rampart_tests::TOKEN), 404),
    ] {
        let mut call = report.http.get(report_server(path));
        if let Some(token) = auth {
            call = call.bearer_auth(token);
        }
        let response = call.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "report service {path}");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(body["error"]["message"].is_string(), "report service {path}: {body}");
    }
    report.stop().await;
    let topology =
        rampart_shared::topology::Topology::new(&rampart_shared::topology::NameSegment::parse(&namespace).unwrap());
    rampart_tests::teardown_namespace(&topology, &[topology.report_events_queue()]).await;
}
