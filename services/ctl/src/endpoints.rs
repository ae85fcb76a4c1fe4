//! `rampartctl endpoints`: list, inspect and move managed computers.
//!
//! On a master the endpoints are its copy of every slave's: each names its
//! `slave`, the table gains a `SLAVE` column, and `--slave` picks one slave's
//! endpoints (group and endpoint ids are a slave's own).
//!
//! Also home of the endpoint table, which `virtual-groups members` reuses.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::output::{count, details, items, on_off, section, text, time, Table};
use crate::session::Session;
use crate::views::detection_table;

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// List endpoints, optionally filtered.
    List(ListArgs),
    /// One endpoint with its effective policy and last detections.
    Show {
        /// Endpoint id (e.g. sim1-00001).
        id: String,
        /// On a master: the slave the endpoint belongs to, needed when two
        /// slaves use the same id.
        #[arg(long, value_name = "ID")]
        slave: Option<String>,
    },
    /// Move an endpoint to another network group (network builder).
    Move {
        /// Endpoint id.
        id: String,
        /// Id of the network group to move it to.
        #[arg(long, value_name = "GID")]
        group: i64,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// On a master: only the endpoints of this slave.
    #[arg(long, value_name = "ID")]
    slave: Option<String>,
    /// Only endpoints in this network group (on a master, with --slave).
    #[arg(long, value_name = "GID")]
    group: Option<i64>,
    /// Only endpoints with this security status.
    #[arg(long, value_enum)]
    status: Option<EndpointStatus>,
    /// Only licensed (true) or unlicensed (false) endpoints.
    #[arg(long, value_name = "true|false")]
    licensed: Option<bool>,
    /// Hostname or IP substring.
    #[arg(long, value_name = "TEXT")]
    search: Option<String>,
    /// At most this many (server default 100, max 10000).
    #[arg(long, value_name = "N")]
    limit: Option<u32>,
    /// Skip this many (paging; a deep page of a master's list is slow:
    /// use --after there).
    #[arg(long, value_name = "N", conflicts_with = "after")]
    offset: Option<u32>,
    /// On a master: start after this endpoint (`SLAVE/ID`, the `next` the
    /// page before printed). Any depth costs the same as the first page.
    #[arg(long, value_name = "SLAVE/ID")]
    after: Option<String>,
}

/// The security status the server derives for an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum EndpointStatus {
    Protected,
    AtRisk,
    Infected,
    Unprotected,
}

impl EndpointStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Protected => "protected",
            Self::AtRisk => "at_risk",
            Self::Infected => "infected",
            Self::Unprotected => "unprotected",
        }
    }
}

impl ListArgs {
    /// The query string of `GET /api/endpoints`; unset filters are left out.
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(slave) = &self.slave {
            query.push(("slave", slave.clone()));
        }
        if let Some(group) = self.group {
            query.push(("group", group.to_string()));
        }
        if let Some(status) = self.status {
            query.push(("status", status.as_str().to_owned()));
        }
        if let Some(licensed) = self.licensed {
            query.push(("licensed", licensed.to_string()));
        }
        if let Some(search) = &self.search {
            query.push(("search", search.clone()));
        }
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(offset) = self.offset {
            query.push(("offset", offset.to_string()));
        }
        if let Some(after) = &self.after {
            query.push(("after", after.clone()));
        }
        query
    }
}

pub async fn run(command: EndpointsCommand, session: &Session) -> anyhow::Result<()> {
    let client = &session.client;
    match command {
        EndpointsCommand::List(args) => {
            let answer = client.get(&["api", "endpoints"], &args.query()).await?;
            session.print(&answer, render_list)
        }
        EndpointsCommand::Show { id, slave } => {
            let query: Vec<_> = slave.map(|slave| ("slave", slave)).into_iter().collect();
            let answer = client.get(&["api", "endpoints", &id], &query).await?;
            session.print(&answer, render_one)
        }
        EndpointsCommand::Move { id, group } => {
            let answer = client.post(&["api", "endpoints", &id, "move"], &json!({ "group_id": group })).await?;
            session.print(&answer, |moved| match moved["hostname"].as_str() {
                Some(hostname) => format!(
                    "Moved {hostname} ({id}) to group {} ({}).\n",
                    text(&moved["group"]),
                    text(&moved["group_id"])
                ),
                None => format!("Moved endpoint {id} to group {group}.\n"),
            })
        }
    }
}

/// `{"total": 500, "endpoints": [...]}` as a table with a paging hint. A
/// master's list says when its total is an estimate (`total_exact`) and
/// where the next page starts (`next`).
fn render_list(answer: &Value) -> String {
    let endpoints = items(&answer["endpoints"]);
    if endpoints.is_empty() {
        return "No endpoints match.\n".to_owned();
    }
    let mut out = endpoint_table(endpoints).render();
    let total = count(&answer["total"]);
    let about = if answer["total_exact"] == Value::Bool(false) { "about " } else { "" };
    match answer["next"].as_str() {
        Some(next) => out.push_str(&format!(
            "Showing {} of {about}{total} endpoints; the next page: --after {next}\n",
            endpoints.len()
        )),
        None if total > endpoints.len() as u64 && answer.get("next").is_none() => out.push_str(&format!(
            "Showing {} of {total} endpoints; use --limit and --offset to see more.\n",
            endpoints.len()
        )),
        None => {}
    }
    out
}

