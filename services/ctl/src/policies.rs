//! `rampartctl policies`: security policies and their assignments.
//!
//! A policy owned by the master is read-only on a slave: the server refuses
//! the change (409 `read_only`) and its message is printed as is. On a
//! master, `create --target` sends a policy to slaves (see [`crate::rollout`]).

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};

use crate::output::{details, items, on_off, text, time, Table};
use crate::rollout::{slaves_section, target_label, Sent, SlaveTarget};
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// List policies (OWNER says local or master).
    List,
    /// One policy with its assignments and how many endpoints applied it.
    Show {
        /// Policy id.
        id: String,
    },
    /// Create a policy; unset settings take the server's defaults.
    Create {
        /// Name of the new policy.
        name: String,
        #[command(flatten)]
        settings: SettingsArgs,
        /// Required on a master, refused elsewhere.
        #[command(flatten)]
        target: Option<SlaveTarget>,
    },
    /// Change a policy's name or settings (a new version goes to its endpoints).
    #[command(group(ArgGroup::new("change").required(true).multiple(true)
        .args(["name", "realtime", "scan_schedule", "update_interval"])))]
    Edit {
        /// Policy id.
        id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Delete a policy; its endpoints fall back to the next assignment or the default.
    Delete {
        /// Policy id.
        id: String,
    },
    /// Assign a policy to all endpoints, a group, a virtual group or an endpoint.
    Assign {
        /// Policy id.
        id: String,
        #[command(flatten)]
        target: PolicyTarget,
    },
    /// Remove one assignment of a policy.
    Unassign {
        /// Policy id.
        id: String,
        #[command(flatten)]
        target: PolicyTarget,
    },
}

/// Policy settings; each one left out keeps its current (or default) value.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    /// Real-time protection.
    #[arg(long, value_enum)]
    realtime: Option<Switch>,
    /// When scans run, e.g. "daily 02:00".
    #[arg(long, value_name = "SCHEDULE")]
    scan_schedule: Option<String>,
    /// Minutes between signature updates.
    #[arg(long, value_name = "MIN", value_parser = clap::value_parser!(u32).range(1..))]
    update_interval: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl SettingsArgs {
    /// The (partial) `settings` object.
    fn body(&self) -> Map<String, Value> {
        let mut settings = Map::new();
        if let Some(realtime) = self.realtime {
            settings.insert("realtime_protection".into(), json!(realtime == Switch::On));
        }
        if let Some(schedule) = &self.scan_schedule {
            settings.insert("scan_schedule".into(), json!(schedule));
        }
        if let Some(minutes) = self.update_interval {
            settings.insert("update_interval_minutes".into(), json!(minutes));
        }
        settings
    }
}

/// Exactly one assignment target.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PolicyTarget {
    /// Every endpoint of the site.
    #[arg(long)]
    all: bool,
    /// A network group.
    #[arg(long, value_name = "GID")]
    group: Option<i64>,
    /// A virtual group.
    #[arg(long, value_name = "VID")]
    virtual_group: Option<i64>,
    /// One endpoint.
    #[arg(long, value_name = "EID")]
    endpoint: Option<String>,
}

impl PolicyTarget {
    /// `{"target":"all"}` or `{"target":"group","id":"3"}`: ids are strings
    /// in assignments, whatever kind of id they are.
    fn body(&self) -> Value {
        match (self.all, self.group, self.virtual_group, &self.endpoint) {
            (_, Some(group), _, _) => json!({ "target": "group", "id": group.to_string() }),
            (_, _, Some(vg), _) => json!({ "target": "virtual_group", "id": vg.to_string() }),
            (_, _, _, Some(endpoint)) => json!({ "target": "endpoint", "id": endpoint }),
            _ => json!({ "target": "all" }),
        }
    }
}

/// `{"name", "settings", "target"?}`: the target only when sent to slaves.
fn create_body(name: &str, settings: &SettingsArgs, target: Option<&SlaveTarget>) -> Value {
    let mut body = json!({ "name": name, "settings": settings.body() });
    if let Some(target) = target {
        body["target"] = target.body();
    }
    body
}

