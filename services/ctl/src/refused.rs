//! `rampartctl refused`: the audit of messages the server refused (forged,
//! malformed, from an unknown or removed sender, poison) or ignored as late,
//! newest first, from `GET /api/refused-messages`.

use clap::Args;
use serde_json::Value;

use crate::output::{count, items, text, time, Table};
use crate::session::Session;

#[derive(Debug, Args)]
pub struct RefusedArgs {
    /// Only those refused on this queue (e.g. t.master.status).
    #[arg(long, value_name = "QUEUE")]
    queue: Option<String>,
    /// On a master: only those naming this slave.
    #[arg(long, value_name = "ID")]
    slave: Option<String>,
    /// Only those whose envelope names this sender.
    #[arg(long, value_name = "ID")]
    sender: Option<String>,
    /// At most this many (server default 100).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
}

pub async fn run(args: RefusedArgs, session: &Session) -> anyhow::Result<()> {
    let mut query = Vec::new();
    for (name, value) in [("queue", args.queue), ("slave", args.slave), ("sender", args.sender)] {
        if let Some(value) = value {
            query.push((name, value));
        }
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let answer = session.client.get(&["api", "refused-messages"], &query).await?;
    session.print(&answer, render)
}

fn render(answer: &Value) -> String {
    let messages = items(&answer["messages"]);
    if messages.is_empty() {
        return "No refused messages.\n".to_owned();
    }
    let mut table = Table::new(&["REFUSED", "QUEUE", "SENDER", "SLAVE", "KIND", "REASON"]);
    for m in messages {
        table.row([
            time(&m["refused_at"]),
            text(&m["queue"]),
            text(&m["sender"]),
            text(&m["slave"]),
            text(&m["kind"]),
            text(&m["reason"]),
        ]);
    }
    let total = count(&answer["total"]);
    let mut out = table.render();
    if total > messages.len() as u64 {
        out.push_str(&format!("{} of {total} shown (newest first; --limit shows more).\n", messages.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shows_each_refusal_and_how_many_are_left_out() {
        let answer = json!({"total": 3, "messages": [
            {"refused_at": "2026-11-26T10:00:00Z", "queue": "t.master.status", "sender": "paris", "slave": "lyon",
             "kind": "slave.heartbeat", "reason": "sender 'paris' is not allowed here"}]});
        let out = render(&answer);
        assert!(
            out.contains("t.master.status")
                && out.contains("paris")
                && out.contains("lyon")
                && out.contains("not allowed"),
            "{out}"
        );
        assert!(out.contains("1 of 3 shown"), "{out}");
        assert_eq!(render(&json!({"total": 0, "messages": []})), "No refused messages.\n");
    }
}
