//! The command line: global flags and the top-level command tree.
//!
//! Each command family declares its own subcommands next to the code that
//! runs them (`endpoints::EndpointsCommand`, ...); this module only assembles
//! them and parses the flags every command shares.

use std::convert::Infallible;

use clap::{Parser, Subcommand};
use reqwest::Url;

use rampart_shared::Secret;

use crate::{
    activity, agents, deploy, endpoints, groups, hierarchy, license, login, operators, policies, refused, replication,
    reports, settings, slaves, tasks, tree, verify, views, virtual_groups,
};

pub use crate::defaults::{DEFAULT_PORT, DEFAULT_SERVER, SERVER_ENV, TOKEN_ENV};

/// Help heading of the flags every command takes.
const GLOBAL: &str = "Global options";

/// The exit codes, as `rampartctl --help` shows them.
const EXIT_CODES: &str = "Exit codes: 0 success; 1 the server refused or the call failed; \
2 a usage error. `verify`: 0 in sync, 1 out of sync, 2 not finished or failed.";

/// Operate a Rampart management server through its HTTP API.
#[derive(Debug, Parser)]
#[command(name = "rampartctl", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// API address of the server (https://HOST:PORT; http:// for a server configured for plain HTTP).
    #[arg(long, global = true, env = SERVER_ENV, hide_env_values = true, default_value = DEFAULT_SERVER, value_name = "URL",
          value_parser = parse_server_url, help_heading = GLOBAL)]
    pub server: Url,

    /// API bearer token: a personal token, or the server's <Api><Token>
    /// (without it: the token `rampartctl login` stored for the server).
    #[arg(long = "api-token", global = true, env = TOKEN_ENV, hide_env_values = true, value_name = "TOKEN",
          value_parser = parse_token, help_heading = GLOBAL)]
    pub token: Option<Secret<String>>,

    /// Verify an https server with this CA file (PEM) instead of the
    /// certificate pinned at first contact.
    #[arg(long = "ca-file", global = true, env = crate::trust::CA_FILE_ENV, value_name = "FILE", help_heading = GLOBAL)]
    pub ca_file: Option<std::path::PathBuf>,

    /// Print the server's JSON answer as is instead of tables.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that the server answers (needs no token).
    Health,
    /// Instance, role, version, endpoint counts, license and message counters.
    Status,
    /// The site's public command key (hex), as an agent's `--site-key` takes it.
    SiteKey,
    /// List, inspect and move endpoints (managed computers).
    #[command(subcommand)]
    Endpoints(endpoints::EndpointsCommand),
    /// Network groups (network builder).
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// Operator-defined virtual groups and their members.
    #[command(subcommand)]
    VirtualGroups(virtual_groups::VirtualGroupsCommand),
    /// Security policies and where they are assigned.
    #[command(subcommand)]
    Policies(policies::PoliciesCommand),
    /// Scan and update tasks.
    #[command(subcommand)]
    Tasks(tasks::TasksCommand),
    /// The site as a tree: groups and their endpoints (on a master, under each slave).
    Tree(tree::TreeArgs),
    /// Management dashboard: status counts, license, outdated signatures, detections.
    Dashboard,
    /// Malware detections, newest first.
    Detections(views::DetectionsArgs),
    /// Network audit: computers the agents discovered on the network.
    Audit,
    /// Messages this server refused (forged, malformed, unknown sender, poison) or ignored as late.
    Refused(refused::RefusedArgs),
    /// Enrolled agent processes (list, show, revoke) and their one-time enrolment tokens.
    #[command(subcommand)]
    Agents(agents::AgentsCommand),
    /// Deployment tool: install agents on discovered computers.
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// Automatic deployment to newly discovered unmanaged computers.
    #[command(subcommand)]
    AutoDeploy(settings::AutoDeployCommand),
    /// E-mail (SMTP) settings for notifications.
    #[command(subcommand)]
    Email(settings::EmailCommand),
    /// License registration, and issuing keys with a vendor key.
    #[command(subcommand)]
    License(license::LicenseCommand),
    /// Registration tokens that let a server join this master as a slave.
    #[command(subcommand)]
    Token(hierarchy::TokenCommand),
    /// Join a master with one of its registration tokens: this server becomes its slave.
    Register(hierarchy::RegisterArgs),
    /// Leave the master: its policies and tasks go, this server is stand-alone again.
    Unregister,
    /// The slaves of this master: state, endpoints, license, replication; replicate or remove one.
    #[command(subcommand)]
    Slaves(slaves::SlavesCommand),
    /// Where replication stands: a slave's stream to its master, or a master's copy of each slave.
    Replication,
    /// Replicate now instead of at the next interval (on a master: every active slave).
    ReplicateNow(replication::ReplicateNowArgs),
    /// Check that the master's copy of each slave's data matches the slave's (on a master).
    #[command(after_help = verify::EXIT_CODES)]
    Verify(verify::VerifyArgs),
    /// Reports (on a master, over every slave): KIND [--slave ID] [--format F] [--out FILE]; resend; schedules.
    Reports(reports::ReportsArgs),
    /// Sign in with your operator password; the personal token is stored for this server.
    Login(login::LoginArgs),
    /// Revoke and forget the token `login` stored for this server.
    Logout,
    /// Who the token speaks for: operator, role, token id.
    Whoami,
    /// Operator accounts and their roles; personal tokens.
    #[command(subcommand)]
    Operators(operators::OperatorsCommand),
    /// The activity log: who did what, newest first (on a master, with each slave's).
    Activity(activity::ActivityArgs),
}

