//! Helpers the areas share: running the built `rampartctl` against a test
//! server, and reading what it printed.

use std::process::Output;

use rampart_tests::{TestServer, TOKEN};

/// Runs `rampartctl` against `server` (off the async runtime).
pub async fn ctl(server: &TestServer, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rampartctl"));
    command.args(args).env("RAMPART_SERVER", &server.base).env("RAMPART_TOKEN", TOKEN);
    tokio::task::spawn_blocking(move || command.output().expect("rampartctl runs")).await.unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
