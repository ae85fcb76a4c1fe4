//! A stand-alone server managing a simulated fleet over the real broker.

use rampart_shared::license::{License, VendorKey};
use rampart_tests::{enrolled::EnrolledAgent, wait_for, ServerOptions, TestAgent, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

fn endpoints_of(list: &Value) -> &Vec<Value> {
    list["endpoints"].as_array().expect("endpoint list")
}

#[tokio::test]
async fn a_fleet_enrolls_and_a_scan_task_completes_on_every_endpoint() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let agent = TestAgent::spawn(&server, 300, |s| s.unmanaged = 5);
    server.wait_for_endpoints(300).await;

    let list = server.get_ok("/api/endpoints?limit=1000").await;
    let endpoints = endpoints_of(&list);
    assert_eq!(endpoints.len(), 300);
    assert!(endpoints.iter().all(|e| e["online"] == true && e["group"] == "Default"));
    let dashboard = server.get_ok("/api/dashboard").await;
    let c = &dashboard["endpoints"];
    let by_status: i64 =
        ["protected", "at_risk", "infected", "unprotected"].iter().map(|k| c[k].as_i64().unwrap()).sum();
    assert_eq!(by_status, 300, "every endpoint has a status: {dashboard}");
    let tree = server.get_ok("/api/tree?view=network").await;
    assert_eq!(tree["root"]["children"][0]["endpoints"].as_array().unwrap().len(), 300);

    let (status, task) =
        server.post("/api/tasks", json!({"name": "Scan all", "kind": "quick_scan", "target": {"all": true}})).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let id = task["id"].as_str().unwrap().to_owned();
    assert_eq!(task["progress"]["total"], 300);
    let done = server.wait_for_field(&format!("/api/tasks/{id}"), "state", "completed").await;
    assert_eq!(done["progress"]["succeeded"], 300, "{}", done["progress"]);
    let results = done["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["state"] == "succeeded" && r["scanned_files"].as_i64().unwrap() > 0));

    // Network audit sees the unmanaged computers; deploying to one makes it an endpoint.
    let audit = wait_for("discovered computers", || async {
        let audit = server.get_ok("/api/audit").await;
        (audit["summary"]["discovered"] == 5).then_some(audit)
    })
    .await;
    let target = audit["computers"][0]["computer_id"].as_str().unwrap().to_owned();
    let (status, deployed) = server.post("/api/deployments", json!({"computers": [target]})).await;
    assert_eq!(status, StatusCode::CREATED, "{deployed}");
    server.wait_for_endpoints(301).await;
    wait_for("deployment status to say succeeded", || async {
        let list = server.get_ok("/api/deployments").await;
        (list[0]["state"] == "succeeded").then_some(())
    })
    .await;
    let (status, body) = server.post("/api/deployments", json!({"computers": [target]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("already managed"));

    let queue = agent.stop().await;
    server.stop(&[queue]).await;
}

#[tokio::test]
async fn a_policy_change_reaches_every_agent() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let agent = TestAgent::spawn(&server, 200, |_| {});
    server.wait_for_endpoints(200).await;

    let (status, policy) =
        server.post("/api/policies", json!({"name": "Kiosk", "settings": {"realtime_protection": false}})).await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    let id = policy["id"].as_str().unwrap().to_owned();
    let (status, body) = server.post(&format!("/api/policies/{id}/assignments"), json!({"target": "all"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let applied = |version: i64, realtime: bool| {
        let server = &server;
        let id = id.clone();
        async move {
            let list = server.get_ok("/api/endpoints?limit=1000").await;
            endpoints_of(&list)
                .iter()
                .all(|e| {
                    e["applied_policy"]["id"] == id.as_str()
                        && e["applied_policy"]["version"] == version
                        && e["realtime_protection"] == realtime
                })
                .then_some(list)
        }
    };
    let list = wait_for("every agent to apply the policy", || applied(1, false)).await;
    assert!(endpoints_of(&list).iter().all(|e| e["status"] == "unprotected" || e["status"] == "infected"));
    let shown = server.get_ok(&format!("/api/policies/{id}")).await;
    assert_eq!(shown["endpoints"], json!({"assigned": 200, "applied": 200}));

    // A new version replaces the old one on every endpoint.
    let (status, edited) = server
        .call(
            reqwest::Method::PATCH,
            &format!("/api/policies/{id}"),
            Some(json!({"settings": {"realtime_protection": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["version"], 2);
    wait_for("every agent to apply version 2", || applied(2, true)).await;

    let queue = agent.stop().await;
    server.stop(&[queue]).await;
}

/// Two fleets enrolled for real (own broker users, queues declared by the
/// site and bound to their own endpoints, identities required): a policy
/// and a scan reach every endpoint of both, and a computer one of them
/// discovered, once deployed, becomes its endpoint.
#[tokio::test]
async fn a_policy_and_a_scan_reach_every_enrolled_fleet() {
    let server = TestServer::spawn(ServerOptions::standalone().with_agent_identities()).await;
    let north = EnrolledAgent::spawn(&server, 60, |s| {
        s.name = rampart_shared::topology::NameSegment::parse("north").unwrap();
        s.unmanaged = 3;
    })
    .await;
    let south =
        EnrolledAgent::spawn(&server, 40, |s| s.name = rampart_shared::topology::NameSegment::parse("south").unwrap())
            .await;
    server.wait_for_endpoints(100).await;

    let (status, policy) =
        server.post("/api/policies", json!({"name": "Kiosk", "settings": {"realtime_protection": false}})).await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    let id = policy["id"].as_str().unwrap().to_owned();
    let (status, body) = server.post(&format!("/api/policies/{id}/assignments"), json!({"target": "all"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for("every enrolled endpoint to apply the policy", || async {
        let list = server.get_ok("/api/endpoints?limit=1000").await;
        endpoints_of(&list)
            .iter()
            .all(|e| e["applied_policy"]["id"] == id.as_str() && e["realtime_protection"] == false)
            .then_some(())
    })
    .await;

    let (status, task) =
        server.post("/api/tasks", json!({"name": "Scan all", "kind": "quick_scan", "target": {"all": true}})).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let done =
        server.wait_for_field(&format!("/api/tasks/{}", task["id"].as_str().unwrap()), "state", "completed").await;
    assert_eq!(done["progress"]["succeeded"], 100, "{}", done["progress"]);
    assert_eq!(north.agent.refusals.snapshot(), (0, 0, 0, 0));

    // A computer north reported, deployed by the site, becomes north's:
    // the deploy command reaches north's queue, the new endpoint reports.
    let target = "north-u0001";
    wait_for("north's discovered computers", || async {
        let audit = server.get_ok("/api/audit").await;
        audit["computers"].as_array()?.iter().any(|c| c["computer_id"] == target).then_some(())
    })
    .await;
    let (status, deployed) = server.post("/api/deployments", json!({"computers": [target]})).await;
    assert_eq!(status, StatusCode::CREATED, "{deployed}");
    server.wait_for_endpoints(101).await;
    let shown = server.get_ok(&format!("/api/agents/{}", north.agent_id)).await;
    assert!(shown["owned_endpoints"].as_array().unwrap().iter().any(|e| e == target), "{shown}");
    assert_eq!(server.get_ok("/api/refused-messages").await["total"], 0, "nothing refused for identity");

    north.stop(&server).await;
    south.stop(&server).await;
    server.stop(&[]).await;
}

/// A measurement, not a gate (run with `--ignored --nocapture`): enrolling
/// one 10,000-endpoint fleet (10,000 queue bindings made by the site) and
/// its first heartbeats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn ten_thousand_endpoints_enrol_as_one_identity() {
    let server = TestServer::spawn(ServerOptions::standalone().with_agent_identities()).await;
    let started = std::time::Instant::now();
    let fleet = EnrolledAgent::spawn(&server, 10_000, |a| a.heartbeat_interval = Duration::from_secs(300)).await;
    let enrolment = started.elapsed();
    server.wait_for_endpoints(10_000).await;
    println!("Enrolled 10,000 endpoints in {enrolment:.2?}; all reported in {:.2?}.", started.elapsed());
    fleet.stop(&server).await;
    server.stop(&[]).await;
}

#[tokio::test]
async fn endpoints_beyond_the_seats_are_unlicensed_not_dropped() {
    let vendor = VendorKey::from_hex(include_str!("../../ops/license/vendor-dev.key")).unwrap();
    let today = chrono::Utc::now().date_naive();
    let license = |seats: u32, expires_on: chrono::NaiveDate| {
        License { license_id: uuid::Uuid::new_v4(), customer: "Test".into(), seats, issued_on: today, expires_on }
            .issue(&vendor)
    };
    let mut options = ServerOptions::standalone();
    options.extra_xml = format!("<License><Key>{}</Key></License>", license(100, today + chrono::Days::new(30)));
    let server = TestServer::spawn(options).await;
    let agent = TestAgent::spawn(&server, 150, |_| {});
    server.wait_for_endpoints(150).await;

    let summary = wait_for("seats to be assigned", || async {
        let l = server.get_ok("/api/license").await;
        (l["used"] == 100 && l["unlicensed"] == 50).then_some(l)
    })
    .await;
    assert_eq!(summary["state"], "valid");
    assert_eq!(summary["seats"], 100);
    let unlicensed = server.get_ok("/api/endpoints?licensed=false&limit=1000").await;
    assert_eq!(unlicensed["total"], 50);

    // Forged and expired keys are refused and change nothing.
    let genuine = license(500, today + chrono::Days::new(30));
    let forged = genuine.replace("RAMPART1.", "RAMPART1.x");
    for (key, why) in [
        (forged, "signature does not match"),
        ("hello".to_owned(), "format"),
        (license(500, today - chrono::Days::new(1)), "expired"),
        (
            License {
                license_id: uuid::Uuid::new_v4(),
                customer: "X".into(),
                seats: 9999,
                issued_on: today,
                expires_on: today + chrono::Days::new(9),
            }
            .issue(&VendorKey::generate()),
            "signature",
        ),
    ] {
        let (status, body) = server.call(reqwest::Method::PUT, "/api/license", Some(json!({"key": key}))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(why), "{why}: {body}");
    }
    assert_eq!(server.get_ok("/api/license").await["seats"], 100);

    // More seats license everyone.
    let (status, body) = server.call(reqwest::Method::PUT, "/api/license", Some(json!({"key": genuine}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unlicensed"], 0);
    assert_eq!(body["used"], 150);

    let queue = agent.stop().await;
    server.stop(&[queue]).await;
}

/// The seats in use are kept as endpoints are written, not counted at each
/// read: whatever writes the endpoints table (enrolments, deletions made in
/// the database, license changes, many small statements, `TRUNCATE`, even
/// while a read folds the counts), the license shows what a count of the
/// table says.
#[tokio::test]
async fn the_seats_shown_follow_every_write_of_the_endpoints() {
    let vendor = VendorKey::from_hex(include_str!("../../ops/license/vendor-dev.key")).unwrap();
    let today = chrono::Utc::now().date_naive();
    let key = License {
        license_id: uuid::Uuid::new_v4(),
        customer: "Test".into(),
        seats: 40,
        issued_on: today,
        expires_on: today + chrono::Days::new(30),
    }
    .issue(&vendor);
    let mut options = ServerOptions::standalone();
    options.extra_xml = format!("<License><Key>{key}</Key></License>");
    let server = TestServer::spawn(options).await;
    // The agents send one heartbeat each, then one showing the policy they
    // were sent applied (the built-in default shows as version 0), and
    // nothing more for the test's length (no periodic round within it, no
    // unmanaged computers to discover): once every policy shows applied,
    // the server writes no endpoint row while the test does (two
    // statements locking many rows each could deadlock).
    let agent = TestAgent::spawn(&server, 120, |settings| {
        settings.heartbeat_interval = Duration::from_secs(86_400);
        settings.unmanaged = 0;
    });
    server.wait_for_endpoints(120).await;
    let database_url = server.options.database_url();
    let connect = || rampart_tests::connect_database(&database_url);
    let db = connect().await;
    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    wait_for("every endpoint to show its policy applied", || async {
        let waiting = count(
            "SELECT count(*) FROM endpoints
              WHERE applied_policy_id IS DISTINCT FROM policy_id
                 OR applied_policy_version IS DISTINCT FROM coalesce(policy_version, 0)",
        )
        .await;
        (waiting == 0).then_some(())
    })
    .await;
    let queue = agent.stop().await;
    let shown_and_counted = || async {
        let shown = server.get_ok("/api/license").await;
        let counted = db
            .query_one(
                "SELECT count(*) FILTER (WHERE licensed), count(*) FILTER (WHERE NOT licensed) FROM endpoints",
                &[],
            )
            .await
            .unwrap();
        (
            (shown["used"].as_i64().unwrap(), shown["unlicensed"].as_i64().unwrap()),
            (counted.get::<_, i64>(0), counted.get::<_, i64>(1)),
        )
    };
    let (shown, counted) = wait_for("seats to be assigned", || async {
        let (shown, counted) = shown_and_counted().await;
        (shown == (40, 80)).then_some((shown, counted))
    })
    .await;
    assert_eq!(shown, counted);

    // Deleted in the database: ten unlicensed, ten licensed (their seats
    // stay free until the next assignment).
    for licensed in [false, true] {
        db.execute(
            "DELETE FROM endpoints WHERE id IN (SELECT id FROM endpoints WHERE licensed = $1 ORDER BY id LIMIT 10)",
            &[&licensed],
        )
        .await
        .unwrap();
    }
    let (shown, counted) = shown_and_counted().await;
    assert_eq!(shown, (30, 70));
    assert_eq!(shown, counted);

    // The key installed again assigns the free seats: ten flags turn.
    let (status, body) = server.call(reqwest::Method::PUT, "/api/license", Some(json!({"key": key}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["used"].as_i64(), body["unlicensed"].as_i64()), (Some(40), Some(60)));
    assert_eq!(shown_and_counted().await.1, (40, 60));

    // A hundred one-row statements: the counts stay right, and their rows
    // of differences are folded instead of piling up.
    for _ in 0..50 {
        db.execute("DELETE FROM endpoints WHERE id = (SELECT id FROM endpoints ORDER BY id LIMIT 1)", &[])
            .await
            .unwrap();
        db.execute(
            "UPDATE endpoints SET licensed = NOT licensed
              WHERE id = (SELECT id FROM endpoints ORDER BY id DESC LIMIT 1)",
            &[],
        )
        .await
        .unwrap();
    }
    let (shown, counted) = shown_and_counted().await;
    assert_eq!(shown, counted);
    assert_eq!(shown.0 + shown.1, 50);
    assert_eq!(
        count("SELECT count(*) FROM seat_counts").await,
        1,
        "the counts' rows are folded into one once they pile up"
    );
    assert_eq!(shown_and_counted().await.0, counted);

    // Emptied while a read folds the counts: the TRUNCATE waits for the
    // fold, and the sum the fold wrote goes with the rest.
    let folding = connect().await;
    folding
        .batch_execute(
            "BEGIN; WITH folded AS (DELETE FROM seat_counts RETURNING used, unlicensed)
                    INSERT INTO seat_counts (used, unlicensed) SELECT sum(used), sum(unlicensed) FROM folded",
        )
        .await
        .unwrap();
    let emptying = connect().await;
    let truncate = tokio::spawn(async move { emptying.batch_execute("TRUNCATE endpoints CASCADE").await });
    wait_for("the TRUNCATE to wait for the fold", || async {
        let waiting = count(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'TRUNCATE endpoints%'",
        )
        .await;
        (waiting == 1).then_some(())
    })
    .await;
    folding.batch_execute("COMMIT").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), truncate).await.expect("the TRUNCATE ends").unwrap().unwrap();
    assert_eq!(shown_and_counted().await, ((0, 0), (0, 0)));
    server.stop(&[queue]).await;
}

/// A measurement, not a gate (run with `--ignored --nocapture`): how long a
/// server takes to enroll a 10,000-endpoint fleet from one agent process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run explicitly"]
async fn ten_thousand_endpoints_enroll() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let started = std::time::Instant::now();
    let agent = TestAgent::spawn(&server, 10_000, |a| a.heartbeat_interval = Duration::from_secs(300));
    server.wait_for_endpoints(10_000).await;
    let enrolled = started.elapsed();
    let status = server.get_ok("/api/status").await;
    println!("10,000 endpoints enrolled in {enrolled:.2?}; status: {}", status["endpoints"]);
    let queue = agent.stop().await;
    server.stop(&[queue]).await;
}
