//! `rampartctl`: parses the command line and runs it (see the library).
//!
//! Exit codes: 0 success, 1 any refusal or failure (`error: <message>` on
//! stderr), 2 a usage error (clap). A command may choose its own code with
//! `rampartctl::ExitError` (`verify`: 1 out of sync, 2 undecided).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = rampartctl::Cli::parse();
    match rampartctl::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(rampartctl::exit_code(&error))
        }
    }
}
