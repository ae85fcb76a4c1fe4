//! `rampartctl tree`: the site drawn as a tree, network or virtual view.
//!
//! ```text
//! paris (site)
//! ├── Paris office (group 2, 2 endpoints)
//! │   ├── pc-00001  sim1-00001  protected
//! │   └── pc-00002  sim1-00002  infected
//! └── Default (group 1, 480 endpoints)
//!     ├── pc-00003  sim1-00003  protected
//!     ...
//!     └── ... and 460 more
//! ```
//!
//! Nodes are drawn generically (`kind`, `name`, `id`, `children`,
//! `endpoints`), so a master's view, from its copy of each slave's data,
//! renders the same way with the slaves between the root and the groups:
//!
//! ```text
//! hq (master)
//! ├── lyon (slave, removing, data as of 2026-11-26 11:00:00)
//! │   └── Default (group 1, 120 endpoints)
//! │       ...
//! └── paris (slave, active, nothing replicated yet)
//! ```

use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::output::{count, items, plural, text, time};
use crate::session::Session;

/// How many endpoints a group shows before `... and N more`.
pub const ENDPOINTS_SHOWN: usize = 20;

#[derive(Debug, Args)]
pub struct TreeArgs {
    /// Network groups, or operator-defined virtual groups.
    #[arg(long, value_enum, default_value = "network")]
    view: TreeView,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TreeView {
    Network,
    Virtual,
}

pub async fn run(args: TreeArgs, session: &Session) -> anyhow::Result<()> {
    let view = match args.view {
        TreeView::Network => "network",
        TreeView::Virtual => "virtual",
    };
    let answer = session.client.get(&["api", "tree"], &[("view", view.to_owned())]).await?;
    session.print(&answer, |answer| render_tree(&answer["root"], ENDPOINTS_SHOWN))
}

/// One line below a node: a child node, or a line of text.
enum Item<'a> {
    Node(&'a Value),
    Line(String),
}

/// Draws `root` and everything below it, listing at most `shown` endpoints
/// per node.
pub fn render_tree(root: &Value, shown: usize) -> String {
    let mut out = node_label(root);
    out.push('\n');
    render_below(root, "", shown, &mut out);
    out
}

fn render_below(node: &Value, prefix: &str, shown: usize, out: &mut String) {
    let mut below: Vec<Item> = items(&node["children"]).iter().map(Item::Node).collect();
    let endpoints = items(&node["endpoints"]);
    let listed = &endpoints[..endpoints.len().min(shown)];
    below.extend(endpoint_lines(listed).into_iter().map(Item::Line));
    let hidden = endpoint_total(node) - listed.len() as u64;
    if hidden > 0 {
        below.push(Item::Line(format!("... and {hidden} more")));
    }
    for (i, item) in below.iter().enumerate() {
        let last = i + 1 == below.len();
        let (branch, indent) = if last { ("└── ", "    ") } else { ("├── ", "│   ") };
        match item {
            Item::Node(child) => {
                out.push_str(&format!("{prefix}{branch}{}\n", node_label(child)));
                render_below(child, &format!("{prefix}{indent}"), shown, out);
            }
            Item::Line(line) => out.push_str(&format!("{prefix}{branch}{line}\n")),
        }
    }
}

/// How many endpoints a node holds: the list's length, or the server's count
/// if it sent one and cut the list short.
fn endpoint_total(node: &Value) -> u64 {
    let listed = items(&node["endpoints"]).len() as u64;
    listed.max(count(&node["endpoint_count"]))
}

/// `paris (site)`, `Default (group 1, 500 endpoints)`, `hq (master)`,
/// `paris (slave, active, data as of 2026-11-26 11:00:00)`.
fn node_label(node: &Value) -> String {
    let kind = node["kind"].as_str().unwrap_or("node").replace('_', " ");
    let mut about = kind;
    if !node["id"].is_null() {
        about.push_str(&format!(" {}", text(&node["id"])));
    }
    if node["kind"] == "slave" {
        about.push_str(&slave_about(node));
    }
    let holds_endpoints = node.get("endpoints").is_some() || node.get("endpoint_count").is_some();
    let total = endpoint_total(node);
    // A site (the server sends `"endpoints": []` on it) only holds groups.
    if holds_endpoints && (total > 0 || node["kind"] != "site") {
        about.push_str(&format!(", {}", plural(total, "endpoint")));
    }
    format!("{} ({about})", text(&node["name"]))
}

/// `, active, data as of ...`: a slave's state and how fresh the master's
/// copy of its data is.
fn slave_about(slave: &Value) -> String {
    let mut about = String::new();
    if !slave["state"].is_null() {
        about.push_str(&format!(", {}", text(&slave["state"])));
    }
    match slave.get("synced_as_of") {
        Some(Value::Null) => about.push_str(", nothing replicated yet"),
        Some(at) => about.push_str(&format!(", data as of {}", time(at))),
        None => {}
    }
    about
}

/// `hostname  id  status` with the columns lined up within one group.
fn endpoint_lines(endpoints: &[Value]) -> Vec<String> {
    let cells: Vec<[String; 3]> =
        endpoints.iter().map(|e| [text(&e["hostname"]), text(&e["id"]), text(&e["status"])]).collect();
    let width = |i: usize| cells.iter().map(|c| c[i].chars().count()).max().unwrap_or(0);
    let (host_width, id_width) = (width(0), width(1));
    cells.iter().map(|[host, id, status]| format!("{host:<host_width$}  {id:<id_width$}  {status}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn endpoint(n: usize, status: &str) -> Value {
        json!({"id": format!("sim1-{n:05}"), "hostname": format!("pc-{n}"), "status": status})
    }

    #[test]
    fn sites_groups_and_endpoints_are_indented() {
        let root = json!({"kind": "site", "name": "paris", "endpoints": [], "children": [
            {"kind": "group", "id": 2, "name": "Paris office", "endpoints": [endpoint(1, "protected"), endpoint(10, "infected")],
             "children": [{"kind": "group", "id": 3, "name": "Lab", "children": [], "endpoints": []}]},
            {"kind": "group", "id": 1, "name": "Default", "children": [], "endpoints": [endpoint(3, "at_risk")]}
        ]});
        let expected = "\
paris (site)
├── Paris office (group 2, 2 endpoints)
│   ├── Lab (group 3, 0 endpoints)
│   ├── pc-1   sim1-00001  protected
│   └── pc-10  sim1-00010  infected
└── Default (group 1, 1 endpoint)
    └── pc-3  sim1-00003  at_risk
";
        assert_eq!(render_tree(&root, 20), expected);
    }

    #[test]
    fn many_endpoints_are_cut_short() {
        let endpoints: Vec<Value> = (1..=25).map(|n| endpoint(n, "protected")).collect();
        let root = json!({"kind": "site", "name": "paris", "children": [
            {"kind": "group", "id": 1, "name": "Default", "children": [], "endpoints": endpoints}]});
        let out = render_tree(&root, ENDPOINTS_SHOWN);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1 + 1 + 20 + 1);
        assert_eq!(lines[1], "└── Default (group 1, 25 endpoints)");
        assert_eq!(lines[21], "    ├── pc-20  sim1-00020  protected");
        assert_eq!(lines[22], "    └── ... and 5 more");
    }

    #[test]
    fn a_master_draws_its_slaves_between_itself_and_their_groups() {
        let root = json!({"kind": "master", "name": "hq", "children": [
            {"kind": "slave", "name": "lyon", "state": "removing", "synced_as_of": "yesterday", "children": [
                {"kind": "group", "id": 1, "name": "Default", "children": [], "endpoints": [endpoint(1, "protected")]}]},
            {"kind": "slave", "name": "paris", "state": "active", "synced_as_of": null, "children": [
                {"kind": "group", "id": 1, "name": "Default", "children": [], "endpoints": []}]}
        ]});
        let expected = "\
hq (master)
├── lyon (slave, removing, data as of yesterday)
│   └── Default (group 1, 1 endpoint)
│       └── pc-1  sim1-00001  protected
└── paris (slave, active, nothing replicated yet)
    └── Default (group 1, 0 endpoints)
";
        assert_eq!(render_tree(&root, 20), expected);
    }

    #[test]
    fn a_server_count_beyond_the_list_is_reported() {
        let root = json!({"kind": "virtual_group", "id": 4, "name": "Servers", "endpoint_count": 40,
                          "endpoints": [endpoint(1, "protected")]});
        assert_eq!(
            render_tree(&root, 20),
            "Servers (virtual group 4, 40 endpoints)\n├── pc-1  sim1-00001  protected\n└── ... and 39 more\n"
        );
    }
}
