//! Read-only views of a site: `health`, `status`, `site-key`, `dashboard`,
//! `detections` and `audit` (the network audit). `tree` has its own module.
//!
//! The dashboard and the audit do not exist on a master; the server refuses
//! them there and its message is printed as is.

use clap::Args;
use serde_json::Value;

use crate::license::license_summary;
use crate::output::{count, details, items, section, text, time, Table};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct DetectionsArgs {
    /// Only detections on this endpoint.
    #[arg(long, value_name = "ID")]
    endpoint: Option<String>,
    /// At most this many (server default 50).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
}

pub async fn health(session: &Session) -> anyhow::Result<()> {
    let answer = session.client.get(&["health"], &[]).await?;
    session.print(&answer, |h| {
        let mut line = format!("{}: {} ({})\n", text(&h["status"]), text(&h["instance"]), text(&h["role"]));
        if let Some(fingerprint) = h["tls_fingerprint"].as_str() {
            line.push_str(&format!("TLS certificate SHA-256 {fingerprint}\n"));
        }
        line
    })
}

pub async fn status(session: &Session) -> anyhow::Result<()> {
    let answer = session.client.get(&["api", "status"], &[]).await?;
    // A site signs its endpoint commands; a master (or an older site) has no key to show.
    let site_key = match answer.value["role"].as_str() {
        Some("master") => None,
        _ => session.client.get(&["api", "site-key"], &[]).await.ok(),
    };
    session.print(&answer, |status| {
        let mut text = render_status(status, site_key.as_ref().map(|k| &k.value));
        if let Some(fingerprint) = session.client.fingerprint() {
            text.push_str(&format!("TLS certificate  SHA-256 {fingerprint} (pinned)\n"));
        }
        text
    })
}

/// The public key agents verify the site's commands with, as `--site-key` takes it.
pub async fn site_key(session: &Session) -> anyhow::Result<()> {
    let answer = session.client.get(&["api", "site-key"], &[]).await?;
    session.print(&answer, |k| format!("{}\n", text(&k["public_key"])))
}

pub async fn dashboard(session: &Session) -> anyhow::Result<()> {
    let answer = session.client.get(&["api", "dashboard"], &[]).await?;
    session.print(&answer, render_dashboard)
}

