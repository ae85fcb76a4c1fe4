//! `rampartctl agents`: the agent processes enrolled on this site, and the
//! one-time enrolment tokens an agent process enrols with.
//!
//! Like a registration token, an enrolment token goes from the operator to
//! the computer that runs the agent out of band, which is why
//! `enrolment-token create` prints the bare token on stdout:
//! `T=$(rampartctl agents enrolment-token create --endpoints 300)`. It
//! carries the site certificate's fingerprint, which the agent pins.

use std::time::Duration;

use clap::Subcommand;
use serde_json::{json, Value};

use crate::hierarchy::parse_duration;
use crate::output::{count, details, items, section, text, time, Table};
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// List enrolled agent identities: state, endpoints owned, broker user.
    List,
    /// One agent identity and the endpoints it owns.
    Show {
        /// Agent id (from `agents list`).
        id: String,
    },
    /// Revoke an agent: its broker user and connections are closed at once,
    /// its queue removed, its endpoints released.
    Revoke {
        /// Agent id.
        id: String,
    },
    /// One-time tokens an agent process enrols with.
    #[command(subcommand)]
    EnrolmentToken(EnrolmentTokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum EnrolmentTokenCommand {
    /// Create a one-time enrolment token; prints only the token (details on stderr).
    Create {
        /// How many endpoints the enrolled agent process may run (default 1).
        #[arg(long, value_name = "N")]
        endpoints: Option<u32>,
        /// How long the token stays valid: 90s, 30m, 2h, 7d or seconds (server default 1h).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<Duration>,
    },
    /// List enrolment tokens: unused, used (and by which agent), revoked or expired.
    List,
    /// Revoke an unused enrolment token.
    Revoke {
        /// Token id (from `agents enrolment-token list`).
        id: String,
    },
}

/// The body of `POST /api/agents/enrolment-tokens`: the server's defaults
/// unless given.
fn token_body(endpoints: Option<u32>, expires: Option<Duration>) -> Value {
    let mut body = json!({});
    if let Some(endpoints) = endpoints {
        body["endpoints"] = json!(endpoints);
    }
    if let Some(expires) = expires {
        body["expires_in_seconds"] = json!(expires.as_secs());
    }
    body
}

pub async fn run(command: AgentsCommand, session: &Session) -> anyhow::Result<()> {
    let client = &session.client;
    match command {
        AgentsCommand::List => {
            let answer = client.get(&["api", "agents"], &[]).await?;
            session.print(&answer, render_list)
        }
        AgentsCommand::Show { id } => {
            let answer = client.get(&["api", "agents", &id], &[]).await?;
            session.print(&answer, render_one)
        }
        AgentsCommand::Revoke { id } => {
            let answer = client.post(&["api", "agents", &id, "revoke"], &json!({})).await?;
            session.print(&answer, |a| {
                format!(
                    "Revoked agent {}: broker user {} deleted and its connections closed.\n",
                    text(&a["id"]),
                    text(&a["broker_user"])
                )
            })
        }
        AgentsCommand::EnrolmentToken(EnrolmentTokenCommand::Create { endpoints, expires }) => {
            let answer = client.post(&["api", "agents", "enrolment-tokens"], &token_body(endpoints, expires)).await?;
            if !session.json() {
                eprintln!(
                    "Enrolment token for {} endpoint(s), valid until {}; it enrols one agent process.",
                    count(&answer.value["endpoints"]),
                    time(&answer.value["expires_at"])
                );
            }
            // The bare token, so that `T=$(rampartctl agents enrolment-token create)` works.
            session.print(&answer, |t| format!("{}\n", text(&t["token"])))
        }
        AgentsCommand::EnrolmentToken(EnrolmentTokenCommand::List) => {
            let answer = client.get(&["api", "agents", "enrolment-tokens"], &[]).await?;
            session.print(&answer, render_tokens)
        }
        AgentsCommand::EnrolmentToken(EnrolmentTokenCommand::Revoke { id }) => {
            let answer = client.delete(&["api", "agents", "enrolment-tokens", &id], None).await?;
            session.print(&answer, |_| format!("Revoked enrolment token {id}.\n"))
        }
    }
}

fn render_list(answer: &Value) -> String {
    let agents = items(answer);
    if agents.is_empty() {
        return "No enrolled agents.\n".to_owned();
    }
    let mut table =
        Table::new(&["ID", "NAME", "STATE", "ENDPOINTS", "ENROLLED", "FROM", "BROKER USER"]).numeric(&["ENDPOINTS"]);
    for a in agents {
        table.row([
            text(&a["id"]),
            text(&a["name"]),
            text(&a["state"]),
            text(&a["endpoints"]),
            time(&a["enrolled_at"]),
            text(&a["enrolled_from"]),
            text(&a["broker_user"]),
        ]);
    }
    table.render()
}

fn render_one(a: &Value) -> String {
    let mut pairs = vec![
        ("Agent", text(&a["id"])),
        ("Name", text(&a["name"])),
        ("State", text(&a["state"])),
        ("Broker user", text(&a["broker_user"])),
        ("Queue", text(&a["queue"])),
        ("Enrolled", format!("{} from {}", time(&a["enrolled_at"]), text(&a["enrolled_from"]))),
        ("Token", text(&a["token_id"])),
    ];
    if !a["revoked_at"].is_null() {
        pairs.push(("Revoked", format!("{} by {}", time(&a["revoked_at"]), text(&a["revoked_by"]))));
    }
    let mut out = details(&pairs);
    let owned: Vec<String> = items(&a["owned_endpoints"]).iter().map(text).collect();
    out.push_str(&section(&format!("Endpoints ({})", owned.len()), &format!("{}\n", owned.join(" "))));
    out
}

fn render_tokens(answer: &Value) -> String {
    let tokens = items(answer);
    if tokens.is_empty() {
        return "No enrolment tokens.\n".to_owned();
    }
    let mut table =
        Table::new(&["ID", "STATE", "ENDPOINTS", "CREATED", "BY", "EXPIRES", "USED BY"]).numeric(&["ENDPOINTS"]);
    for t in tokens {
        table.row([
            text(&t["id"]),
            text(&t["state"]),
            text(&t["endpoints"]),
            time(&t["created_at"]),
            text(&t["created_by"]),
            time(&t["expires_at"]),
            text(&t["used_by"]),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_body_holds_only_what_was_given() {
        assert_eq!(token_body(None, None), json!({}));
        assert_eq!(
            token_body(Some(300), Some(Duration::from_secs(7200))),
            json!({"endpoints": 300, "expires_in_seconds": 7200})
        );
    }

    #[test]
    fn an_agent_list_is_a_table() {
        let list = json!([{"id": "ag-1", "name": "sim1", "state": "active", "endpoints": 3,
                           "enrolled_at": "2026-12-06T10:00:00Z", "enrolled_from": "10.0.0.5", "broker_user": "rampart.agent.paris.ag-1"}]);
        let out = render_list(&list);
        assert!(out.contains("ag-1") && out.contains("rampart.agent.paris.ag-1"), "{out}");
        assert_eq!(render_list(&json!([])), "No enrolled agents.\n");
    }
}
