//! `rampartctl operators`: the operator accounts (`/api/operators`, an
//! administrator's business) and personal tokens (`/api/tokens`: an
//! operator's own, an administrator's anyone's).

use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::login::read_password;
use crate::output::{items, text, time, time_or_never, Table};
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// The accounts: name, role, whether disabled.
    List,
    /// Create an account; the password is asked twice on the terminal, or read from stdin.
    Create {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: it can no longer sign in, and every token of it is revoked.
    Disable { name: String },
    /// Enable a disabled account again (its revoked tokens stay revoked).
    Enable { name: String },
    /// Change an account's role.
    SetRole {
        name: String,
        #[arg(value_enum)]
        role: Role,
    },
    /// Personal tokens: your own (an administrator: everyone's).
    #[command(subcommand)]
    Tokens(TokensCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// The tokens, never their text: who, label, validity, last use.
    List {
        /// Only this operator's (an administrator's view of another account).
        #[arg(long, value_name = "NAME")]
        operator: Option<String>,
    },
    /// Revoke a token by its id: it no longer works from now on.
    Revoke { id: String },
}

/// An operator's role, from least to most allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Reads everything, changes nothing.
    Auditor,
    /// Also changes policies, tasks, groups, deployments and reports.
    Operator,
    /// Also operators, the hierarchy, the license and the e-mail settings.
    Administrator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auditor => "auditor",
            Self::Operator => "operator",
            Self::Administrator => "administrator",
        }
    }
}

pub async fn run(command: OperatorsCommand, session: &Session) -> anyhow::Result<()> {
    match command {
        OperatorsCommand::List => {
            let answer = session.client.get(&["api", "operators"], &[]).await?;
            session.print(&answer, render_accounts)
        }
        OperatorsCommand::Create { name, role, password_stdin } => {
            let password = if password_stdin {
                read_password(true, "")?
            } else {
                let password = read_password(false, &format!("Password for {name}: "))?;
                anyhow::ensure!(read_password(false, "Again: ")? == password, "the two passwords differ");
                password
            };
            let body = json!({"name": name, "role": role.as_str(), "password": password});
            let answer = session.client.post(&["api", "operators"], &body).await?;
            session.print(&answer, |a| format!("Created operator {} ({}).\n", text(&a["name"]), text(&a["role"])))
        }
        OperatorsCommand::Disable { name } => {
            let answer = change(session, &name, json!({"disabled": true})).await?;
            session.print(&answer, |a| {
                format!("Disabled operator {}: it cannot sign in, and its tokens are revoked.\n", text(&a["name"]))
            })
        }
        OperatorsCommand::Enable { name } => {
            let answer = change(session, &name, json!({"disabled": false})).await?;
            session.print(&answer, |a| format!("Enabled operator {}.\n", text(&a["name"])))
        }
        OperatorsCommand::SetRole { name, role } => {
            let answer = change(session, &name, json!({"role": role.as_str()})).await?;
            session.print(&answer, |a| format!("Operator {} is now {}.\n", text(&a["name"]), text(&a["role"])))
        }
        OperatorsCommand::Tokens(TokensCommand::List { operator }) => {
            let query: Vec<(&str, String)> = operator.map(|o| ("operator", o)).into_iter().collect();
            let answer = session.client.get(&["api", "tokens"], &query).await?;
            session.print(&answer, |a| render_tokens(a, chrono::Utc::now()))
        }
        OperatorsCommand::Tokens(TokensCommand::Revoke { id }) => {
            let answer = session.client.delete(&["api", "tokens", &id], None).await?;
            session.print(&answer, |a| format!("Revoked token {} of {}.\n", text(&a["id"]), text(&a["operator"])))
        }
    }
}

async fn change(session: &Session, name: &str, body: Value) -> Result<crate::client::Answer, crate::client::ApiError> {
    session.client.patch(&["api", "operators", name], &body).await
}

fn render_accounts(answer: &Value) -> String {
    let accounts = items(answer);
    if accounts.is_empty() {
        return "No operator accounts (the server's own token creates the first administrator).\n".to_owned();
    }
    let mut table = Table::new(&["NAME", "ROLE", "STATE", "CREATED"]);
    for a in accounts {
        let state = if a["disabled"].as_bool() == Some(true) { "disabled" } else { "active" };
        table.row([text(&a["name"]), text(&a["role"]), state.to_owned(), time(&a["created_at"])]);
    }
    table.render()
}

