//! The report service end to end: a master publishes aggregated events after
//! each replication batch, the report service keeps its read model, and the
//! consolidated numbers equal what each slave's own database says, after
//! changes, redeliveries, forged events and a rebuild from scratch.

use rampart_shared::{
    amqp::publisher::Outgoing,
    report::events::{kind, SiteSummary, SlaveHealth, SlaveSummary, StatusCounts},
    signing::SigningKey,
    topology::Topology,
    Envelope,
};
use rampart_tests::{
    hierarchy::{insert_endpoints, register},
    inject,
    report::{TestReport, EVENT_KEY},
    wait_for, ServerOptions, TestServer,
};
use serde_json::{json, Value};

/// What a slave's own database says, in the report's terms.
async fn truth(site: &TestServer, task: &str) -> Value {
    let client = site.state.pool.get().await.unwrap();
    let s = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE status = 'protected'), count(*) FILTER (WHERE status = 'at_risk'),
                    count(*) FILTER (WHERE status = 'infected'), count(*) FILTER (WHERE status = 'unprotected'),
                    count(*) FILTER (WHERE NOT licensed), count(*) FILTER (WHERE licensed) FROM endpoints",
            &[],
        )
        .await
        .unwrap();
    let detections: i64 = client.query_one("SELECT count(*) FROM detections", &[]).await.unwrap().get(0);
    let task_id: uuid::Uuid = task.parse().unwrap();
    let t = client
        .query_one(
            "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'succeeded'),
                    count(*) FILTER (WHERE state = 'failed') FROM task_results WHERE task_id = $1",
            &[&task_id],
        )
        .await
        .unwrap();
    json!({"total": s.get::<_, i64>(0), "protected": s.get::<_, i64>(1), "at_risk": s.get::<_, i64>(2),
           "infected": s.get::<_, i64>(3), "unprotected": s.get::<_, i64>(4), "unlicensed": s.get::<_, i64>(5),
           "used": s.get::<_, i64>(6), "detections": detections,
           "task": [t.get::<_, i64>(0), t.get::<_, i64>(1), t.get::<_, i64>(2)]})
}

/// The same numbers, as the consolidated reports give them for `site`.
async fn reported(report: &TestReport, site: &str, task: &str) -> Value {
    let status = report.report("security-status").await;
    let row = status["sites"].as_array().unwrap().iter().find(|s| s["site"] == site).cloned().unwrap_or(Value::Null);
    let malware = report.report("malware").await;
    let detections =
        malware["sites"].as_array().unwrap().iter().find(|s| s["site"] == site).map(|s| s["detections"].clone());
    let licenses = report.report("licenses").await;
    let used = licenses["sites"].as_array().unwrap().iter().find(|s| s["site"] == site).map(|s| {
        if s["license"].is_null() {
            json!(0)
        } else {
            s["license"]["used"].clone()
        }
    });
    let tasks = report.report("tasks").await;
    let t = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["site"] == site && t["task_id"] == task)
        .cloned()
        .unwrap_or(Value::Null);
    json!({"total": row["total"], "protected": row["protected"], "at_risk": row["at_risk"], "infected": row["infected"],
           "unprotected": row["unprotected"], "unlicensed": row["unlicensed"], "used": used, "detections": detections,
           "task": [t["pending"], t["succeeded"], t["failed"]]})
}

