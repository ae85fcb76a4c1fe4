//! The life of a service process: `check-config`, logging, serving until
//! SIGTERM or Ctrl-C, and the exit codes (0; 1 failed; 2 bad configuration).

use std::{future::Future, path::Path, process::ExitCode};

use crate::{config::ConfigError, service_config::ServiceSettings, shutdown, telemetry, Shutdown};

/// Exit code for an invalid configuration (as in sysexits' EX_USAGE spirit).
pub const EXIT_BAD_CONFIG: u8 = 2;

/// `check-config PATH`: prints what `describe` says of a valid file, or
/// the error naming the element.
pub fn check_config<S>(
    path: &Path,
    load: impl Fn(&Path) -> Result<S, ConfigError>,
    describe: impl Fn(&S) -> String,
) -> ExitCode {
    match load(path) {
        Ok(settings) => {
            println!("{}: valid ({})", path.display(), describe(&settings));
            ExitCode::SUCCESS
        }
        Err(e) => bad_config(path, &e),
    }
}

/// Loads the settings from `path`, sets up logging and runs `serve` until
/// a signal triggers the shutdown it is given.
pub fn run<S, F, Fut>(
    program: &str,
    path: &Path,
    load: impl Fn(&Path) -> Result<S, ConfigError>,
    service: impl Fn(&S) -> &ServiceSettings,
    serve: F,
) -> ExitCode
where
    F: FnOnce(S, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let settings = match load(path) {
        Ok(settings) => settings,
        Err(e) => return bad_config(path, &e),
    };
    let logging = service(&settings);
    telemetry::init(logging.log_format, &logging.log_level);
    let runtime = tokio::runtime::Runtime::new().expect("the tokio runtime starts");
    let result = runtime.block_on(async {
        let stop = Shutdown::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            shutdown::signal().await;
            trigger.trigger();
        });
        serve(settings, stop).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "{program} stopped with an error.");
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn bad_config(path: &Path, error: &ConfigError) -> ExitCode {
    eprintln!("Invalid configuration in {}: {error}", path.display());
    ExitCode::from(EXIT_BAD_CONFIG)
}
