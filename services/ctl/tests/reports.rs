//! `rampartctl reports` against a real master, its report service and a
//! slave: the tables, the files, the resend and the refusals an operator sees.

use rampart_tests::{
    hierarchy::{insert_endpoints, register},
    report::TestReport,
    ServerOptions, TestServer,
};
use serde_json::json;

use crate::common::{ctl, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reads_consolidated_reports_with_rampartctl() {
    let namespace = rampart_tests::namespace();
    let report = TestReport::spawn(&namespace).await;
    let master = TestServer::spawn(report.master_options()).await;
    let paris = TestServer::spawn(ServerOptions::site("paris", &namespace)).await;
    insert_endpoints(&paris, "paris", 7).await;
    register(&master, &paris).await;
    report.wait_for_status("7 computers of paris in the reports", |r| r["total"]["total"] == 7).await;

    let table = ctl(&master, &["reports", "security-status"]).await;
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.lines().any(|l| l.trim_start().starts_with("paris") && l.contains(" 7 ")), "{text}");

    let dir = std::env::temp_dir().join(format!("rampartctl-reports-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("overview.html");
    let written = ctl(&master, &["reports", "overview", "--out", html.to_str().unwrap()]).await;
    assert!(written.status.success(), "{}", stderr(&written));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<svg"), "the file is the HTML page");
    let csv = ctl(&master, &["reports", "updates", "--slave", "paris", "--format", "csv"]).await;
    assert!(stdout(&csv).lines().any(|l| l.starts_with("paris,7,")), "{}", stdout(&csv));

    let resent = ctl(&master, &["reports", "resend"]).await;
    assert!(resent.status.success() && stdout(&resent).contains("1 slave"), "{} {}", stdout(&resent), stderr(&resent));

    let unknown = ctl(&master, &["reports", "security-status", "--slave", "nowhere"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no slave 'nowhere'"), "{}", stderr(&unknown));
    let refused = ctl(&master, &["reports", "schedules", "list"]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("Scheduled reports is not available on a master"), "{}", stderr(&refused));

    // On the slave: its own computers, and its schedules.
    let own = ctl(&paris, &["--json", "reports", "security-status"]).await;
    let own: serde_json::Value = serde_json::from_slice(&own.stdout).unwrap();
    assert_eq!(
        own["total"],
        json!({"total": 7, "protected": 7, "at_risk": 0, "infected": 0, "unprotected": 0, "unlicensed": 7})
    );
    let schedules = ctl(&paris, &["reports", "schedules", "list"]).await;
    assert!(stdout(&schedules).contains("No report directory is configured"), "{}", stdout(&schedules));

    let _ = std::fs::remove_dir_all(&dir);
    report.stop().await;
    paris.stop(&[]).await;
    master.stop(&[]).await;
}
