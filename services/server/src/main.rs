//! `rampart-server --config PATH` runs a server;
//! `rampart-server check-config PATH` validates a configuration file.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use rampart_server::{config::Settings, startup::Application};
use rampart_shared::process;

#[derive(Parser)]
#[command(name = "rampart-server", version, about = "Rampart management server (stand-alone, slave or master)")]
struct Cli {
    /// Path to server.xml.
    #[arg(long, env = "RAMPART_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a server.xml and exit: 0 if valid, 2 with the reason if not.
    CheckConfig { path: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match (cli.command, cli.config) {
        (Some(Command::CheckConfig { path }), _) => process::check_config(&path, Settings::load, |s| {
            format!(
                "instance '{}', role {:?}, API {}, replication every {} s",
                s.instance, s.role, s.service.api_listen, s.replication_interval
            )
        }),
        (None, Some(path)) => process::run(
            "rampart-server",
            &path,
            Settings::load,
            |s| &s.service,
            |settings, stop| async move {
                Application::build(settings).await.context("Failed to start")?.run_until_stopped(stop).await
            },
        ),
        (None, None) => {
            eprintln!("Give --config PATH (or RAMPART_CONFIG), or use check-config PATH.");
            ExitCode::from(process::EXIT_BAD_CONFIG)
        }
    }
}
