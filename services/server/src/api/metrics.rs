//! `GET /metrics`: Prometheus text exposition (version 0.0.4).
//!
//! Counters of the consumers, the outbox depth, endpoints by status on a
//! site, and per slave state, silence, refused messages and replication
//! (lag, rows behind, batches and rows applied) on a master.
//! No secret and no per-endpoint data: it is served without the API token,
//! like `/health`, so a scraper needs no credentials.

use std::{fmt::Write, sync::atomic::Ordering};

use axum::{extract::State, http::header, response::IntoResponse};
use rampart_shared::replication::ReplicationProgress;

use super::ApiError;
use crate::{operators, outbox, role::Role, state::SharedState};

/// Builds the exposition text, one family at a time.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub async fn metrics(State(state): State<SharedState>) -> Result<impl IntoResponse, ApiError> {
    let client = state.pool.get().await?;
    let mut out = Exposition::default();
    let consumers = [
        ("inbox", &state.inbox_metrics),
        ("hierarchy", &state.hierarchy_metrics),
        ("replication", &state.replication_metrics),
        ("replication_live", &state.live_replication_metrics),
    ];
    for (name, help, pick) in [
        ("rampart_messages_applied_total", "Messages applied and acked, by consumer.", 0),
        ("rampart_messages_dead_lettered_total", "Messages refused and parked with a reason, by consumer.", 1),
        ("rampart_consumer_batches_total", "Batches committed, by consumer.", 2),
        ("rampart_consumer_retries_total", "Batches held and retried after a transient failure, by consumer.", 3),
    ] {
        out.family(name, "counter", help);
        for (consumer, m) in consumers {
            let counter = [&m.applied, &m.dead_lettered, &m.batches, &m.retries][pick];
            out.sample(name, &[("consumer", consumer)], counter.load(Ordering::Relaxed) as f64);
        }
    }
    out.family("rampart_sign_in_failures_total", "counter", "Failed operator sign-ins (from the activity log).");
    out.sample("rampart_sign_in_failures_total", &[], operators::sign_in::failures_total(&client).await? as f64);
    out.family(
        "rampart_agent_messages_refused_for_identity_total",
        "counter",
        "Agent messages refused for want of the right identity (no AMQP user_id, or an endpoint the sender does not own).",
    );
    out.sample("rampart_agent_messages_refused_for_identity_total", &[], state.agents.refused() as f64);
    out.family("rampart_outbox_depth", "gauge", "Messages written and not yet confirmed by the broker.");
    out.sample("rampart_outbox_depth", &[], outbox::depth(&client).await? as f64);

    if state.role() == Role::Master {
        let rows = client
            .query(
                "SELECT s.id, s.state, EXTRACT(EPOCH FROM now() - s.last_seen)::float8,
                        (SELECT count(*) FROM refused_messages f WHERE f.slave_id = s.id),
                        EXTRACT(EPOCH FROM now() - s.synced_as_of)::float8, s.rows_behind, s.repl_batches, s.repl_rows,
                        s.repl_refused, s.links
                   FROM slaves s ORDER BY s.id",
                &[],
            )
            .await?;
        out.family("rampart_slave_up", "gauge", "1 for a registered slave (active), 0 once removing or removed.");
        for r in &rows {
            out.sample(
                "rampart_slave_up",
                &[("slave", r.get(0))],
                if r.get::<_, &str>(1) == "active" { 1.0 } else { 0.0 },
            );
        }
        out.family("rampart_slave_silence_seconds", "gauge", "Seconds since the slave was last heard from.");
        for r in &rows {
            if let Some(silence) = r.get::<_, Option<f64>>(2) {
                out.sample("rampart_slave_silence_seconds", &[("slave", r.get(0))], silence);
            }
        }
        out.family(
            "rampart_slave_refused_messages_total",
            "counter",
            "Messages refused from (or in the name of) the slave.",
        );
        for r in &rows {
            out.sample("rampart_slave_refused_messages_total", &[("slave", r.get(0))], r.get::<_, i64>(3) as f64);
        }
        let active: Vec<_> = rows.iter().filter(|r| r.get::<_, &str>(1) == "active").collect();
        out.family(
            "rampart_slave_link_up",
            "gauge",
            "1 for a link of a slave with a broker of its own that its last heartbeat reported running, else 0.",
        );
        for r in &active {
            let links: Option<serde_json::Value> = r.get(9);
            for link in links.as_ref().and_then(|l| l.as_array()).into_iter().flatten() {
                let (carries, state) = (link["carries"].as_str().unwrap_or("?"), link["state"].as_str());
                let up = if state == Some("running") { 1.0 } else { 0.0 };
                out.sample("rampart_slave_link_up", &[("slave", r.get(0)), ("link", carries)], up);
            }
        }
        out.family(
            "rampart_replication_lag_seconds",
            "gauge",
            "Age of the master's copy of the slave: seconds since the slave read its last caught-up batch.",
        );
        for r in &active {
            if let Some(lag) = r.get::<_, Option<f64>>(4) {
                out.sample("rampart_replication_lag_seconds", &[("slave", r.get(0))], lag.max(0.0));
            }
        }
        out.family(
            "rampart_replication_rows_behind",
            "gauge",
            &format!(
                "Changed rows the slave has not had acknowledged (its last heartbeat), counted up to {}.",
                ReplicationProgress::ROWS_BEHIND_COUNTED
            ),
        );
        for r in &active {
            if let Some(behind) = r.get::<_, Option<i64>>(5) {
                out.sample("rampart_replication_rows_behind", &[("slave", r.get(0))], behind as f64);
            }
        }
        for (name, help, column) in [
            ("rampart_replication_batches_applied_total", "Replication batches applied, by slave.", 6),
            ("rampart_replication_rows_applied_total", "Replicated rows applied, by slave.", 7),
            (
                "rampart_replication_batches_refused_total",
                "Replication batches refused (duplicate, gap, stale epoch), by slave.",
                8,
            ),
        ] {
            out.family(name, "counter", help);
            for r in &rows {
                out.sample(name, &[("slave", r.get(0))], r.get::<_, i64>(column) as f64);
            }
        }
    } else {
        if let Some(report) = crate::hierarchy::broker_links::report(&state).await {
            link_metrics(&mut out, &report);
        }
        if state.settings.hierarchy.site_broker {
            out.family(
                "rampart_link_repairs_total",
                "counter",
                "Links to the master's broker the link keeper made again, by cause.",
            );
            for (cause, n) in state.link_repairs.counts() {
                out.sample("rampart_link_repairs_total", &[("cause", cause.label())], n as f64);
            }
        }
        if state.keyring.link().is_some() {
            out.family(
                "rampart_replication_bulk_held",
                "gauge",
                "1 while a backlog's replication batch waits for room in the master's bulk queue, else 0.",
            );
            let held = state.bulk_batch_held.load(Ordering::Relaxed);
            out.sample("rampart_replication_bulk_held", &[], if held { 1.0 } else { 0.0 });
        }
        let rows = client.query("SELECT status, count(*) FROM endpoints GROUP BY status ORDER BY status", &[]).await?;
        out.family("rampart_endpoints", "gauge", "Managed endpoints by security status.");
        for status in ["protected", "at_risk", "infected", "unprotected"] {
            let n = rows.iter().find(|r| r.get::<_, &str>(0) == status).map_or(0, |r| r.get::<_, i64>(1));
            out.sample("rampart_endpoints", &[("status", status)], n as f64);
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out.0))
}

