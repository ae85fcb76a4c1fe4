//! `rampart-server --config PATH` runs a server;
//! `rampart-server check-config PATH` validates a configuration file.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use rampart_server::{config::Settings, startup::Application};
use rampart_shared::{shutdown, telemetry, Shutdown};

/// Exit code for an invalid configuration (as in sysexits' EX_USAGE spirit).
const EXIT_BAD_CONFIG: u8 = 2;

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
    let path = match (cli.command, cli.config) {
        (Some(Command::CheckConfig { path }), _) => {
            return match Settings::load(&path) {
                Ok(s) => {
                    println!("{}: valid (instance '{}', role {:?}, API {}, replication every {} s)",
                             path.display(), s.instance, s.role, s.api_listen, s.replication_interval);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("Invalid configuration in {}: {e}", path.display());
                    ExitCode::from(EXIT_BAD_CONFIG)
                }
            };
        }
        (None, Some(path)) => path,
        (None, None) => {
            eprintln!("Give --config PATH (or RAMPART_CONFIG), or use check-config PATH.");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    let settings = match Settings::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Invalid configuration in {}: {e}", path.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    telemetry::init(settings.log_format, &settings.log_level);
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "Server stopped with an error.");
            eprintln!("rampart-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await.context("Failed to start")?;
    let stop = Shutdown::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        shutdown::signal().await;
        trigger.trigger();
    });
    app.run_until_stopped(stop).await
}