pub async fn run(command: PoliciesCommand, session: &Session) -> anyhow::Result<()> {
    let client = &session.client;
    match command {
        PoliciesCommand::List => {
            let answer = client.get(&["api", "policies"], &[]).await?;
            session.print(&answer, render_list)
        }
        PoliciesCommand::Show { id } => {
            let answer = client.get(&["api", "policies", &id], &[]).await?;
            session.print(&answer, render_one)
        }
        PoliciesCommand::Create { name, settings, target } => {
            let body = create_body(&name, &settings, target.as_ref());
            let answer = client.post(&["api", "policies"], &body).await?;
            session.print(&answer, |p| format!("Created policy {} ({}).\n", text(&p["id"]), text(&p["name"])))
        }
        PoliciesCommand::Edit { id, name, settings } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), json!(name));
            }
            let settings = settings.body();
            if !settings.is_empty() {
                body.insert("settings".into(), Value::Object(settings));
            }
            let answer = client.patch(&["api", "policies", &id], &Value::Object(body)).await?;
            session.print(&answer, |p| format!("Policy {} is now version {}.\n", text(&p["name"]), text(&p["version"])))
        }
        PoliciesCommand::Delete { id } => {
            let answer = client.delete(&["api", "policies", &id], None).await?;
            session.print(&answer, |_| format!("Deleted policy {id}.\n"))
        }
        PoliciesCommand::Assign { id, target } => {
            let answer = client.post(&["api", "policies", &id, "assignments"], &target.body()).await?;
            session.print(&answer, assignments_line)
        }
        PoliciesCommand::Unassign { id, target } => {
            let answer = client.delete(&["api", "policies", &id, "assignments"], Some(&target.body())).await?;
            session.print(&answer, assignments_line)
        }
    }
}

/// `all`, `group 3`, `virtual group 2`, `endpoint sim1-00001`.
fn assignment_label(assignment: &Value) -> String {
    let id = text(&assignment["id"]);
    match assignment["target"].as_str() {
        Some("all") => "all".to_owned(),
        Some("virtual_group") => format!("virtual group {id}"),
        Some(kind) => format!("{kind} {id}"),
        None => text(assignment),
    }
}

fn assignments(policy: &Value) -> String {
    let labels: Vec<String> = items(&policy["assignments"]).iter().map(assignment_label).collect();
    if labels.is_empty() {
        "none".to_owned()
    } else {
        labels.join(", ")
    }
}

fn assignments_line(policy: &Value) -> String {
    format!(
        "Policy {} (version {}) is assigned to: {}.\n",
        text(&policy["name"]),
        text(&policy["version"]),
        assignments(policy)
    )
}

fn render_list(answer: &Value) -> String {
    let policies = items(answer);
    if policies.is_empty() {
        return "No policies.\n".to_owned();
    }
    let mut table =
        Table::new(&["ID", "NAME", "OWNER", "VERSION", "REALTIME", "SCAN SCHEDULE", "UPDATE (MIN)", "ASSIGNED TO"])
            .numeric(&["VERSION", "UPDATE (MIN)"]);
    for p in policies {
        let settings = &p["settings"];
        table.row([
            text(&p["id"]),
            text(&p["name"]),
            text(&p["owner"]),
            text(&p["version"]),
            on_off(&settings["realtime_protection"]),
            text(&settings["scan_schedule"]),
            text(&settings["update_interval_minutes"]),
            assignments(p),
        ]);
    }
    table.render()
}