/// `active`, `revoked` or `expired` (at `now`).
fn token_state(token: &Value, now: chrono::DateTime<chrono::Utc>) -> &'static str {
    let expires = token["expires_at"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    if !token["revoked_at"].is_null() {
        "revoked"
    } else if expires.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    }
}

fn render_tokens(answer: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
    let tokens = items(answer);
    if tokens.is_empty() {
        return "No personal tokens.\n".to_owned();
    }
    let mut table = Table::new(&["ID", "OPERATOR", "LABEL", "STATE", "CREATED", "EXPIRES", "LAST USED"]);
    for t in tokens {
        table.row([
            text(&t["id"]),
            text(&t["operator"]),
            text(&t["label"]),
            token_state(t, now).to_owned(),
            time(&t["created_at"]),
            time(&t["expires_at"]),
            time_or_never(&t["last_used_at"]),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<OperatorsCommand, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("rampartctl").chain(args.iter().copied()))?;
        match cli.command {
            Command::Operators(command) => Ok(command),
            other => panic!("not an operators command: {other:?}"),
        }
    }

    #[test]
    fn operator_commands_parse() {
        assert!(matches!(parse(&["operators", "list"]), Ok(OperatorsCommand::List)));
        assert!(matches!(
            parse(&["operators", "create", "alice", "--role", "operator", "--password-stdin"]),
            Ok(OperatorsCommand::Create { role: Role::Operator, password_stdin: true, .. })
        ));
        assert!(matches!(
            parse(&["operators", "set-role", "alice", "administrator"]),
            Ok(OperatorsCommand::SetRole { role: Role::Administrator, .. })
        ));
        assert!(matches!(parse(&["operators", "disable", "alice"]), Ok(OperatorsCommand::Disable { .. })));
        assert!(matches!(
            parse(&["operators", "tokens", "list", "--operator", "bob"]),
            Ok(OperatorsCommand::Tokens(TokensCommand::List { operator: Some(_) }))
        ));
        assert!(matches!(
            parse(&["operators", "tokens", "revoke", "6f1c"]),
            Ok(OperatorsCommand::Tokens(TokensCommand::Revoke { .. }))
        ));
        let unknown = parse(&["operators", "create", "alice", "--role", "root"]).unwrap_err();
        assert_eq!(unknown.kind(), clap::error::ErrorKind::InvalidValue);
        assert!(parse(&["operators", "create", "alice"]).is_err(), "the role is required");
    }

    #[test]
    fn accounts_show_their_role_and_state() {
        let answer = json!([
            {"name": "alice", "role": "administrator", "disabled": false, "created_at": "x"},
            {"name": "carol", "role": "auditor", "disabled": true, "created_at": "x"}]);
        assert_eq!(
            render_accounts(&answer),
            "NAME   ROLE           STATE     CREATED\n\
             alice  administrator  active    x\n\
             carol  auditor        disabled  x\n"
        );
        assert!(render_accounts(&json!([])).starts_with("No operator accounts"));
    }

    #[test]
    fn tokens_show_whether_they_still_work() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap().to_utc();
        let answer = json!([
            {"id": "t1", "operator": "alice", "label": "rampartctl", "created_at": "a", "revoked_at": null,
             "expires_at": "2026-12-01T20:00:00Z", "last_used_at": null},
            {"id": "t2", "operator": "alice", "label": "", "created_at": "a", "revoked_at": "2026-12-01T11:00:00Z",
             "expires_at": "2026-12-01T20:00:00Z", "last_used_at": "b"},
            {"id": "t3", "operator": "bob", "label": "ci", "created_at": "a", "revoked_at": null,
             "expires_at": "2026-12-01T08:00:00Z", "last_used_at": "b"}]);
        let out = render_tokens(&answer, now);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("ID  OPERATOR  LABEL       STATE    CREATED"), "{out}");
        assert!(lines[1].starts_with("t1  alice     rampartctl  active") && lines[1].ends_with("never"), "{out}");
        assert!(lines[2].starts_with("t2  alice     -           revoked") && lines[2].ends_with(" b"), "{out}");
        assert!(lines[3].starts_with("t3  bob       ci          expired"), "{out}");
        assert_eq!(render_tokens(&json!([]), now), "No personal tokens.\n");
    }
}
