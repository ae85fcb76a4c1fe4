//! `rampartctl slaves`: the servers registered to this master.
//!
//! Only a master has slaves; any other server refuses these calls and its
//! message is printed as is. `REFUSED` counts the messages from a slave that
//! the master would not apply. The replication columns say how fresh the
//! master's copy of each slave's data is: `WATERMARK` is the last change
//! applied (transaction:sequence), `LAG` the age of the data, `BEHIND` the
//! rows the slave has yet to send.

use clap::Subcommand;
use rampart_shared::replication::ReplicationProgress;
use serde_json::{json, Value};

use crate::output::{count, details, items, message_line, section, text, time, time_or_never, Table};
use crate::session::Session;

/// The replication columns of a slave table, filled by [`replication_cells`].
pub const REPLICATION_HEADERS: [&str; 4] = ["LAST REPLICATION", "WATERMARK", "LAG", "BEHIND"];

#[derive(Debug, Subcommand)]
pub enum SlavesCommand {
    /// List slaves: state, last contact, endpoints, license and replication.
    List,
    /// One slave, with where the replication of its data stands.
    Show {
        /// Slave id.
        id: String,
    },
    /// Ask one active slave to replicate now instead of at its next interval.
    Replicate {
        /// Slave id.
        id: String,
        /// Ship every row again and replace the master's copy (a new epoch).
        #[arg(long)]
        full: bool,
    },
    /// Remove a slave from this master; prints what the server did.
    Remove {
        /// Slave id.
        id: String,
        /// Also delete the master's copy of the slave's replicated data
        /// (kept by default).
        #[arg(long)]
        purge: bool,
        /// Remove it at once, without waiting for the slave to confirm (a
        /// slave gone for good): its command queue and broker user go now.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(command: SlavesCommand, session: &Session) -> anyhow::Result<()> {
    let client = &session.client;
    match command {
        SlavesCommand::List => {
            let answer = client.get(&["api", "slaves"], &[]).await?;
            session.print(&answer, render_list)
        }
        SlavesCommand::Show { id } => {
            let answer = client.get(&["api", "slaves", &id], &[]).await?;
            session.print(&answer, render_one)
        }
        SlavesCommand::Replicate { id, full } => {
            let answer = client.post(&["api", "slaves", &id, "replicate"], &json!({ "full": full })).await?;
            session
                .print(&answer, |r| message_line(r).unwrap_or_else(|| format!("Asked slave {id} to replicate now.\n")))
        }
        SlavesCommand::Remove { id, purge, force } => {
            let mut query = Vec::new();
            if purge {
                query.push(("purge", "true".to_owned()));
            }
            if force {
                query.push(("force", "true".to_owned()));
            }
            let answer = client.delete_with_query(&["api", "slaves", &id], &query).await?;
            session.print(&answer, |s| {
                message_line(s).unwrap_or_else(|| format!("Slave {} is {}.\n", text(&s["id"]), text(&s["state"])))
            })
        }
    }
}

/// `12s`, `4m05s`, `2h10m`, `3d04h`: how old the master's copy is.
pub fn lag(seconds: &Value) -> String {
    let Some(s) = seconds.as_u64() else {
        return text(seconds);
    };
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// The [`REPLICATION_HEADERS`] cells of a slave's `replication` object.
pub fn replication_cells(replication: &Value) -> [String; 4] {
    [
        time(&replication["last_replication"]),
        text(&replication["watermark"]),
        lag(&replication["lag_seconds"]),
        rows_behind(&replication["rows_behind"]),
    ]
}

/// The rows behind a heartbeat counted, `1000000+` at the bound it counts to.
fn rows_behind(value: &Value) -> String {
    value.as_i64().map_or_else(|| text(value), ReplicationProgress::rows_behind_text)
}

/// `120/500 until 2027-01-01`: endpoints licensed out of the slave's seats.
fn license_cell(license: &Value) -> String {
    if !license.is_object() {
        return "-".to_owned();
    }
    format!("{}/{} until {}", count(&license["used"]), count(&license["seats"]), text(&license["expires_on"]))
}

fn render_list(answer: &Value) -> String {
    let slaves = items(answer);
    if slaves.is_empty() {
        return "No slaves.\n".to_owned();
    }
    // The LINKS column only where some site runs a broker of its own.
    let linked = slaves.iter().any(|s| s["site_broker"] == true);
    let mut headers =
        [&["ID", "STATE", "LAST SEEN", "ENDPOINTS", "LICENSE", "REFUSED"][..], &REPLICATION_HEADERS].concat();
    if linked {
        headers.push("LINKS");
    }
    let mut table = Table::new(&headers).numeric(&["ENDPOINTS", "REFUSED", "LAG", "BEHIND"]);
    for s in slaves {
        let mut row = vec![
            text(&s["id"]),
            text(&s["state"]),
            time(&s["last_seen"]),
            text(&s["endpoints"]),
            license_cell(&s["license"]),
            count(&s["refused_messages"]).to_string(),
        ];
        row.extend(replication_cells(&s["replication"]));
        if linked {
            row.push(links_cell(s));
        }
        table.row(row);
    }
    table.render()
}

/// `3/3 running`, or which links are not, as the slave last reported them.
fn links_cell(s: &Value) -> String {
    if s["site_broker"] != true {
        return "-".to_owned();
    }
    let links = items(&s["links"]);
    if links.is_empty() {
        return "not reported".to_owned();
    }
    let running = links.iter().filter(|l| l["state"] == "running").count();
    let down: Vec<String> = links
        .iter()
        .filter(|l| l["state"] != "running")
        .map(|l| format!("{} {}", text(&l["carries"]), text(&l["state"])))
        .collect();
    match down.is_empty() {
        true => format!("{running}/{} running", links.len()),
        false => format!("{running}/{} running ({})", links.len(), down.join(", ")),
    }
}

fn render_one(s: &Value) -> String {
    let mut out = details(&[
        ("ID", text(&s["id"])),
        ("State", text(&s["state"])),
        ("Registered", time(&s["registered_at"])),
        ("Last seen", time(&s["last_seen"])),
        ("Version", text(&s["version"])),
        ("Endpoints", text(&s["endpoints"])),
        ("License", license_cell(&s["license"])),
        ("Refused messages", count(&s["refused_messages"]).to_string()),
    ]);
    let replication = &s["replication"];
    if replication.is_object() {
        out.push_str(&section("Replication", &replication_details(replication)));
    }
    if s["site_broker"] == true {
        let reported = crate::links::render_links(&json!({"links": s["links"], "error": null}));
        out.push_str(&section("Links (as the slave last reported them)", &reported));
    }
    let broker = &s["broker"];
    if broker.is_object() {
        out.push_str(&section("On this master's broker", &broker_details(broker)));
    }
    out
}

/// A slave with a broker of its own: its link user's connections and the
/// commands waiting for its commands link.
fn broker_details(b: &Value) -> String {
    if let Some(error) = b["error"].as_str() {
        return details(&[("Link user", text(&b["user"])), ("Unknown", error.to_owned())]);
    }
    let connections = items(&b["connections"]);
    let listed = if connections.is_empty() {
        "none (its links are down)".to_owned()
    } else {
        connections.iter().map(text).collect::<Vec<_>>().join(", ")
    };
    details(&[
        ("Link user", text(&b["user"])),
        ("Connections", listed),
        ("Commands queued", text(&b["command_queue_depth"])),
    ])
}

/// Every field of a slave's `replication` object.
fn replication_details(r: &Value) -> String {
    details(&[
        ("Epoch", text(&r["epoch"])),
        ("Watermark", text(&r["watermark"])),
        ("Last replication", time_or_never(&r["last_replication"])),
        ("Synced as of", time_or_never(&r["synced_as_of"])),
        ("Lag", lag(&r["lag_seconds"])),
        ("Rows behind", rows_behind(&r["rows_behind"])),
        ("Batches", text(&r["batches"])),
        ("Rows", text(&r["rows"])),
        ("Refused batches", text(&r["refused_batches"])),
        ("Replicated endpoints", text(&r["replicated_endpoints"])),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_list_shows_license_use_refusals_and_replication() {
        let answer = json!([
            {"id": "lyon", "state": "online", "last_seen": "x", "version": "0.2.0", "registered_at": "y",
             "endpoints": 120, "license": {"seats": 500, "used": 120, "expires_on": "2027-01-01"}, "refused_messages": 0,
             "replication": {"epoch": 1, "watermark": "812:5531", "batches": 14, "rows": 10234, "refused_batches": 0,
                             "last_replication": "z", "synced_as_of": "z", "rows_behind": 0, "lag_seconds": 12,
                             "replicated_endpoints": 120}},
            {"id": "nice", "state": "removing", "last_seen": null, "version": null, "registered_at": "y",
             "endpoints": null, "license": null, "refused_messages": 3,
             "replication": {"epoch": 0, "watermark": "0:0", "batches": 0, "rows": 0, "refused_batches": 0,
                             "last_replication": null, "synced_as_of": null, "rows_behind": null, "lag_seconds": null,
                             "replicated_endpoints": 0}}
        ]);
        assert_eq!(
            render_list(&answer),
            "ID    STATE     LAST SEEN  ENDPOINTS  LICENSE                   REFUSED  LAST REPLICATION  WATERMARK  LAG  BEHIND\n\
             lyon  online    x                120  120/500 until 2027-01-01        0  z                 812:5531   12s       0\n\
             nice  removing  -                  -  -                               3  -                 0:0          -       -\n"
        );
        assert_eq!(render_list(&json!([])), "No slaves.\n");
        let linked = json!([{"id": "paris", "state": "online", "site_broker": true, "replication": null,
            "links": [{"carries": "commands", "state": "running"}, {"carries": "status", "state": "starting"},
                      {"carries": "replication", "state": "running"}]}]);
        assert!(render_list(&linked).contains("2/3 running (status starting)"), "{}", render_list(&linked));
    }

    #[test]
    fn rows_behind_at_the_heartbeats_bound_read_as_at_least() {
        assert_eq!(rows_behind(&json!(40)), "40");
        assert_eq!(rows_behind(&json!(1_000_000)), "1000000+");
        assert_eq!(rows_behind(&json!(null)), "-");
    }

    #[test]
    fn lag_reads_in_the_largest_units_that_fit() {
        assert_eq!(lag(&json!(0)), "0s");
        assert_eq!(lag(&json!(59)), "59s");
        assert_eq!(lag(&json!(245)), "4m05s");
        assert_eq!(lag(&json!(7800)), "2h10m");
        assert_eq!(lag(&json!(273_600)), "3d04h");
        assert_eq!(lag(&json!(null)), "-");
    }

    #[test]
    fn one_slave() {
        let out = render_one(&json!({"id": "lyon", "state": "offline", "endpoints": 7,
            "license": {"seats": 10, "used": 7, "expires_on": "2026-12-31"}, "refused_messages": 1,
            "replication": {"epoch": 2, "watermark": "812:5531", "batches": 14, "rows": 10234, "refused_batches": 1,
                            "last_replication": null, "synced_as_of": null, "rows_behind": 40, "lag_seconds": 75,
                            "replicated_endpoints": 7}}));
        assert!(out.starts_with("ID:                lyon\nState:             offline\n"), "{out}");
        assert!(out.contains("License:           7/10 until 2026-12-31\n"), "{out}");
        assert!(out.contains("Refused messages:  1\n\nReplication\n"), "{out}");
        for line in [
            "Epoch:                 2\n",
            "Watermark:             812:5531\n",
            "Last replication:      never\n",
            "Lag:                   1m15s\n",
            "Rows behind:           40\n",
            "Refused batches:       1\n",
        ] {
            assert!(out.contains(line), "{line}: {out}");
        }
        assert!(out.ends_with("Replicated endpoints:  7\n"), "{out}");
        let linked = render_one(&json!({"id": "paris", "state": "online", "broker": {"user": "rampart.link.paris",
            "connections": ["10.1.0.5:40112 -> 10.0.0.1:5671"], "command_queue_depth": 3, "error": null}}));
        assert!(linked.contains("\nOn this master's broker\n"), "{linked}");
        assert!(linked.contains("Connections:      10.1.0.5:40112 -> 10.0.0.1:5671\n"), "{linked}");
        assert!(linked.contains("Commands queued:  3\n"), "{linked}");
    }

    #[test]
    fn remove_purges_only_when_asked() {
        #[derive(Parser)]
        struct Wrapper {
            #[command(subcommand)]
            command: SlavesCommand,
        }
        let parse = |args: &[&str]| {
            Wrapper::try_parse_from(std::iter::once("slaves").chain(args.iter().copied())).map(|w| w.command)
        };
        assert!(matches!(parse(&["remove", "lyon", "--purge"]).unwrap(), SlavesCommand::Remove { purge: true, .. }));
        assert!(matches!(
            parse(&["remove", "lyon"]).unwrap(),
            SlavesCommand::Remove { purge: false, force: false, .. }
        ));
        assert!(matches!(parse(&["remove", "lyon", "--force"]).unwrap(), SlavesCommand::Remove { force: true, .. }));
        assert!(matches!(
            parse(&["replicate", "lyon", "--full"]).unwrap(),
            SlavesCommand::Replicate { full: true, .. }
        ));
        assert!(parse(&["replicate"]).is_err());
    }
}
