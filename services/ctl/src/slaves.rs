//! `rampartctl slaves`: the servers registered to this master.
//!
//! Only a master has slaves; any other server refuses these calls and its
//! message is printed as is. `REFUSED` counts the messages from a slave that
//! the master would not apply.

use clap::Subcommand;
use serde_json::Value;

use crate::output::{count, details, items, text, time, Table};
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub enum SlavesCommand {
    /// List slaves: state, last contact, endpoints and license.
    List,
    /// One slave.
    Show {
        /// Slave id.
        id: String,
    },
    /// Remove a slave from this master; prints what the server did.
    Remove {
        /// Slave id.
        id: String,
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
        SlavesCommand::Remove { id } => {
            let answer = client.delete(&["api", "slaves", &id], None).await?;
            session.print(&answer, |s| match s["message"].as_str() {
                Some(message) if !message.trim().is_empty() => format!("{message}\n"),
                _ => format!("Slave {} is {}.\n", text(&s["id"]), text(&s["state"])),
            })
        }
    }
}

/// `120/500 until 2027-01-01`: endpoints licensed out of the slave's seats.
fn license_cell(license: &Value) -> String {
    if !license.is_object() {
        return "-".to_owned();
    }
    format!(
        "{}/{} until {}",
        count(&license["used"]),
        count(&license["seats"]),
        text(&license["expires_on"])
    )
}

fn render_list(answer: &Value) -> String {
    let slaves = items(answer);
    if slaves.is_empty() {
        return "No slaves.\n".to_owned();
    }
    let mut table = Table::new(&[
        "ID",
        "STATE",
        "LAST SEEN",
        "VERSION",
        "ENDPOINTS",
        "LICENSE",
        "REFUSED",
    ])
    .numeric(&["ENDPOINTS", "REFUSED"]);
    for s in slaves {
        table.row([
            text(&s["id"]),
            text(&s["state"]),
            time(&s["last_seen"]),
            text(&s["version"]),
            text(&s["endpoints"]),
            license_cell(&s["license"]),
            count(&s["refused_messages"]).to_string(),
        ]);
    }
    table.render()
}

fn render_one(s: &Value) -> String {
    details(&[
        ("ID", text(&s["id"])),
        ("State", text(&s["state"])),
        ("Registered", time(&s["registered_at"])),
        ("Last seen", time(&s["last_seen"])),
        ("Version", text(&s["version"])),
        ("Endpoints", text(&s["endpoints"])),
        ("License", license_cell(&s["license"])),
        (
            "Refused messages",
            count(&s["refused_messages"]).to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_list_shows_license_use_and_refusals() {
        let answer = json!([
            {"id": "lyon", "state": "online", "last_seen": "x", "version": "0.2.0", "registered_at": "y",
             "endpoints": 120, "license": {"seats": 500, "used": 120, "expires_on": "2027-01-01"}, "refused_messages": 0},
            {"id": "nice", "state": "removing", "last_seen": null, "version": null, "registered_at": "y",
             "endpoints": null, "license": null, "refused_messages": 3}
        ]);
        assert_eq!(
            render_list(&answer),
            "ID    STATE     LAST SEEN  VERSION  ENDPOINTS  LICENSE                   REFUSED\n\
             lyon  online    x          0.2.0          120  120/500 until 2027-01-01        0\n\
             nice  removing  -          -                -  -                               3\n"
        );
        assert_eq!(render_list(&json!([])), "No slaves.\n");
    }

    #[test]
    fn one_slave() {
        let out = render_one(&json!({"id": "lyon", "state": "offline", "endpoints": 7,
            "license": {"seats": 10, "used": 7, "expires_on": "2026-12-31"}, "refused_messages": 1}));
        assert!(
            out.starts_with("ID:                lyon\nState:             offline\n"),
            "{out}"
        );
        assert!(
            out.contains("License:           7/10 until 2026-12-31\n"),
            "{out}"
        );
        assert!(out.ends_with("Refused messages:  1\n"), "{out}");
    }
}
