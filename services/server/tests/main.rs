//! The server's integration tests as one test binary, one module per area.
//! Each runs the built `rampart-server` binary as a child process, as an
//! operator would; run one area with a filter on its module path, e.g.
//! `cargo test -p rampart-server --test main abuse_config::`.

mod abuse_config;
mod check_config;
mod secrets_in_logs;
