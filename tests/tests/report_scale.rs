//! The report service's own speed at a large hierarchy's size (ignored by
//! default, a measurement): summaries of 100 slaves of 10,000 computers each,
//! injected as the master would publish them, then each report timed.

use rampart_shared::{
    amqp::publisher::Outgoing,
    report::events::{kind, SiteSummary, SlaveHealth, SlaveSummary, StatusCounts},
    signing::SigningKey,
    topology::Topology,
    Envelope,
};
use rampart_tests::{
    inject,
    report::{TestReport, EVENT_KEY},
};

/// One slave's summary as a large site would send it: 10,000 computers, a
/// year of daily detections, 50 threats, 20 infected computers, 30
/// signature dates and 20 tasks.
fn large_summary(slave: &str, seq: i64) -> SlaveSummary {
    use chrono::Duration;
    use rampart_shared::report::events::{
        DateCount, DayCount, InfectedEndpoint, LicenseUsage, TaskOutcome, ThreatCount,
    };
    let now = chrono::Utc::now();
    let today = now.date_naive();
    SlaveSummary {
        slave: slave.into(),
        seq,
        as_of: now,
        site: Some(SiteSummary {
            endpoints: StatusCounts {
                total: 10_000,
                protected: 9_000,
                at_risk: 600,
                infected: 300,
                unprotected: 100,
                unlicensed: 50,
            },
            signatures: (0..30)
                .map(|d| DateCount { date: Some(today - Duration::days(d)), endpoints: 10_000 / 30 })
                .collect(),
            detections_daily: (0..365)
                .map(|d| DayCount { day: today - Duration::days(d), detections: 40 + d % 7 })
                .collect(),
            threats: (0..50)
                .map(|t| ThreatCount {
                    malware: format!("Threat.{t}"),
                    detections: 500 - t,
                    endpoints: 100,
                    last_detected: now,
                })
                .collect(),
            most_infected: (0..20)
                .map(|e| InfectedEndpoint {
                    endpoint_id: format!("{slave}-{e:05}"),
                    hostname: Some(format!("pc-{e}")),
                    detections: 30 - e,
                    active_threats: 1,
                    last_detected: now,
                })
                .collect(),
            license: Some(LicenseUsage {
                customer: slave.into(),
                seats: 12_000,
                used: 9_950,
                expires_on: today + Duration::days(200),
            }),
        }),
        tasks: (0..20)
            .map(|t| TaskOutcome {
                task_id: uuid::Uuid::from_u128(t),
                name: Some(format!("Task {t}")),
                kind: Some("quick_scan".into()),
                pending: 10,
                running: 5,
                succeeded: 9_900,
                failed: 80,
                cancelled: 5,
                detections: 3,
            })
            .collect(),
        tasks_complete: true,
        health: SlaveHealth {
            slave: slave.into(),
            state: "online".into(),
            version: Some("0.1.0".into()),
            last_seen: Some(now),
            replicated_at: Some(now),
            synced_as_of: Some(now),
            rows_behind: Some(0),
            batches_refused: 0,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: cargo test -p rampart-tests --test main million -- --ignored --nocapture"]
async fn a_report_over_a_million_endpoints_in_100_slaves() {
    let namespace = rampart_tests::namespace();
    let report = TestReport::spawn(&namespace).await;
    let exchange = Topology::new(&rampart_shared::topology::NameSegment::parse(&namespace).unwrap()).events_exchange();
    let key = SigningKey::from_secret(EVENT_KEY);
    let events: Vec<Outgoing> = (0..100)
        .map(|i| {
            let envelope = Envelope::new(kind::SLAVE_SUMMARY, "hq", 1, &large_summary(&format!("site-{i:03}"), i + 1));
            Outgoing::envelope(exchange.clone(), Topology::event_key(kind::SLAVE_SUMMARY), &envelope, Some(&key))
        })
        .collect();
    inject(events).await;
    report.wait_for_status("1M endpoints in 100 slaves", |r| r["total"]["total"] == 1_000_000).await;
    for (path, format) in [("security-status", "json"), ("overview", "json"), ("overview", "html"), ("malware", "csv")]
    {
        let mut times = Vec::new();
        for _ in 0..20 {
            let started = std::time::Instant::now();
            let url = format!("{}/api/reports/{path}?format={format}", report.base);
            let body =
                report.http.get(&url).bearer_auth(rampart_tests::TOKEN).send().await.unwrap().bytes().await.unwrap();
            times.push((started.elapsed(), body.len()));
        }
        times.sort();
        println!(
            "{path} as {format}: median {:?}, max {:?}, {} bytes (20 requests, 100 slaves, 1,000,000 endpoints)",
            times[10].0, times[19].0, times[10].1
        );
    }
    let topology = Topology::new(&rampart_shared::topology::NameSegment::parse(&namespace).unwrap());
    report.stop().await;
    rampart_tests::teardown_namespace(&topology, &[topology.report_events_queue()]).await;
}