/// Accepts `https://host:port[/prefix]`, `http://` for a plain server, or
/// `host:port` meaning https.
fn parse_server_url(text: &str) -> Result<Url, String> {
    let with_scheme = if text.contains("://") { text.to_owned() } else { format!("https://{text}") };
    let url = Url::parse(&with_scheme).map_err(|e| format!("not a URL ({e}); expected e.g. {DEFAULT_SERVER}"))?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(url),
        "http" | "https" => Err(format!("no host in the address; expected e.g. {DEFAULT_SERVER}")),
        other => Err(format!("unsupported scheme {other}://; expected e.g. {DEFAULT_SERVER}")),
    }
}

fn parse_token(text: &str) -> Result<Secret<String>, Infallible> {
    Ok(Secret::new(text.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn replication_commands_parse() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("rampartctl").chain(args.iter().copied())).map(|cli| cli.command)
        };
        assert!(matches!(parse(&["replication"]), Ok(Command::Replication)));
        assert!(matches!(parse(&["replicate-now", "--full"]), Ok(Command::ReplicateNow(_))));
        assert!(matches!(parse(&["verify", "--slave", "paris", "--timeout", "30"]), Ok(Command::Verify(_))));
        let zero = parse(&["verify", "--timeout", "0"]).unwrap_err();
        assert_eq!(zero.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn report_commands_parse() {
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("rampartctl").chain(args.iter().copied()));
        assert!(
            parse(&["reports", "security-status", "--slave", "paris", "--format", "html", "--out", "r.html"]).is_ok()
        );
        assert!(parse(&["reports", "resend"]).is_ok());
        assert!(parse(&["reports", "schedules", "create", "daily", "--kind", "malware", "--daily-at", "07:00"]).is_ok());
        assert!(parse(&["reports", "weather"]).is_err());
        assert!(parse(&["reports"]).is_err());
        assert!(
            parse(&["reports", "schedules", "create", "x", "--kind", "malware"]).is_err(),
            "needs --every or --daily-at"
        );
    }

    #[test]
    fn verify_help_lists_its_exit_codes() {
        let mut command = Cli::command();
        let help = command.find_subcommand_mut("verify").unwrap().render_help().to_string();
        assert!(help.contains("1  a slave's data differs"), "{help}");
        assert!(help.contains("--timeout <SECS>"), "{help}");
        assert!(help.contains("[default: 120]"), "{help}");
    }

    #[test]
    fn sign_in_commands_parse() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("rampartctl").chain(args.iter().copied())).map(|cli| cli.command)
        };
        assert!(matches!(
            parse(&["login", "--operator", "alice", "--password-stdin", "--ttl-hours", "8"]),
            Ok(Command::Login(_))
        ));
        assert!(matches!(parse(&["login"]), Ok(Command::Login(_))));
        assert!(parse(&["login", "--ttl-hours", "0"]).is_err());
        assert!(parse(&["login", "--ttl-hours", "2161"]).is_err());
        assert!(matches!(parse(&["logout"]), Ok(Command::Logout)));
        assert!(matches!(parse(&["whoami", "--json"]), Ok(Command::Whoami)));
    }

    #[test]
    fn the_default_port_is_the_default_servers() {
        assert_eq!(parse_server_url(DEFAULT_SERVER).unwrap().port(), Some(DEFAULT_PORT));
    }

    #[test]
    fn server_addresses() {
        assert_eq!(parse_server_url("http://10.0.0.5:7073").unwrap().as_str(), "http://10.0.0.5:7073/");
        assert_eq!(parse_server_url("paris.example:7073").unwrap().as_str(), "https://paris.example:7073/");
        assert_eq!(parse_server_url("https://paris.example").unwrap().as_str(), "https://paris.example/");
        assert!(parse_server_url("ftp://paris.example").is_err());
        assert!(parse_server_url("http://").is_err());
    }

    #[test]
    fn global_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["rampartctl", "status", "--json", "--server", "10.0.0.5:7073"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.server.as_str(), "https://10.0.0.5:7073/");
    }
}
