//! `rampart-agent`: parse the command line, set up logging, run the fleet
//! until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use rampart_agent::settings::Cli;
use rampart_shared::{shutdown, telemetry, Shutdown};

/// Exit code for a bad command line (sysexits `EX_USAGE`).
const USAGE: u8 = 64;
/// Default log level (`RUST_LOG` overrides it). The outbox counts and
/// reports unroutable messages itself, once per batch at most every 10 s.
const LOG_LEVELS: &str = "info";

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Cli::parse().into_settings() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("Invalid configuration: {e}");
            return ExitCode::from(USAGE);
        }
    };
    telemetry::init(settings.log_format, LOG_LEVELS);
    let shutdown = Shutdown::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        shutdown::signal().await;
        tracing::info!("Shutdown requested; stopping the fleet.");
        on_signal.trigger();
    });
    match rampart_agent::run(settings, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "The agent fleet failed.");
            ExitCode::FAILURE
        }
    }
}
