//! `rampart-agent`: parse the command line, set up logging, enrol or read
//! the identity file, run the fleet until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use rampart_agent::{identity, settings::Cli};
use rampart_shared::{shutdown, telemetry, Shutdown};

/// Exit code for a bad command line (sysexits `EX_USAGE`).
const USAGE: u8 = 64;
/// Default log level (`RUST_LOG` overrides it). The outbox counts and
/// reports unroutable messages itself, once per batch at most every 10 s.
const LOG_LEVELS: &str = "info";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, LOG_LEVELS);
    let identity = match identity::resolve(&cli.identity_flags(), cli.fleet_name().as_str(), &cli.endpoint_ids()).await
    {
        Ok(identity) => identity,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "No agent identity.");
            return ExitCode::FAILURE;
        }
    };
    let settings = match cli.into_settings_with(identity) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("Invalid configuration: {e}");
            return ExitCode::from(USAGE);
        }
    };
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
