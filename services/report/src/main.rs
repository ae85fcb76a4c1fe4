//! `rampart-report --config PATH` runs the report service;
//! `rampart-report check-config PATH` validates a configuration file.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use rampart_report::{config::Settings, startup::Application};
use rampart_shared::{shutdown, telemetry, Shutdown};

const EXIT_BAD_CONFIG: u8 = 2;

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
    let path = match (cli.command, cli.config) {
        (Some(Command::CheckConfig { path }), _) => {
            return match Settings::load(&path) {
                Ok(s) => {
                    println!("{}: valid (API {}, namespace {})", path.display(), s.api_listen, s.namespace);
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
            eprintln!("Give --config PATH (or RAMPART_REPORT_CONFIG), or use check-config PATH.");
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
            tracing::error!(error = %format!("{e:#}"), "Report service stopped with an error.");
            eprintln!("rampart-report: {e:#}");
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