/// Waits until every site's reported numbers equal its own database's.
async fn wait_until_reports_match(report: &TestReport, sites: &[&TestServer], task: &str) {
    for site in sites {
        let name = site.options.instance.as_str();
        let expected = truth(site, task).await;
        let mut last = Value::Null;
        let matched = tokio::time::timeout(rampart_tests::WAIT, async {
            loop {
                last = reported(report, name, task).await;
                if last == expected {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
        .await;
        assert!(matched.is_ok(), "{name}: the report says {last} but the slave's database says {expected}");
    }
}

/// Detections and statuses of a few endpoints of `site`, straight in its database.
async fn infect(site: &TestServer, prefix: &str, endpoints: i64, per_endpoint: i64, malware: &str) {
    let client = site.state.pool.get().await.unwrap();
    client
        .execute(
            "INSERT INTO detections (detection_id, endpoint_id, malware, path, action, detected_at)
             SELECT gen_random_uuid(), format('%s-%s', $1::text, lpad(e::text, 5, '0')), $4, 'C:\\x.exe', 'quarantined',
                    now() - make_interval(hours => d::int)
               FROM generate_series(0, $2::bigint - 1) e, generate_series(1, $3::bigint) d",
            &[&prefix, &endpoints, &per_endpoint, &malware],
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE endpoints SET status = 'infected', active_threats = $3
              WHERE id IN (SELECT format('%s-%s', $1::text, lpad(e::text, 5, '0')) FROM generate_series(0, $2::bigint - 1) e)",
            &[&prefix, &endpoints, &(per_endpoint as i32)],
        )
        .await
        .unwrap();
}

async fn replicate_now(master: &TestServer) {
    let (status, body) = master.post("/api/replication/now", json!({})).await;
    assert!(status.is_success(), "{body}");
}

/// Strips what legitimately differs between two builds of the same data.
fn numbers(mut report: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for key in ["generated_at", "as_of", "last_seen", "source"] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut report);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consolidated_reports_equal_the_slaves_databases() {
    let namespace = rampart_tests::namespace();
    let report = TestReport::spawn(&namespace).await;
    let master = TestServer::spawn(report.master_options()).await;
    let vendor =
        rampart_shared::license::VendorKey::from_hex(include_str!("../../ops/license/vendor-dev.key")).unwrap();
    let today = chrono::Utc::now().date_naive();
    let key = rampart_shared::license::License {
        license_id: uuid::Uuid::new_v4(),
        customer: "Paris Ltd".into(),
        seats: 30,
        issued_on: today,
        expires_on: today + chrono::Days::new(90),
    }
    .issue(&vendor);
    let mut paris = ServerOptions::site("paris", &namespace);
    paris.extra_xml = format!("<License><Key>{key}</Key></License>");
    let paris = TestServer::spawn(paris).await;
    let lyon = TestServer::spawn(ServerOptions::site("lyon", &namespace)).await;
    insert_endpoints(&paris, "paris", 40).await;
    insert_endpoints(&lyon, "lyon", 25).await;
    rampart_server::licensing::assign_seats(&paris.state.pool.get().await.unwrap()).await.unwrap();
    infect(&paris, "paris", 4, 3, "Trojan.Agent").await;
    infect(&lyon, "lyon", 2, 1, "Worm.Conficker").await;
    lyon.state.pool.get().await.unwrap()
        .execute("UPDATE endpoints SET status = 'at_risk', signatures_date = current_date - 12 WHERE id IN ('lyon-00010', 'lyon-00011')", &[])
        .await
        .unwrap();
    register(&master, &paris).await;
    register(&master, &lyon).await;

    // A task from the master; some computers finish it.
    let (status, task) = master
        .post("/api/tasks", json!({"kind": "quick_scan", "name": "Weekly scan", "target": {"slaves": "all"}}))
        .await;
    assert_eq!(status, 201, "{task}");
    let task_id = task["id"].as_str().unwrap().to_owned();
    for (site, done, failed) in [(&paris, 10, 2), (&lyon, 5, 0)] {
        let task_id: uuid::Uuid = task_id.parse().unwrap();
        let client = site.state.pool.get().await.unwrap();
        wait_for("the master's task on the slave", || async {
            let n: i64 = client
                .query_one("SELECT count(*) FROM task_results WHERE task_id = $1", &[&task_id])
                .await
                .unwrap()
                .get(0);
            (n > 0).then_some(())
        })
        .await;
        client
            .execute(
                "UPDATE task_results SET state = CASE WHEN rn <= $2::bigint THEN 'succeeded' ELSE 'failed' END
                   FROM (SELECT endpoint_id, row_number() OVER (ORDER BY endpoint_id) AS rn FROM task_results WHERE task_id = $1) r
                  WHERE task_results.task_id = $1 AND task_results.endpoint_id = r.endpoint_id AND r.rn <= $2::bigint + $3::bigint",
                &[&task_id, &(done as i64), &(failed as i64)],
            )
            .await
            .unwrap();
    }
    replicate_now(&master).await;
    wait_until_reports_match(&report, &[&paris, &lyon], &task_id).await;

    let total = report.report("security-status").await["total"].clone();
    assert_eq!(
        total,
        json!({"total": 65, "protected": 57, "at_risk": 2, "infected": 6, "unprotected": 0, "unlicensed": 35})
    );
    let malware = report.report("malware").await;
    assert_eq!(malware["total_detections"], 14);
    assert_eq!(malware["top_threats"][0]["malware"], "Trojan.Agent");
    assert_eq!(malware["most_infected"][0]["detections"], 3);
    let updates = report.report("updates").await;
    assert_eq!(updates["total"], json!([63, 0, 0, 2, 0, 0]), "{updates}");
    let licenses = report.report("licenses?slave=paris").await;
    assert_eq!((licenses["seats"].as_i64(), licenses["used"].as_i64()), (Some(30), Some(30)), "{licenses}");
    let health = report.report("health").await;
    let slaves: Vec<&str> = health["slaves"].as_array().unwrap().iter().map(|s| s["slave"].as_str().unwrap()).collect();
    assert_eq!(slaves, ["lyon", "paris"]);
    assert!(health["slaves"][0]["replicated_at"].is_string(), "{health}");

    // Changes on the slaves reach the reports.
    infect(&lyon, "lyon", 5, 2, "Ransom.Locky").await;
    paris
        .state
        .pool
        .get()
        .await
        .unwrap()
        .execute("DELETE FROM endpoints WHERE id >= 'paris-00035'", &[])
        .await
        .unwrap();
    paris
        .state
        .pool
        .get()
        .await
        .unwrap()
        .execute("UPDATE endpoints SET status = 'unprotected' WHERE id = 'paris-00020'", &[])
        .await
        .unwrap();
    replicate_now(&master).await;
    wait_until_reports_match(&report, &[&paris, &lyon], &task_id).await;

    // Redelivered, stale and forged events change nothing.
    let before = numbers(report.report("overview").await);
    let stored_seq: i64 = report
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT LEAST(health_seq, site_seq, tasks_seq) FROM slaves WHERE slave_id = 'paris'", &[])
        .await
        .unwrap()
        .get(0);
    let bogus = |seq: i64| SlaveSummary {
        slave: "paris".into(),
        seq,
        as_of: chrono::Utc::now(),
        site: Some(SiteSummary {
            endpoints: StatusCounts { total: 999, protected: 999, ..Default::default() },
            ..Default::default()
        }),
        tasks: vec![],
        tasks_complete: true,
        health: SlaveHealth {
            slave: "paris".into(),
            state: "removed".into(),
            version: None,
            last_seen: None,
            replicated_at: None,
            synced_as_of: None,
            rows_behind: None,
            batches_refused: 0,
        },
    };
    let exchange = master.topology().events_exchange();
    let event = |body: &SlaveSummary, key: &str| {
        let envelope = Envelope::new(kind::SLAVE_SUMMARY, "hq", 1, body);
        Outgoing::envelope(
            exchange.clone(),
            Topology::event_key(kind::SLAVE_SUMMARY),
            &envelope,
            Some(&SigningKey::from_secret(key)),
        )
    };
    let applied_before = report.status().await["events"]["applied"].as_u64().unwrap();
    let refused_before = report.status().await["events"]["dead_lettered"].as_u64().unwrap();
    inject(vec![
        event(&bogus(stored_seq), EVENT_KEY),
        event(&bogus(1), EVENT_KEY),
        event(&bogus(stored_seq + 1_000_000), "not-the-event-key-0000"),
    ])
    .await;
    wait_for("the injected events to be consumed", || async {
        let s = report.status().await;
        (s["events"]["applied"].as_u64().unwrap() >= applied_before + 2
            && s["events"]["dead_lettered"].as_u64().unwrap() > refused_before)
            .then_some(())
    })
    .await;
    let after = numbers(report.report("overview").await);
    for part in ["security_status", "malware", "updates", "tasks", "licenses"] {
        assert_eq!(after[part], before[part], "stale or forged events changed the {part} report");
    }
    let paris_health = |o: &Value| {
        o["health"]["slaves"].as_array().unwrap().iter().find(|s| s["slave"] == "paris").unwrap()["state"].clone()
    };
    assert_eq!(paris_health(&after), "online", "a stale event marked paris removed");

    // Through the master's API, in every format.
    let (status, body) = master.get("/api/reports/security-status?format=csv").await;
    assert_eq!(status, 200, "{body}");
    let csv = body.as_str().unwrap();
    assert!(csv.lines().any(|l| l.starts_with("paris,35,")), "{csv}");
    let html = master
        .http
        .get(format!("{}/api/reports/overview?format=html", master.base))
        .bearer_auth(rampart_tests::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(html.headers()["content-type"], "text/html; charset=utf-8");
    let html = html.text().await.unwrap();
    assert!(
        html.contains("<svg") && html.contains("lyon") && !html.contains("https://"),
        "an HTML page with inline charts"
    );
    let (status, one) = master.get("/api/reports/security-status?slave=lyon").await;
    assert_eq!((status.as_u16(), one["sites"].as_array().map(Vec::len)), (200, Some(1)), "{one}");
    let (status, _) = master.get("/api/reports/security-status?slave=nowhere").await;
    assert_eq!(status, 404);
    let (status, body) = master.get("/api/reports/weather").await;
    assert_eq!(status, 404, "{body}");

    // Rebuilt from scratch by a full resend: the same state.
    let database = report.halt().await;
    rampart_shared::db::drop_database(&database).await.unwrap();
    let rebuilt = TestReport::spawn(&namespace).await;
    let (status, body) = master.post("/api/reports/resend", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let log = master.get_ok("/api/activity?object=report-service").await;
    assert_eq!(
        (log[0]["action"].as_str(), log[0]["after"]["slaves"].as_i64()),
        (Some("reports.resend"), Some(2)),
        "{log}"
    );
    let after = wait_for("the rebuilt reports to match", || async {
        let now = numbers(rebuilt.report("overview").await);
        (now["security_status"] == before["security_status"] && now["tasks"] == before["tasks"]).then_some(now)
    })
    .await;
    for part in ["security_status", "malware", "updates", "tasks", "licenses"] {
        assert_eq!(after[part], before[part], "{part} differs after the rebuild");
    }

    rebuilt.stop().await;
    paris.stop(&[]).await;
    lyon.stop(&[]).await;
    master.stop(&[]).await;
}