pub async fn detections(args: DetectionsArgs, session: &Session) -> anyhow::Result<()> {
    let mut query = Vec::new();
    if let Some(endpoint) = args.endpoint {
        query.push(("endpoint", endpoint));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let answer = session.client.get(&["api", "detections"], &query).await?;
    session.print(&answer, |answer| {
        let rows = items(answer);
        if rows.is_empty() {
            "No detections.\n".to_owned()
        } else {
            detection_table(rows, true).render()
        }
    })
}

pub async fn audit(session: &Session) -> anyhow::Result<()> {
    let answer = session.client.get(&["api", "audit"], &[]).await?;
    session.print(&answer, render_audit)
}

/// Detections, newest first; `with_endpoint` adds the endpoint columns
/// (left out where the endpoint is already known).
pub fn detection_table(detections: &[Value], with_endpoint: bool) -> Table {
    let mut table = if with_endpoint {
        Table::new(&["DETECTED", "ENDPOINT", "HOSTNAME", "MALWARE", "ACTION", "PATH"])
    } else {
        Table::new(&["DETECTED", "MALWARE", "ACTION", "PATH"])
    };
    for d in detections {
        let mut row = vec![time(&d["detected_at"])];
        if with_endpoint {
            row.extend([text(&d["endpoint_id"]), text(&d["hostname"])]);
        }
        row.extend([text(&d["malware"]), text(&d["action"]), text(&d["path"])]);
        table.row(row);
    }
    table
}

/// `500 total: 470 protected, 20 at risk, ...`
fn endpoint_counts(e: &Value) -> String {
    format!(
        "{} total: {} protected, {} at risk, {} infected, {} unprotected, {} unlicensed",
        count(&e["total"]),
        count(&e["protected"]),
        count(&e["at_risk"]),
        count(&e["infected"]),
        count(&e["unprotected"]),
        count(&e["unlicensed"]),
    )
}

/// The status, with the fingerprint of the site's command key when known.
fn render_status(s: &Value, site_key: Option<&Value>) -> String {
    let is_master = s["role"].as_str() == Some("master");
    let endpoints = if s["endpoints"].is_object() { endpoint_counts(&s["endpoints"]) } else { "-".to_owned() };
    let license = match (&s["license"], is_master) {
        (Value::Null, true) => "not needed on a master".to_owned(),
        (license, _) => license_summary(license),
    };
    let m = &s["messages"];
    let h = &m["hierarchy"];
    let mut pairs = vec![
        ("Instance", format!("{} ({})", text(&s["instance"]), text(&s["role"]))),
        ("Version", text(&s["version"])),
        ("Namespace", text(&s["namespace"])),
        ("Endpoints", endpoints),
        ("License", license),
        (
            "Messages",
            format!(
                "{} applied, {} dead-lettered, outbox depth {}",
                count(&m["applied"]),
                count(&m["dead_lettered"]),
                count(&m["outbox_depth"])
            ),
        ),
    ];
    if h.is_object() {
        let what = if is_master { "slave reports" } else { "master commands" };
        let line = format!("{} {what} applied, {} dead-lettered", count(&h["applied"]), count(&h["dead_lettered"]));
        pairs.push(("Hierarchy", line));
    }
    let slaves = &s["slaves"];
    if is_master && slaves.is_object() {
        pairs[3] = (
            "Slaves",
            format!(
                "{} online, {} offline, {} being removed",
                count(&slaves["online"]),
                count(&slaves["offline"]),
                count(&slaves["removing"])
            ),
        );
    }
    let master = &s["master"];
    if master.is_object() {
        let line = format!("{} at {}", text(&master["id"]), text(&master["address"]));
        pairs.insert(1, ("Master", line));
    }
    if let Some(key) = site_key {
        pairs.push(("Site key", format!("{} {}", text(&key["algorithm"]), text(&key["fingerprint"]))));
    }
    let links = &s["links"];
    if !links.is_object() {
        return details(&pairs);
    }
    // A slave on a broker of its own (docs/multi-site.md).
    let mut out = details(&pairs);
    out.push_str(&crate::output::section("Links to the master's broker", &crate::links::render_links(links)));
    out
}

fn render_dashboard(d: &Value) -> String {
    let e = &d["endpoints"];
    let mut counts = Table::new(&["STATUS", "ENDPOINTS"]).numeric(&["ENDPOINTS"]);
    for (label, key) in [
        ("protected", "protected"),
        ("at risk", "at_risk"),
        ("infected", "infected"),
        ("unprotected", "unprotected"),
        ("unlicensed", "unlicensed"),
        ("offline", "offline"),
        ("total", "total"),
    ] {
        counts.row([label.to_owned(), count(&e[key]).to_string()]);
    }
    let mut out = counts.render();
    out.push('\n');
    out.push_str(&details(&[
        ("License", license_summary(&d["license"])),
        ("Tasks running", count(&d["tasks_running"]).to_string()),
    ]));

    let outdated = &d["outdated_signatures"];
    let listed = items(&outdated["endpoints"]);
    let total = count(&outdated["count"]).max(listed.len() as u64);
    let title = format!("Outdated signatures (older than {} days): {total}", text(&outdated["threshold_days"]));
    let mut body = String::new();
    if !listed.is_empty() {
        let mut table = Table::new(&["ID", "HOSTNAME", "SIGNATURES", "LAST SEEN"]);
        for e in listed {
            table.row([text(&e["id"]), text(&e["hostname"]), text(&e["signatures_date"]), time(&e["last_seen"])]);
        }
        body = table.render();
        if total > listed.len() as u64 {
            body.push_str(&format!("... and {} more\n", total - listed.len() as u64));
        }
    }
    out.push_str(&section(&title, &body));

    let detections = items(&d["recent_detections"]);
    let body = if detections.is_empty() { "None.\n".to_owned() } else { detection_table(detections, true).render() };
    out.push_str(&section("Recent detections", &body));
    out
}

fn render_audit(a: &Value) -> String {
    let s = &a["summary"];
    let mut out = format!(
        "{} discovered: {} managed, {} unmanaged, {} unprotected\n",
        count(&s["discovered"]),
        count(&s["managed"]),
        count(&s["unmanaged"]),
        count(&s["unprotected"]),
    );
    let computers = items(&a["computers"]);
    if computers.is_empty() {
        return out;
    }
    let mut table =
        Table::new(&["COMPUTER", "HOSTNAME", "IP", "MAC", "OS", "MANAGED", "OTHER AV", "DEPLOYMENT", "LAST SEEN"]);
    for c in computers {
        table.row([
            text(&c["computer_id"]),
            text(&c["hostname"]),
            text(&c["ip"]),
            text(&c["mac"]),
            text(&c["os"]),
            text(&c["managed"]),
            text(&c["third_party_protection"]),
            text(&c["deployment"]),
            time(&c["last_seen"]),
        ]);
    }
    out.push('\n');
    out.push_str(&table.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_reads_the_documented_answer() {
        let answer = json!({ "instance": "paris", "role": "standalone", "version": "0.1.0", "namespace": "rampart",
          "endpoints": { "total": 500, "protected": 470, "at_risk": 20, "infected": 5, "unprotected": 5, "unlicensed": 0 },
          "license": { "state": "valid", "seats": 1000, "used": 500, "expires_on": "2027-11-26" },
          "messages": { "applied": 12345, "dead_lettered": 2, "outbox_depth": 0 } });
        assert_eq!(
            render_status(&answer, None),
            "\
Instance:   paris (standalone)
Version:    0.1.0
Namespace:  rampart
Endpoints:  500 total: 470 protected, 20 at risk, 5 infected, 5 unprotected, 0 unlicensed
License:    valid, 500/1000 seats used, expires on 2027-11-26
Messages:   12345 applied, 2 dead-lettered, outbox depth 0
"
        );
    }

    #[test]
    fn a_slave_names_its_master() {
        let out = render_status(
            &json!({"instance": "lyon", "role": "slave", "master": {"id": "hq", "address": "hq.example:7073"}}),
            None,
        );
        assert!(out.starts_with("Instance:   lyon (slave)\nMaster:     hq at hq.example:7073\n"), "{out}");
        let linked = render_status(
            &json!({"instance": "lyon", "role": "slave", "links": {"error": null,
                    "links": [{"carries": "commands", "state": "running", "waiting": null, "reason": null}]}}),
            None,
        );
        assert!(
            linked.contains("\nLinks to the master's broker\n") && linked.contains("commands  running"),
            "{linked}"
        );
        let standalone = render_status(&json!({"instance": "paris", "master": null}), None);
        assert!(!standalone.contains("Master"), "{standalone}");
    }

    #[test]
    fn a_master_needs_no_license() {
        let out = render_status(&json!({"instance": "hq", "role": "master", "license": null}), None);
        assert!(out.contains("License:    not needed on a master\n"), "{out}");
    }

    #[test]
    fn a_site_shows_the_fingerprint_of_its_command_key() {
        let key = json!({"algorithm": "ed25519", "public_key": "ab", "fingerprint": "1a2b:3c4d"});
        let out = render_status(&json!({"instance": "paris", "role": "standalone"}), Some(&key));
        assert!(out.ends_with("Site key:   ed25519 1a2b:3c4d\n"), "{out}");
    }

    #[test]
    fn dashboard_counts_and_sections() {
        let answer = json!({ "endpoints": { "total": 500, "protected": 470, "at_risk": 20, "infected": 5, "unprotected": 5, "unlicensed": 0, "offline": 0 },
          "recent_detections": [{"detection_id": "d1", "endpoint_id": "sim1-00007", "hostname": "pc-7", "malware": "EICAR", "path": "C:\\eicar.com", "action": "quarantined", "detected_at": "x"}],
          "outdated_signatures": { "threshold_days": 3, "count": 20, "endpoints": [{"id": "sim1-00002", "hostname": "pc-2", "signatures_date": "2026-11-01"}] },
          "tasks_running": 1,
          "license": { "state": "valid", "seats": 1000, "used": 500, "unlicensed": 0, "expires_on": "2027-11-26" } });
        let out = render_dashboard(&answer);
        assert!(out.starts_with("STATUS       ENDPOINTS\nprotected          470\nat risk             20\n"), "{out}");
        assert!(
            out.contains("License:        valid, 500/1000 seats used, 0 unlicensed, expires on 2027-11-26\n"),
            "{out}"
        );
        assert!(out.contains("\nOutdated signatures (older than 3 days): 20\nID"), "{out}");
        assert!(out.contains("... and 19 more\n"), "{out}");
        assert!(out.contains("x         sim1-00007  pc-7      EICAR    quarantined  C:\\eicar.com\n"), "{out}");
    }
}