/// A slave's links to its master's broker (`docs/multi-site.md`).
fn link_metrics(out: &mut Exposition, report: &crate::hierarchy::broker_links::LinkReport) {
    out.family("rampart_link_up", "gauge", "1 for a link to the master's broker its broker reports running, else 0.");
    for link in &report.links {
        let up = if link.state == "running" { 1.0 } else { 0.0 };
        out.sample("rampart_link_up", &[("link", link.carries)], up);
    }
    out.family(
        "rampart_link_waiting_messages",
        "gauge",
        "Messages on this site's broker waiting for an outbound link.",
    );
    for link in &report.links {
        if let Some(waiting) = link.waiting {
            out.sample("rampart_link_waiting_messages", &[("link", link.carries)], waiting as f64);
        }
    }
    out.family("rampart_link_status_readable", "gauge", "1 when this site's broker answered for its links, else 0.");
    out.sample("rampart_link_status_readable", &[], if report.error.is_none() { 1.0 } else { 0.0 });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_follow_the_text_format() {
        let mut out = Exposition::default();
        out.family("rampart_x", "gauge", "An example.");
        out.sample("rampart_x", &[], 3.0);
        out.sample("rampart_x", &[("slave", "pa\"ris")], 1.5);
        assert_eq!(
            out.0,
            "# HELP rampart_x An example.\n# TYPE rampart_x gauge\nrampart_x 3\nrampart_x{slave=\"pa\\\"ris\"} 1.5\n"
        );
    }
}
