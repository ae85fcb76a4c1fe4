//! `rampartctl`: the operator's command line for a Rampart server.
//!
//! Every command is one or two calls to the server's HTTP API
//! (`docs/api.md`), printed as human tables or, with `--json`, as the
//! server's JSON untouched. Only `license issue` works offline.
//!
//! A tour of the crate:
//!
//! * [`cli`]: the global flags (`--server`, `--api-token`, `--json`) and the
//!   top-level command tree. Each family's subcommands live in its module;
//!   [`defaults`] holds the environment variables and default address.
//! * [`client`]: [`ApiClient`](client::ApiClient), the HTTP conversation,
//!   and [`ApiError`](client::ApiError), which carries the server's own
//!   error message.
//! * [`session`]: the client plus the output mode, handed to every command.
//! * [`output`]: aligned tables, label/value blocks, JSON printing.
//! * One module per command family: [`endpoints`], [`groups`],
//!   [`virtual_groups`], [`policies`], [`tasks`], [`tree`], [`views`]
//!   (health, status, dashboard, detections, audit), [`deploy`],
//!   [`settings`] (auto-deploy, e-mail), [`license`] and [`refused`] (the
//!   audit of refused messages).
//! * Operators: [`login`] (`login`, `logout`, `whoami`), [`credentials`]
//!   (the personal token stored per server, sent when no `--api-token` is
//!   given), [`agents`] (enrolled agents, enrolment tokens), [`operators`]
//!   (accounts, roles, tokens) and [`activity`] (the
//!   activity log).
//! * The master/slave hierarchy: [`hierarchy`] (registration tokens,
//!   `register`, `unregister`), [`slaves`] (a master's slaves) and
//!   [`rollout`] (`--target` for policies and tasks sent to slaves, and how
//!   each slave took them). [`task_target`] tells a task's local target from
//!   its slave target.
//! * Replication of a slave's data to its master: [`replication`] (where it
//!   stands, `replicate-now`) and [`verify`] (does a master's copy match the
//!   slave's data).
//!
//! Exit codes (see `main.rs`): 0 success, 1 refused or failed, 2 usage. A
//! command that needs other codes fails with an [`ExitError`]: `verify`
//! exits 1 when a slave is out of sync and 2 when it could not tell.

pub mod activity;
pub mod agents;
mod args;
pub mod cli;
pub mod client;
pub mod credentials;
pub mod defaults;
pub mod deploy;
pub mod endpoints;
pub mod groups;
pub mod hierarchy;
pub mod license;
pub mod links;
pub mod login;
pub mod operators;
pub mod output;
pub mod policies;
pub mod refused;
pub mod replication;
pub mod reports;
pub mod rollout;
pub mod session;
pub mod settings;
pub mod slaves;
pub mod task_target;
pub mod tasks;
pub mod tree;
pub mod trust;
pub mod verify;
pub mod views;
pub mod virtual_groups;

pub use cli::{Cli, Command};

use std::fmt;

use rampart_shared::Secret;
use session::Session;

/// A failure that asks for its own exit code, for a command whose scripts
/// must tell one failure from another. Any other error exits 1.
#[derive(Debug)]
pub struct ExitError {
    /// The process exit code, never 0.
    pub code: u8,
    /// What went wrong, printed as `error: <message>`.
    error: anyhow::Error,
}

impl ExitError {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        debug_assert_ne!(code, 0, "an error cannot exit 0");
        Self { code, error: error.into() }
    }
}

impl fmt::Display for ExitError {
    /// The whole chain of the wrapped error; [`ExitError`] adds no words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for ExitError {}

/// The exit code for an error that ended [`run`]: its own for an
/// [`ExitError`], else 1.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    error.downcast_ref::<ExitError>().map_or(1, |e| e.code)
}

/// Runs one parsed command line to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let given = cli.token.is_some();
    let session = session(&cli)?;
    match cli.command {
        Command::Health => views::health(&session).await,
        Command::Status => views::status(&session).await,
        Command::SiteKey => views::site_key(&session).await,
        Command::Endpoints(command) => endpoints::run(command, &session).await,
        Command::Groups(command) => groups::run(command, &session).await,
        Command::VirtualGroups(command) => virtual_groups::run(command, &session).await,
        Command::Policies(command) => policies::run(command, &session).await,
        Command::Tasks(command) => tasks::run(command, &session).await,
        Command::Tree(args) => tree::run(args, &session).await,
        Command::Dashboard => views::dashboard(&session).await,
        Command::Detections(args) => views::detections(args, &session).await,
        Command::Audit => views::audit(&session).await,
        Command::Refused(args) => refused::run(args, &session).await,
        Command::Deploy(command) => deploy::run(command, &session).await,
        Command::AutoDeploy(command) => settings::auto_deploy(command, &session).await,
        Command::Email(command) => settings::email(command, &session).await,
        Command::License(command) => license::run(command, &session).await,
        Command::Token(command) => hierarchy::token(command, &session).await,
        Command::Agents(command) => agents::run(command, &session).await,
        Command::Register(args) => hierarchy::register(args, &session).await,
        Command::Unregister => hierarchy::unregister(&session).await,
        Command::Slaves(command) => slaves::run(command, &session).await,
        Command::Replication => replication::status(&session).await,
        Command::ReplicateNow(args) => replication::now(args, &session).await,
        Command::Verify(args) => verify::run(args, &session).await,
        Command::Reports(args) => reports::run(args, &session).await,
        Command::Login(args) => login::login(args, &cli.server, given, &session).await,
        Command::Logout => login::logout(&cli.server, &session).await,
        Command::Whoami => login::whoami(&session).await,
        Command::Operators(command) => operators::run(command, &session).await,
        Command::Activity(args) => activity::run(args, &session).await,
    }
}

/// The session of a command line. The token is `--api-token` (or
/// `RAMPART_TOKEN`), else the one `rampartctl login` stored for the server;
/// `login` sends none, `logout` always the stored one (which it revokes).
fn session(cli: &Cli) -> anyhow::Result<Session> {
    let stored = || -> anyhow::Result<Option<Secret<String>>> {
        match credentials::StoredTokens::locate() {
            Ok(store) => store.load(&cli.server),
            // No configuration directory: nothing was stored.
            Err(_) => Ok(None),
        }
    };
    let (token, from_login) = match (&cli.command, &cli.token) {
        (Command::Login(_), _) => (None, false),
        (Command::Logout, _) => (stored()?, true),
        (_, Some(token)) => (Some(token.clone()), false),
        (_, None) => {
            let token = stored()?;
            let from_login = token.is_some();
            (token, from_login)
        }
    };
    let session = Session::new(cli.server.clone(), token, cli.ca_file.as_deref(), cli.json)?;
    Ok(if from_login { session.with_stored_token() } else { session })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_exit_1_unless_they_carry_a_code() {
        assert_eq!(exit_code(&anyhow::anyhow!("refused")), 1);
        let coded = anyhow::Error::new(ExitError::new(2, anyhow::anyhow!("no answer")));
        assert_eq!(exit_code(&coded), 2);
        assert_eq!(format!("{coded:#}"), "no answer");
        let chained = ExitError::new(2, anyhow::anyhow!("refused").context("Failed to verify"));
        assert_eq!(chained.to_string(), "Failed to verify: refused");
    }
}
