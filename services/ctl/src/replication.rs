//! `rampartctl replication` and `rampartctl replicate-now`: a slave's data
//! on its way to the master.
//!
//! A slave ships its changes to its master every interval; `replicate-now`
//! does not wait for the next one (on a master it asks every active slave,
//! `slaves replicate` one). `replication` says where it stands: on a slave,
//! its stream (epoch, the last change the master acknowledged, what is still
//! to send); on a master, how fresh its copy of each slave's data is.

use clap::Args;
use serde_json::{json, Value};

use crate::output::{details, items, message_line, section, text, time_or_never, Table};
use crate::slaves::{replication_cells, REPLICATION_HEADERS};
use crate::{links::render_links, session::Session};

#[derive(Debug, Args)]
pub struct ReplicateNowArgs {
    /// Ship every row again and replace the master's copy (a new epoch).
    #[arg(long)]
    full: bool,
}

pub async fn now(args: ReplicateNowArgs, session: &Session) -> anyhow::Result<()> {
    let answer = session.client.post(&["api", "replication", "now"], &json!({ "full": args.full })).await?;
    session.print(&answer, |r| message_line(r).unwrap_or_else(|| "Replication requested.\n".to_owned()))
}

pub async fn status(session: &Session) -> anyhow::Result<()> {
    let answer = session.client.get(&["api", "replication"], &[]).await?;
    session.print(&answer, render_status)
}

/// A master's copies of its slaves, or this server's own stream.
fn render_status(answer: &Value) -> String {
    if answer["role"] == "master" {
        return render_copies(items(&answer["slaves"]));
    }
    let mut out = details(&[
        ("Role", text(&answer["role"])),
        ("Interval", seconds(&answer["interval_seconds"])),
        ("Batch size", rows(&answer["batch_size"])),
    ]);
    let stream = &answer["stream"];
    if !stream.is_object() {
        out.push_str("\nNot replicating: this server has no master.\n");
        return out;
    }
    let verification = match stream["verification_pending"].as_str() {
        Some(id) => format!("{id} (checksums go with the next batch)"),
        None => "none".to_owned(),
    };
    let stream = details(&[
        ("Epoch", text(&stream["epoch"])),
        ("Watermark", text(&stream["watermark"])),
        ("Acknowledged", time_or_never(&stream["acked_at"])),
        ("Batches sent", text(&stream["batches_sent"])),
        ("Rows behind", text(&stream["rows_behind"])),
        ("Verification", verification),
    ]);
    out.push_str(&section("Stream to the master", &stream));
    if answer["links"].is_object() {
        out.push_str(&section("Links to the master's broker", &render_links(&answer["links"])));
    }
    out
}

/// One row per slave: the replication columns of `slaves list`.
fn render_copies(slaves: &[Value]) -> String {
    if slaves.is_empty() {
        return "No slaves replicate to this master.\n".to_owned();
    }
    let headers = [&["SLAVE", "STATE"][..], &REPLICATION_HEADERS].concat();
    let mut table = Table::new(&headers).numeric(&["LAG", "BEHIND"]);
    for s in slaves {
        let mut row = vec![text(&s["slave"]), text(&s["state"])];
        row.extend(replication_cells(&s["replication"]));
        table.row(row);
    }
    table.render()
}

/// `1800 s`, `-` when the server sent none.
fn seconds(value: &Value) -> String {
    match value.as_u64() {
        Some(n) => format!("{n} s"),
        None => text(value),
    }
}

/// `5000 rows`, `-` when the server sent none.
fn rows(value: &Value) -> String {
    match value.as_u64() {
        Some(n) => format!("{n} rows"),
        None => text(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slave_shows_its_stream() {
        let out = render_status(&json!({"role": "slave", "interval_seconds": 1800, "batch_size": 5000,
            "stream": {"epoch": 1, "watermark": "812:5531", "acked_at": null, "batches_sent": 12,
                       "verification_pending": null, "rows_behind": 0}}));
        assert_eq!(
            out,
            "Role:        slave\n\
             Interval:    1800 s\n\
             Batch size:  5000 rows\n\
             \n\
             Stream to the master\n\
             Epoch:         1\n\
             Watermark:     812:5531\n\
             Acknowledged:  never\n\
             Batches sent:  12\n\
             Rows behind:   0\n\
             Verification:  none\n"
        );
    }

    #[test]
    fn a_slave_on_its_own_broker_shows_its_links() {
        let out = render_status(&json!({"role": "slave", "interval_seconds": 1800, "batch_size": 5000,
            "stream": {"epoch": 1, "watermark": "1:1", "acked_at": null, "batches_sent": 1,
                       "verification_pending": null, "rows_behind": 0},
            "links": {"error": null, "links": [
                {"carries": "commands", "state": "running", "waiting": null, "reason": null},
                {"carries": "status", "state": "terminated", "waiting": 12, "reason": "{auth_failure,\"refused\"}"}]}}));
        assert!(out.contains("\nLinks to the master's broker\n"), "{out}");
        assert!(out.contains("commands  running"), "{out}");
        assert!(out.contains("12  {auth_failure"), "{out}");
        let down = render_links(&json!({"error": "this site's broker: unreachable", "links": []}));
        assert_eq!(down, "Unknown: this site's broker: unreachable\n");
    }

    #[test]
    fn a_server_without_a_master_says_so() {
        let out = render_status(&json!({"role": "standalone", "interval_seconds": 1800,
                                        "batch_size": 5000, "stream": null}));
        assert!(out.starts_with("Role:        standalone\n"), "{out}");
        assert!(out.ends_with("\nNot replicating: this server has no master.\n"), "{out}");
    }

    #[test]
    fn a_master_shows_its_copy_of_each_slave() {
        let replication = |lag: Value, behind: Value| {
            json!({"epoch": 1, "watermark": "812:5531", "batches": 14, "rows": 10234, "refused_batches": 0,
                   "last_replication": "x", "synced_as_of": "x", "rows_behind": behind, "lag_seconds": lag,
                   "replicated_endpoints": 300})
        };
        let answer = json!({"role": "master", "interval_seconds": null, "slaves": [
            {"slave": "lyon", "state": "offline", "replication": replication(json!(3700), json!(null))},
            {"slave": "paris", "state": "online", "replication": replication(json!(12), json!(0))}
        ]});
        assert_eq!(
            render_status(&answer),
            "SLAVE  STATE    LAST REPLICATION  WATERMARK    LAG  BEHIND\n\
             lyon   offline  x                 812:5531   1h01m       -\n\
             paris  online   x                 812:5531     12s       0\n"
        );
        assert_eq!(render_status(&json!({"role": "master", "slaves": []})), "No slaves replicate to this master.\n");
    }
}
