//! Scheduled reports on a stand-alone: a file in the configured directory
//! and the same report by e-mail (over STARTTLS, the relay's CA named in
//! `ca_file`) through the stored SMTP settings; refused
//! on a master; a site's own reports on request.

use std::time::Duration;

use rampart_tests::{
    hierarchy::insert_endpoints,
    smtp::{ca::TestCa, Options, SmtpSink},
    wait_for, ServerOptions, TestServer,
};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_writes_the_report_and_mails_it() {
    let directory = std::env::temp_dir().join(format!("rampart-reports-{}", uuid::Uuid::new_v4().simple()));
    let mut options = ServerOptions::standalone();
    options.extra_xml = format!("<Reports><Directory>{}</Directory></Reports>", directory.display());
    let site = TestServer::spawn(options).await;
    insert_endpoints(&site, "ep", 12).await;
    site.state
        .pool
        .get()
        .await
        .unwrap()
        .execute("UPDATE endpoints SET status = 'infected' WHERE id < 'ep-00003'", &[])
        .await
        .unwrap();

    // Mail asked before any e-mail settings exist: refused, nothing created.
    let schedule = json!({"name": "daily-status", "kind": "security-status", "format": "csv", "every_seconds": 3600, "email": true});
    let (status, body) = site.post("/api/reports/schedules", schedule.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("e-mail settings"), "{body}");
    for (bad, what) in [
        (json!({"name": "x", "kind": "weather", "every_seconds": 60}), "unknown report"),
        (json!({"name": "x", "kind": "malware", "every_seconds": 5}), "at least 60"),
        (json!({"name": "x", "kind": "malware", "daily_at": "7h"}), "HH:MM"),
    ] {
        let (status, body) = site.post("/api/reports/schedules", bad).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(what), "{body}");
    }

    // A relay with a certificate from a private CA, named in the settings.
    let ca = TestCa::new();
    let sink = SmtpSink::start_with(Options { tls: Some(ca.acceptor()), ..Options::default() }).await;
    let (status, body) = site
        .call(
            reqwest::Method::PUT,
            "/api/settings/email",
            Some(json!({"smtp_host": "127.0.0.1", "smtp_port": sink.port, "from": "rampart@example.com",
              "to": ["soc@example.com"], "tls": "starttls", "ca_file": ca.ca_file})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["tls"], &body["starttls"]), (&json!("starttls"), &json!(true)), "{body}");
    assert_eq!(body["ca_file"], json!(ca.ca_file), "{body}");
    let (status, created) = site.post("/api/reports/schedules", schedule).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, _) = site.post(&format!("/api/reports/schedules/{id}/run"), json!({})).await;
    assert_eq!(status, 200);

    let run: Value = wait_for("the scheduled report to run", || async {
        let list = site.get_ok("/api/reports/schedules").await;
        let s = list["schedules"][0].clone();
        (s["runs"] == 1).then_some(s)
    })
    .await;
    assert_eq!(run["last_error"], Value::Null, "{run}");
    let file = std::path::PathBuf::from(run["last_file"].as_str().unwrap());
    assert!(file.starts_with(&directory) && file.extension().unwrap() == "csv", "{file:?}");
    let written = std::fs::read(&file).unwrap();
    let text = String::from_utf8(written.clone()).unwrap();
    assert!(text.lines().any(|l| l.starts_with("site-a,12,9,0,3,0,12,")), "{text}");

    let mail = sink.wait_for_mail(Duration::from_secs(30)).await;
    assert_eq!(mail.to, ["soc@example.com"]);
    assert!(mail.tls, "the report went over STARTTLS");
    assert!(mail.header("Subject").unwrap().contains("Security status"), "{:?}", mail.header("Subject"));
    let attachments = mail.attachments();
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0].0, file.file_name().unwrap().to_str().unwrap());
    assert_eq!(attachments[0].1, written, "the mail carries the file that was written");
    assert!(run["next_run"].as_str().unwrap() > run["last_run"].as_str().unwrap());

    // The site's own reports on request, and no per-slave or health reports here.
    let (status, report) = site.get("/api/reports/security-status").await;
    assert_eq!((status.as_u16(), report["total"]["infected"].as_i64()), (200, Some(3)), "{report}");
    let (status, body) = site.get("/api/reports/health").await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = site.get("/api/reports/security-status?slave=paris").await;
    assert_eq!(status, 400, "{body}");

    let _ = std::fs::remove_dir_all(&directory);
    site.stop(&[]).await;
}

#[tokio::test]
async fn a_master_has_no_scheduled_reports() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let (status, body) =
        master.post("/api/reports/schedules", json!({"name": "x", "kind": "malware", "every_seconds": 60})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().starts_with("Scheduled reports is not available on a master"),
        "{body}"
    );
    // Without a report service configured, reports say how to get one.
    let (status, body) = master.get("/api/reports/security-status").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("<Reports><ServiceUrl>"), "{body}");
    master.stop(&[]).await;
}
