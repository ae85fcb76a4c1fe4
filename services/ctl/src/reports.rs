//! `rampartctl reports`: reports, on a master over every slave (through its
//! report service), elsewhere over the server's own computers; and
//! scheduled reports on a stand-alone or slave.
//!
//! `rampartctl reports security-status` prints aligned tables;
//! `--format json|csv|html` gives the other formats (`--json` means JSON),
//! `--out FILE` writes the report to a file (the format follows the file's
//! extension unless given).

use std::path::PathBuf;

use clap::{builder::PossibleValuesParser, Args, Subcommand};
use rampart_shared::report::{Format, Kind};
use serde_json::{json, Value};

use crate::output::{items, message_line, text, time_or_never, Table};
use crate::session::Session;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReportsArgs {
    /// security-status, malware, updates, tasks, licenses, health (master) or overview.
    #[arg(value_parser = PossibleValuesParser::new(Kind::ALL.map(Kind::as_str)), required = true)]
    kind: Option<String>,
    /// Only this slave (on a master).
    #[arg(long, value_name = "ID")]
    slave: Option<String>,
    /// json, csv, html or text (default: text, or the --out file's extension).
    #[arg(long, value_parser = PossibleValuesParser::new(Format::ALL.map(Format::as_str)))]
    format: Option<String>,
    /// Write the report to FILE instead of printing it.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<ReportsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ReportsCommand {
    /// On a master: send the report service every slave's numbers again (rebuilds it).
    Resend,
    /// Reports made on a schedule (stand-alone or slave).
    #[command(subcommand)]
    Schedules(SchedulesCommand),
}

#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// Schedules, their next run and the outcome of the last one.
    List,
    /// Make a report every N seconds or daily at a UTC time.
    Create {
        /// A name for the schedule (it names the report files).
        name: String,
        /// The report: security-status, malware, updates, tasks, licenses or overview.
        #[arg(long)]
        kind: String,
        /// json, csv or html.
        #[arg(long, default_value = "html")]
        format: String,
        /// Run every this many seconds (at least 60).
        #[arg(long, conflicts_with = "daily_at", required_unless_present = "daily_at")]
        every: Option<i32>,
        /// Run daily at HH:MM (UTC).
        #[arg(long)]
        daily_at: Option<String>,
        /// Also e-mail it with the stored e-mail settings.
        #[arg(long)]
        email: bool,
    },
    /// Run a schedule now (then on its schedule again).
    Run { id: String },
    /// Delete a schedule.
    Delete { id: String },
}

pub async fn run(args: ReportsArgs, session: &Session) -> anyhow::Result<()> {
    match args.command {
        Some(ReportsCommand::Resend) => {
            let answer = session.client.post(&["api", "reports", "resend"], &json!({})).await?;
            session.print(&answer, |a| message_line(a).unwrap_or_default())
        }
        Some(ReportsCommand::Schedules(command)) => schedules(command, session).await,
        None => report(args, session).await,
    }
}

async fn report(args: ReportsArgs, session: &Session) -> anyhow::Result<()> {
    let kind = args.kind.expect("clap requires a kind without a subcommand");
    let format = match (&args.format, &args.out) {
        (Some(f), _) => f.clone(),
        (None, _) if session.json() => "json".into(),
        (None, Some(out)) => match out.extension().and_then(|e| e.to_str()) {
            Some("html" | "htm") => "html".into(),
            Some("csv") => "csv".into(),
            Some("json") => "json".into(),
            _ => "text".into(),
        },
        (None, None) => "text".into(),
    };
    let mut query = vec![("format", format.clone())];
    if let Some(slave) = args.slave {
        query.push(("slave", slave));
    }
    let bytes = session.client.get_bytes(&["api", "reports", &kind], &query).await?;
    match args.out {
        Some(path) => {
            std::fs::write(&path, &bytes).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            println!("Wrote the {kind} report ({format}, {} bytes) to {}.", bytes.len(), path.display());
            Ok(())
        }
        None => crate::output::emit(&String::from_utf8_lossy(&bytes)),
    }
}

async fn schedules(command: SchedulesCommand, session: &Session) -> anyhow::Result<()> {
    let path = ["api", "reports", "schedules"];
    match command {
        SchedulesCommand::List => {
            let answer = session.client.get(&path, &[]).await?;
            session.print(&answer, render_schedules)
        }
        SchedulesCommand::Create { name, kind, format, every, daily_at, email } => {
            let body = json!({"name": name, "kind": kind, "format": format, "every_seconds": every, "daily_at": daily_at, "email": email});
            let answer = session.client.post(&path, &body).await?;
            session.print(&answer, |s| {
                format!(
                    "Created schedule {} ({}); next run {}.\n",
                    text(&s["name"]),
                    text(&s["id"]),
                    time_or_never(&s["next_run"])
                )
            })
        }
        SchedulesCommand::Run { id } => {
            let answer = session.client.post(&["api", "reports", "schedules", &id, "run"], &json!({})).await?;
            session.print(&answer, |a| message_line(a).unwrap_or_default())
        }
        SchedulesCommand::Delete { id } => {
            let answer = session.client.delete(&["api", "reports", "schedules", &id], None).await?;
            session.print(&answer, |_| format!("Deleted schedule {id}.\n"))
        }
    }
}

fn render_schedules(answer: &Value) -> String {
    let mut table =
        Table::new(&["ID", "NAME", "REPORT", "FORMAT", "WHEN", "E-MAIL", "NEXT RUN", "LAST RUN", "LAST FILE / ERROR"]);
    for s in items(&answer["schedules"]) {
        let when = match s["every_seconds"].as_i64() {
            Some(n) => format!("every {n} s"),
            None => format!("daily {} UTC", text(&s["daily_at"])),
        };
        let last = match s["last_error"].as_str() {
            Some(e) => format!("error: {e}"),
            None => text(&s["last_file"]),
        };
        table.row([
            text(&s["id"]),
            text(&s["name"]),
            text(&s["kind"]),
            text(&s["format"]),
            when,
            if s["email"] == true { "yes".into() } else { "no".into() },
            time_or_never(&s["next_run"]),
            time_or_never(&s["last_run"]),
            last,
        ]);
    }
    let directory = match answer["directory"].as_str() {
        Some(d) => format!("Reports are written to {d}.\n"),
        None => "No report directory is configured (<Reports><Directory> in server.xml).\n".into(),
    };
    if table.is_empty() {
        format!("No report schedules.\n{directory}")
    } else {
        format!("{}{directory}", table.render())
    }
}