fn render_one(p: &Value) -> String {
    let settings = &p["settings"];
    let owner = match p["owner"].as_str() {
        Some("master") => "master (read-only here)".to_owned(),
        _ => text(&p["owner"]),
    };
    let endpoints = &p["endpoints"];
    let mut pairs = vec![
        ("ID", text(&p["id"])),
        ("Name", text(&p["name"])),
        ("Owner", owner),
        ("Version", text(&p["version"])),
        ("Real-time", on_off(&settings["realtime_protection"])),
        ("Scan schedule", text(&settings["scan_schedule"])),
        ("Update interval", format!("{} min", text(&settings["update_interval_minutes"]))),
        ("Assigned to", assignments(p)),
        ("Endpoints", format!("{} assigned, {} applied", text(&endpoints["assigned"]), text(&endpoints["applied"]))),
        ("Created", time(&p["created_at"])),
        ("Updated", time(&p["updated_at"])),
    ];
    if let Some(target) = target_label(&p["target"]) {
        // A master's policy goes to slaves: no local owner, assignment or endpoints.
        pairs.retain(|(key, _)| !matches!(*key, "Owner" | "Assigned to" | "Endpoints"));
        pairs.insert(3, ("Target", target));
    }
    let mut out = details(&pairs);
    out.push_str(&slaves_section(p, Sent::Policy));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(subcommand)]
        command: PoliciesCommand,
    }

    fn parse(args: &[&str]) -> Result<PoliciesCommand, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("policies").chain(args.iter().copied())).map(|w| w.command)
    }

    fn target_body(args: &[&str]) -> Value {
        match parse(args).unwrap() {
            PoliciesCommand::Assign { target, .. } | PoliciesCommand::Unassign { target, .. } => target.body(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn target_flags_map_to_assignment_bodies() {
        assert_eq!(target_body(&["assign", "p1", "--all"]), json!({"target": "all"}));
        assert_eq!(target_body(&["assign", "p1", "--group", "3"]), json!({"target": "group", "id": "3"}));
        assert_eq!(
            target_body(&["unassign", "p1", "--virtual-group", "2"]),
            json!({"target": "virtual_group", "id": "2"})
        );
        assert_eq!(
            target_body(&["assign", "p1", "--endpoint", "sim1-00001"]),
            json!({"target": "endpoint", "id": "sim1-00001"})
        );
    }

    #[test]
    fn exactly_one_target() {
        assert!(parse(&["assign", "p1"]).is_err());
        assert!(parse(&["assign", "p1", "--all", "--group", "3"]).is_err());
    }

    #[test]
    fn settings_are_partial_and_an_edit_must_change_something() {
        let PoliciesCommand::Create { settings, .. } = parse(&["create", "Office", "--realtime", "off"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(Value::Object(settings.body()), json!({"realtime_protection": false}));
        assert!(parse(&["edit", "p1"]).is_err());
        assert!(parse(&["edit", "p1", "--update-interval", "30"]).is_ok());
        assert!(parse(&["edit", "p1", "--update-interval", "0"]).is_err());
    }

    #[test]
    fn create_sends_a_target_only_to_slaves() {
        let body = |args: &[&str]| match parse(args).unwrap() {
            PoliciesCommand::Create { name, settings, target } => create_body(&name, &settings, target.as_ref()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            body(&["create", "Office", "--realtime", "on"]),
            json!({"name": "Office", "settings": {"realtime_protection": true}})
        );
        assert_eq!(
            body(&["create", "HQ", "--target", "lyon", "nice", "--group", "Paris"]),
            json!({"name": "HQ", "settings": {},
                   "target": {"slaves": ["lyon", "nice"], "group": "Paris"}})
        );
    }

    #[test]
    fn show_on_a_master_adds_the_target_and_the_slaves() {
        let policy = json!({"id": "p1", "name": "HQ", "owner": "local", "version": 2,
            "target": {"slaves": "all", "group": "Paris"},
            "slaves": [{"slave": "lyon", "version": 2, "state": "applied", "reason": null,
                        "endpoints": {"assigned": 3, "applied": 3}, "updated_at": "x"}]});
        let out = render_one(&policy);
        assert!(out.contains("Version:          2\nTarget:           all slaves; group Paris\n"), "{out}");
        assert!(
            out.ends_with(
                "\nSlaves\nSLAVE  VERSION  STATE    ENDPOINTS APPLIED  UPDATED  REASON\n\
                           lyon         2  applied                3/3  x        -\n"
            ),
            "{out}"
        );
        assert!(!render_one(&json!({"id": "p2"})).contains("Slaves"));
    }

    #[test]
    fn the_owner_column_shows_who_owns_a_policy() {
        let answer = json!([
            {"id": "a", "name": "Office", "owner": "local", "version": 3,
             "settings": {"realtime_protection": true, "scan_schedule": "daily 02:00", "update_interval_minutes": 60},
             "assignments": [{"target": "group", "id": "3"}, {"target": "all"}]},
            {"id": "b", "name": "HQ baseline", "owner": "master", "version": 1, "settings": {}, "assignments": []}
        ]);
        let out = render_list(&answer);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "ID  NAME         OWNER   VERSION  REALTIME  SCAN SCHEDULE  UPDATE (MIN)  ASSIGNED TO");
        assert_eq!(lines[1], "a   Office       local         3  on        daily 02:00              60  group 3, all");
        assert_eq!(lines[2], "b   HQ baseline  master        1  -         -                         -  none");
    }
}
