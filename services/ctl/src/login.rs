//! `rampartctl login`, `logout` and `whoami`: an operator signs in with a
//! password (`POST /api/login`) and gets a personal token, which is stored
//! for the server ([`credentials`](crate::credentials)) and sent by later
//! commands; `logout` revokes it (`DELETE /api/tokens/{id}`) and forgets it;
//! `whoami` asks the server who the token speaks for (`GET /api/me`).

use std::io::{BufRead, IsTerminal, Write};

use clap::Args;
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use crate::credentials::StoredTokens;
use crate::output::{details, text, time};
use crate::session::Session;

/// The label of the tokens `rampartctl login` asks for, as `operators tokens list` shows it.
const LABEL: &str = "rampartctl";

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The operator account (asked on the terminal when left out).
    #[arg(long, value_name = "NAME")]
    operator: Option<String>,
    /// Read the password from the first line of stdin instead of the terminal.
    #[arg(long)]
    password_stdin: bool,
    /// How long the token lives, in hours (server default 12; 1 to 2160).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=2160))]
    ttl_hours: Option<u32>,
}

/// Signs in and stores the token. `overridden`: a `--api-token` or
/// `RAMPART_TOKEN` is set, which commands send instead of the stored token.
pub async fn login(args: LoginArgs, server: &Url, overridden: bool, session: &Session) -> anyhow::Result<()> {
    let store = StoredTokens::locate()?;
    let operator = match args.operator {
        Some(name) => name,
        None if !args.password_stdin && std::io::stdin().is_terminal() => prompt_line("Operator: ")?,
        None => anyhow::bail!("name the account with --operator NAME"),
    };
    let password = read_password(args.password_stdin, &format!("Password for {operator}: "))?;
    let mut body = json!({"operator": operator, "password": password, "label": LABEL});
    if let Some(hours) = args.ttl_hours {
        body["ttl_hours"] = json!(hours);
    }
    let answer = session.client.post(&["api", "login"], &body).await?;
    let token =
        answer.value["token"].as_str().ok_or_else(|| anyhow::anyhow!("the server's sign-in answer holds no token"))?;
    let path = store.save(server, token)?;
    session.print(&answer, |a| render_signed_in(a, session.client.server(), &path.display().to_string()))?;
    if overridden {
        eprintln!(
            "note: --api-token or {} is set; commands send it instead of the stored token",
            crate::defaults::TOKEN_ENV
        );
    }
    Ok(())
}

fn render_signed_in(answer: &Value, server: &str, path: &str) -> String {
    format!(
        "Signed in to {server} as {} ({}) until {}.\nThe token is stored in {path}; commands to this server use it \
         until `rampartctl logout`.\n",
        text(&answer["operator"]),
        text(&answer["role"]),
        time(&answer["expires_at"]),
    )
}

/// Revokes the stored token and forgets it. A token the server no longer
/// takes (expired, revoked) is forgotten all the same.
pub async fn logout(server: &Url, session: &Session) -> anyhow::Result<()> {
    let store = StoredTokens::locate()?;
    if store.load(server)?.is_none() {
        anyhow::bail!("not signed in to {} (no token in {})", session.client.server(), store.path(server).display());
    }
    let me = match session.client.get(&["api", "me"], &[]).await {
        Ok(me) => me,
        Err(e) if e.status() == Some(StatusCode::UNAUTHORIZED) => {
            store.forget(server)?;
            eprintln!("The stored token was no longer valid (expired or revoked); it is forgotten.");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let id = text(&me.value["token"]);
    let answer = session.client.delete(&["api", "tokens", &id], None).await?;
    store.forget(server)?;
    session.print(&answer, |_| format!("Signed out of {}: token {id} is revoked.\n", session.client.server()))
}

/// `GET /api/me`.
pub async fn whoami(session: &Session) -> anyhow::Result<()> {
    let answer = session.client.get(&["api", "me"], &[]).await?;
    session.print(&answer, render_me)
}

fn render_me(me: &Value) -> String {
    let token = match &me["token"] {
        Value::Null => "the server's own token (server.xml)".to_owned(),
        id => text(id),
    };
    details(&[("Operator", text(&me["operator"])), ("Role", text(&me["role"])), ("Token", token)])
}

/// A password: the first line of stdin with `from_stdin`, else typed on the
/// terminal without echo.
pub fn read_password(from_stdin: bool, prompt: &str) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| anyhow::anyhow!("cannot read stdin: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(prompt).map_err(|e| anyhow::anyhow!("cannot read the password: {e}"))?
    } else {
        anyhow::bail!("stdin is not a terminal to type the password on: pass --password-stdin to read it from stdin")
    };
    anyhow::ensure!(!password.is_empty(), "no password given");
    Ok(password)
}

/// One line typed on the terminal, after `prompt` on stderr.
fn prompt_line(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| anyhow::anyhow!("cannot read stdin: {e}"))?;
    let line = line.trim().to_owned();
    anyhow::ensure!(!line.is_empty(), "no operator name given");
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_in_names_the_account_and_where_the_token_went() {
        let answer = json!({"id": "6f1c", "operator": "alice", "role": "operator", "token": "rpt_secret",
                            "expires_at": "not a time"});
        let out = render_signed_in(&answer, "https://hq:7073", "/home/a/.config/rampartctl/tokens/hq_7073");
        assert!(out.starts_with("Signed in to https://hq:7073 as alice (operator) until not a time.\n"), "{out}");
        assert!(out.contains("/tokens/hq_7073") && !out.contains("rpt_secret"), "the token is not printed: {out}");
    }

    #[test]
    fn whoami_tells_a_personal_token_from_the_servers_own() {
        let out = render_me(&json!({"operator": "alice", "role": "auditor", "token": "6f1c"}));
        assert_eq!(out, "Operator:  alice\nRole:      auditor\nToken:     6f1c\n");
        let out = render_me(&json!({"operator": "bootstrap", "role": "administrator", "token": null}));
        assert!(out.contains("Token:     the server's own token (server.xml)"), "{out}");
    }
}