/// The endpoint columns an operator scans for: who, where, how safe. A
/// master's endpoints (which name their `slave`) lead with a `SLAVE` column.
pub fn endpoint_table(endpoints: &[Value]) -> Table {
    let on_master = endpoints.iter().any(|e| e.get("slave").is_some());
    let mut headers = Vec::new();
    if on_master {
        headers.push("SLAVE");
    }
    headers.extend([
        "ID",
        "HOSTNAME",
        "IP",
        "GROUP",
        "STATUS",
        "LICENSED",
        "ONLINE",
        "SIGNATURES",
        "POLICY",
        "LAST SEEN",
    ]);
    let mut table = Table::new(&headers);
    for e in endpoints {
        let slave = on_master.then(|| text(&e["slave"]));
        table.row(slave.into_iter().chain([
            text(&e["id"]),
            text(&e["hostname"]),
            text(&e["ip"]),
            text(&e["group"]),
            text(&e["status"]),
            text(&e["licensed"]),
            text(&e["online"]),
            text(&e["signatures_date"]),
            policy_label(e),
            time(&e["last_seen"]),
        ]));
    }
    table
}

/// `Office v2`, `default` for the built-in policy, and `(pending)` while the
/// agent has not yet reported applying what the server assigned.
pub fn policy_label(endpoint: &Value) -> String {
    let assigned = &endpoint["policy"];
    let mut label = match policy_key(assigned) {
        Some(_) => format!("{} v{}", text(&assigned["name"]), text(&assigned["version"])),
        None => "default".to_owned(),
    };
    if policy_key(assigned) != policy_key(&endpoint["applied_policy"]) {
        label.push_str(" (pending)");
    }
    label
}

/// `(id, version)` of a policy reference; `None` for the built-in default,
/// which the server sends as `null` or as an object whose `id` is `null`.
fn policy_key(policy: &Value) -> Option<(&Value, &Value)> {
    (!policy["id"].is_null()).then(|| (&policy["id"], &policy["version"]))
}

