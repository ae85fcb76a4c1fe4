//! A slave's links to its master's broker, as `status`, `replication` and
//! `slaves show` print them.

use serde_json::Value;

use crate::output::{items, text, Table};

/// A slave's links (its site runs a broker of its own): state, the
/// broker's reason for one that is not running, messages waiting here.
pub fn render_links(report: &Value) -> String {
    if let Some(error) = report["error"].as_str() {
        return format!("Unknown: {error}\n");
    }
    let mut table = Table::new(&["LINK", "STATE", "WAITING", "REASON"]).numeric(&["WAITING"]);
    for link in items(&report["links"]) {
        let waiting = if link["waiting"].is_null() { "-".to_owned() } else { text(&link["waiting"]) };
        let reason = link["reason"].as_str().unwrap_or("").to_owned();
        table.row([text(&link["carries"]), text(&link["state"]), waiting, reason]);
    }
    table.render()
}
