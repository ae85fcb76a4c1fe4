//! `rampartctl tasks`: scan and update tasks and their per-endpoint results.
//!
//! Progress reads `450/500 (90%)`: endpoints finished (succeeded, failed or
//! cancelled) out of all targeted, with the server's percentage.
//!
//! On a master, `create --target` sends a task to slaves instead of this
//! server's endpoints (see [`crate::task_target`]); `show` adds each slave's
//! progress.

use clap::{Args, Subcommand, ValueEnum};
use rampart_shared::messages;
use serde_json::{json, Value};

use crate::output::{count, details, items, section, text, time, Table};
use crate::rollout::{progress_label, slaves_section, target_label, Sent};
use crate::session::Session;
use crate::task_target::TaskTarget;

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// List tasks, newest first (OWNER says local or master).
    List,
    /// Create a task; prints the new task's id.
    Create(CreateArgs),
    /// One task with its per-endpoint results.
    Show {
        /// Task id.
        id: String,
    },
    /// Cancel a task on every endpoint that has not finished it.
    Cancel {
        /// Task id.
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What the endpoints do.
    #[arg(long, value_enum)]
    kind: TaskKind,
    /// Task name (default: the kind and the current time).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    target: TaskTarget,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum TaskKind {
    QuickScan,
    FullScan,
    Update,
}

impl TaskKind {
    /// The kind as the API names it.
    fn wire(self) -> messages::TaskKind {
        match self {
            Self::QuickScan => messages::TaskKind::QuickScan,
            Self::FullScan => messages::TaskKind::FullScan,
            Self::Update => messages::TaskKind::Update,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::QuickScan => "Quick scan",
            Self::FullScan => "Full scan",
            Self::Update => "Signature update",
        }
    }
}

impl CreateArgs {
    fn body(&self, now: chrono::DateTime<chrono::Local>) -> Value {
        let name = match &self.name {
            Some(name) => name.clone(),
            None => format!("{} {}", self.kind.label(), now.format("%Y-%m-%d %H:%M")),
        };
        json!({ "name": name, "kind": self.kind.wire().as_str(), "target": self.target.body() })
    }
}

pub async fn run(command: TasksCommand, session: &Session) -> anyhow::Result<()> {
    let client = &session.client;
    match command {
        TasksCommand::List => {
            let answer = client.get(&["api", "tasks"], &[]).await?;
            session.print(&answer, render_list)
        }
        TasksCommand::Create(args) => {
            let answer = client.post(&["api", "tasks"], &args.body(chrono::Local::now())).await?;
            // The bare id, so that `id=$(rampartctl tasks create ...)` works.
            session.print(&answer, |task| format!("{}\n", text(&task["id"])))
        }
        TasksCommand::Show { id } => {
            let answer = client.get(&["api", "tasks", &id], &[]).await?;
            session.print(&answer, render_one)
        }
        TasksCommand::Cancel { id } => {
            let answer = client.post(&["api", "tasks", &id, "cancel"], &json!({})).await?;
            session.print(&answer, |task| {
                format!(
                    "Task {} ({}) is {}: {} finished.\n",
                    text(&task["id"]),
                    text(&task["name"]),
                    text(&task["state"]),
                    progress_label(&task["progress"])
                )
            })
        }
    }
}

fn render_list(answer: &Value) -> String {
    let tasks = items(answer);
    if tasks.is_empty() {
        return "No tasks.\n".to_owned();
    }
    let mut table = Table::new(&["ID", "NAME", "KIND", "OWNER", "STATE", "PROGRESS", "SUCCEEDED", "FAILED", "CREATED"])
        .numeric(&["PROGRESS", "SUCCEEDED", "FAILED"]);
    for t in tasks {
        let progress = &t["progress"];
        table.row([
            text(&t["id"]),
            text(&t["name"]),
            text(&t["kind"]),
            text(&t["owner"]),
            text(&t["state"]),
            progress_label(progress),
            count(&progress["succeeded"]).to_string(),
            count(&progress["failed"]).to_string(),
            time(&t["created_at"]),
        ]);
    }
    table.render()
}

