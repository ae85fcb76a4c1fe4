//! `rampart-report --config PATH` runs the report service;
//! `rampart-report check-config PATH` validates a configuration file.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use rampart_report::{config::Settings, startup::Application};
use rampart_shared::process;

#[derive(Parser)]
#[command(name = "rampart-report", version, about = "Rampart report service: consolidated reports over every slave")]
struct Cli {
    /// Path to report.xml.
    #[arg(long, env = "RAMPART_REPORT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a report.xml and exit: 0 if valid, 2 with the reason if not.
    CheckConfig { path: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match (cli.command, cli.config) {
        (Some(Command::CheckConfig { path }), _) => process::check_config(&path, Settings::load, |s| {
            format!("API {}, namespace {}", s.service.api_listen, s.service.namespace)
        }),
        (None, Some(path)) => process::run(
            "rampart-report",
            &path,
            Settings::load,
            |s| &s.service,
            |settings, stop| async move {
                Application::build(settings).await.context("Failed to start")?.run_until_stopped(stop).await
            },
        ),
        (None, None) => {
            eprintln!("Give --config PATH (or RAMPART_REPORT_CONFIG), or use check-config PATH.");
            ExitCode::from(process::EXIT_BAD_CONFIG)
        }
    }
}