fn render_one(e: &Value) -> String {
    let policy = &e["policy"];
    let policy = if policy_key(policy).is_some() {
        format!("{} v{} ({})", text(&policy["name"]), text(&policy["version"]), text(&policy["id"]))
    } else {
        "built-in default".to_owned()
    };
    let applied = &e["applied_policy"];
    let applied = match policy_key(applied) {
        _ if applied.is_null() => "none reported".to_owned(),
        Some(_) => format!("v{} ({})", text(&applied["version"]), text(&applied["id"])),
        None => "built-in default".to_owned(),
    };
    let online = if e["online"].as_bool() == Some(true) { "online" } else { "offline" };
    let mut pairs = Vec::new();
    if let Some(slave) = e.get("slave") {
        pairs.push(("Slave", text(slave)));
    }
    pairs.extend([
        ("ID", text(&e["id"])),
        ("Hostname", text(&e["hostname"])),
        ("IP", text(&e["ip"])),
        ("OS", text(&e["os"])),
        ("Group", format!("{} ({})", text(&e["group"]), text(&e["group_id"]))),
        ("Status", format!("{}, {online}", text(&e["status"]))),
        ("Licensed", text(&e["licensed"])),
        ("Agent", text(&e["agent_version"])),
        ("Signatures", format!("{} ({})", text(&e["signatures_version"]), text(&e["signatures_date"]))),
        ("Real-time", on_off(&e["realtime_protection"])),
        ("Active threats", text(&e["active_threats"])),
        ("Policy", policy),
        ("Applied policy", applied),
        ("Last seen", time(&e["last_seen"])),
        ("Enrolled", time(&e["enrolled_at"])),
    ]);
    let mut out = details(&pairs);
    // docs/api.md does not name the field; `detections` is the natural one.
    let detections = items(if e["detections"].is_array() { &e["detections"] } else { &e["recent_detections"] });
    let body = if detections.is_empty() { "None.\n".to_owned() } else { detection_table(detections, false).render() };
    out.push_str(&section("Last detections", &body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn list_args(args: &[&str]) -> ListArgs {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ListArgs,
        }
        let argv = std::iter::once("list").chain(args.iter().copied());
        Wrapper::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn filters_become_the_query_string() {
        assert!(list_args(&[]).query().is_empty());
        let query = list_args(&[
            "--group",
            "3",
            "--status",
            "at_risk",
            "--licensed",
            "false",
            "--search",
            "pc-0",
            "--limit",
            "20",
        ])
        .query();
        let expected =
            [("group", "3"), ("status", "at_risk"), ("licensed", "false"), ("search", "pc-0"), ("limit", "20")];
        assert_eq!(query, expected.map(|(k, v)| (k, v.to_owned())));
    }

    #[test]
    fn a_master_pages_after_an_endpoint() {
        let query = list_args(&["--after", "paris/sim2-00049", "--limit", "50"]).query();
        let expected = [("limit", "50"), ("after", "paris/sim2-00049")];
        assert_eq!(query, expected.map(|(k, v)| (k, v.to_owned())));
        let clash = ["list", "--after", "paris/x", "--offset", "5"];
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: ListArgs,
        }
        assert!(Wrapper::try_parse_from(clash).is_err(), "--offset and --after go apart");
    }

    #[test]
    fn a_masters_estimated_total_says_so_and_names_the_next_page() {
        let answer = json!({"total": 9_998_000, "total_exact": false, "next": "paris/sim2-00001",
                            "endpoints": [{"slave": "paris", "id": "sim2-00001", "hostname": "pc-1"}]});
        let out = render_list(&answer);
        assert!(
            out.ends_with("Showing 1 of about 9998000 endpoints; the next page: --after paris/sim2-00001\n"),
            "{out}"
        );
        let last = json!({"total": 2, "total_exact": true, "next": null,
                          "endpoints": [{"slave": "paris", "id": "sim2-00001", "hostname": "pc-1"}]});
        assert!(!render_list(&last).contains("Showing"), "the last page has no next");
    }

    #[test]
    fn a_master_filters_by_slave() {
        let query = list_args(&["--slave", "paris", "--group", "2"]).query();
        let expected = [("slave", "paris"), ("group", "2")];
        assert_eq!(query, expected.map(|(k, v)| (k, v.to_owned())));
    }

    #[test]
    fn a_masters_endpoints_lead_with_their_slave() {
        let endpoint = |slave: &str, id: &str| {
            json!({"slave": slave, "id": id, "hostname": "pc-1", "ip": "10.0.0.1", "group": "Default",
                   "status": "protected", "licensed": true, "online": false, "signatures_date": null,
                   "policy": {"id": null}, "applied_policy": {"id": null}, "last_seen": null})
        };
        let table = endpoint_table(&[endpoint("lyon", "sim1-00001"), endpoint("paris", "sim2-00001")]);
        assert_eq!(
            table.render(),
            "SLAVE  ID          HOSTNAME  IP        GROUP    STATUS     LICENSED  ONLINE  SIGNATURES  POLICY   LAST SEEN\n\
             lyon   sim1-00001  pc-1      10.0.0.1  Default  protected  yes       no      -           default  -\n\
             paris  sim2-00001  pc-1      10.0.0.1  Default  protected  yes       no      -           default  -\n"
        );
        let mut local = endpoint("lyon", "sim1-00001");
        local.as_object_mut().unwrap().remove("slave");
        assert!(endpoint_table(&[local]).render().starts_with("ID          HOSTNAME"));
    }

    #[test]
    fn a_masters_endpoint_names_its_slave() {
        let out = render_one(&json!({"slave": "paris", "id": "sim2-00001", "detections": []}));
        assert!(out.starts_with("Slave:           paris\nID:              sim2-00001\n"), "{out}");
        let out = render_one(&json!({"id": "sim1-00001", "detections": []}));
        assert!(out.starts_with("ID:              sim1-00001\n"), "{out}");
    }

    #[test]
    fn policy_labels_say_when_the_agent_lags() {
        let e =
            json!({"policy": {"id": "p", "name": "Office", "version": 2}, "applied_policy": {"id": "p", "version": 2}});
        assert_eq!(policy_label(&e), "Office v2");
        let e =
            json!({"policy": {"id": "p", "name": "Office", "version": 3}, "applied_policy": {"id": "p", "version": 2}});
        assert_eq!(policy_label(&e), "Office v3 (pending)");
        assert_eq!(policy_label(&json!({"policy": null, "applied_policy": null})), "default");
        // What the server sends for the built-in default policy.
        let e = json!({"policy": {"id": null, "name": "Default", "version": 0}, "applied_policy": null});
        assert_eq!(policy_label(&e), "default");
        let e = json!({"policy": {"id": null, "name": "Default", "version": 0}, "applied_policy": {"id": "p", "version": 1}});
        assert_eq!(policy_label(&e), "default (pending)");
    }

    #[test]
    fn a_short_page_says_how_many_there_are() {
        let answer =
            json!({"total": 500, "endpoints": [{"id": "sim1-00001", "hostname": "pc-00001", "status": "protected"}]});
        let out = render_list(&answer);
        assert!(out.starts_with("ID          HOSTNAME  IP"), "{out}");
        assert!(out.ends_with("Showing 1 of 500 endpoints; use --limit and --offset to see more.\n"), "{out}");
    }
}