fn render_one(t: &Value) -> String {
    let p = &t["progress"];
    let breakdown = format!(
        "{} finished: {} succeeded, {} failed, {} cancelled; {} running, {} pending",
        progress_label(p),
        count(&p["succeeded"]),
        count(&p["failed"]),
        count(&p["cancelled"]),
        count(&p["running"]),
        count(&p["pending"]),
    );
    let mut pairs = vec![
        ("ID", text(&t["id"])),
        ("Name", text(&t["name"])),
        ("Kind", text(&t["kind"])),
        ("Owner", text(&t["owner"])),
        ("State", text(&t["state"])),
        ("Created", time(&t["created_at"])),
        ("Progress", breakdown),
    ];
    if let Some(target) = target_label(&t["target"]) {
        pairs.insert(5, ("Target", target));
    }
    let mut out = details(&pairs);
    out.push_str(&slaves_section(t, Sent::Task));
    let results = items(&t["results"]);
    if results.is_empty() && t["slaves"].is_array() {
        // A master's task runs on the slaves' endpoints, not its own.
        return out;
    }
    let body = if results.is_empty() {
        "None yet.\n".to_owned()
    } else {
        let mut table = Table::new(&["ENDPOINT", "HOSTNAME", "STATE", "FILES", "DETECTIONS", "UPDATED", "MESSAGE"])
            .numeric(&["FILES", "DETECTIONS"]);
        for r in results {
            table.row([
                text(&r["endpoint_id"]),
                text(&r["hostname"]),
                text(&r["state"]),
                text(&r["scanned_files"]),
                text(&r["detections"]),
                time(&r["updated_at"]),
                text(&r["message"]),
            ]);
        }
        table.render()
    };
    out.push_str(&section("Results", &body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: CreateArgs,
    }

    fn parse(args: &[&str]) -> Result<CreateArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("create").chain(args.iter().copied())).map(|w| w.args)
    }

    fn now() -> chrono::DateTime<chrono::Local> {
        "2026-11-26T10:00:00+00:00"
            .parse::<chrono::DateTime<chrono::FixedOffset>>()
            .unwrap()
            .with_timezone(&chrono::Local)
    }

    #[test]
    fn target_flags_map_to_the_task_body() {
        let body = parse(&["--kind", "quick_scan", "--name", "Weekly scan", "--all"]).unwrap().body(now());
        assert_eq!(body, json!({"name": "Weekly scan", "kind": "quick_scan", "target": {"all": true}}));

        let args =
            parse(&["--kind", "update", "--group", "1", "2", "--group", "5", "--endpoint", "sim1-00001"]).unwrap();
        assert_eq!(
            args.body(now())["target"],
            json!({"groups": [1, 2, 5], "virtual_groups": [], "endpoints": ["sim1-00001"]})
        );
        assert!(args.body(now())["name"].as_str().unwrap().starts_with("Signature update 2026-11-"));
    }

    #[test]
    fn a_target_is_required_and_all_stands_alone() {
        assert!(parse(&["--kind", "full_scan"]).is_err());
        assert!(parse(&["--kind", "full_scan", "--all", "--group", "1"]).is_err());
        assert!(parse(&["--kind", "nap", "--all"]).is_err());
        assert!(parse(&["--kind", "full_scan", "--virtual-group", "2"]).is_ok());
    }

    #[test]
    fn show_on_a_master_lists_the_slaves_instead_of_endpoint_results() {
        let task = json!({"id": "t1", "name": "Scan", "kind": "quick_scan", "owner": "local", "state": "running",
            "progress": {"total": 10, "succeeded": 4, "failed": 1, "percent": 50},
            "target": {"slaves": ["lyon"]}, "results": [],
            "slaves": [{"slave": "lyon", "state": "delivered", "reason": null, "updated_at": "x",
                        "progress": {"total": 10, "succeeded": 4, "failed": 1, "percent": 50}}]});
        let out = render_one(&task);
        assert!(out.contains("State:     running\nTarget:    slaves lyon\n"), "{out}");
        assert!(out.ends_with("lyon   delivered  5/10 (50%)       1  x        -\n"), "{out}");
        assert!(!out.contains("Results"), "{out}");
        assert!(render_one(&json!({"id": "t2", "results": []})).ends_with("\nResults\nNone yet.\n"));
    }

    #[test]
    fn progress_counts_finished_endpoints() {
        let p = json!({"total": 500, "pending": 10, "running": 40, "succeeded": 440, "failed": 10, "cancelled": 0, "percent": 90});
        assert_eq!(progress_label(&p), "450/500 (90%)");
        assert_eq!(progress_label(&json!({"total": 4, "succeeded": 1})), "1/4 (25%)");
        assert_eq!(progress_label(&json!({"total": 0})), "0/0 (100%)");
    }
}
