//! `rampartctl auto-deploy` and `rampartctl email`: site settings (both
//! refused on a master).

use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgAction, Args, Subcommand};
use serde_json::{json, Map, Value};

use crate::output::{details, text};
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub enum AutoDeployCommand {
    /// Whether agents are deployed automatically.
    Show,
    /// Deploy an agent to every newly discovered unmanaged computer.
    On,
    /// Stop deploying automatically.
    Off,
}

#[derive(Debug, Subcommand)]
pub enum EmailCommand {
    /// The SMTP settings (the password is never shown).
    Show,
    /// Replace the SMTP settings.
    Set(EmailArgs),
}

#[derive(Debug, Args)]
pub struct EmailArgs {
    /// SMTP server host name.
    #[arg(long, value_name = "HOST")]
    smtp_host: String,
    #[arg(long, value_name = "PORT", default_value_t = 587)]
    smtp_port: u16,
    /// SMTP user name (none: no authentication).
    #[arg(long, value_name = "USER")]
    username: Option<String>,
    /// SMTP password (visible to other local users; prefer --password-file).
    #[arg(long, value_name = "PASSWORD", conflicts_with = "password_file")]
    password: Option<String>,
    /// Read the SMTP password from this file. The settings are replaced as a
    /// whole: without a password flag the server stores none.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Sender address.
    #[arg(long, value_name = "ADDR")]
    from: String,
    /// Recipient addresses.
    #[arg(long, value_name = "ADDR", required = true, num_args = 1..)]
    to: Vec<String>,
    /// Upgrade the connection with STARTTLS (false: plain SMTP, for a relay
    /// on a trusted network). --tls says more.
    #[arg(long, value_name = "true|false", action = ArgAction::Set, default_value_t = true, conflicts_with = "tls")]
    starttls: bool,
    /// How the relay is reached: plain SMTP, STARTTLS (port 587) or TLS from
    /// the first byte (implicit, port 465).
    #[arg(long, value_name = "MODE", value_parser = ["none", "starttls", "implicit"])]
    tls: Option<String>,
    /// A PEM file, on the server, of CA certificates trusted for the relay
    /// besides the system's roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

impl EmailArgs {
    /// The PUT body, replacing the stored settings. The password is left
    /// out when none is given (the server then stores none).
    fn body(&self) -> anyhow::Result<Value> {
        let mut body = Map::new();
        body.insert("smtp_host".into(), json!(self.smtp_host));
        body.insert("smtp_port".into(), json!(self.smtp_port));
        body.insert("username".into(), json!(self.username));
        let password = match (&self.password, &self.password_file) {
            (Some(password), _) => Some(password.clone()),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("Failed to read the password file {}", file.display()))?;
                Some(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            (None, None) => None,
        };
        if let Some(password) = password {
            body.insert("password".into(), json!(password));
        }
        body.insert("from".into(), json!(self.from));
        body.insert("to".into(), json!(self.to));
        match &self.tls {
            Some(tls) => {
                body.insert("tls".into(), json!(tls));
                body.insert("starttls".into(), json!(tls == "starttls"));
            }
            None => {
                body.insert("starttls".into(), json!(self.starttls));
            }
        }
        if let Some(ca_file) = &self.ca_file {
            body.insert("ca_file".into(), json!(ca_file));
        }
        Ok(Value::Object(body))
    }
}

pub async fn auto_deploy(command: AutoDeployCommand, session: &Session) -> anyhow::Result<()> {
    let path = ["api", "settings", "auto-deploy"];
    let answer = match command {
        AutoDeployCommand::Show => session.client.get(&path, &[]).await?,
        AutoDeployCommand::On => session.client.put(&path, &json!({ "enabled": true })).await?,
        AutoDeployCommand::Off => session.client.put(&path, &json!({ "enabled": false })).await?,
    };
    session.print(&answer, |setting| match setting["enabled"].as_bool() {
        Some(true) => "Automatic deployment: on\n".to_owned(),
        Some(false) => "Automatic deployment: off\n".to_owned(),
        None => "Automatic deployment: saved\n".to_owned(),
    })
}

pub async fn email(command: EmailCommand, session: &Session) -> anyhow::Result<()> {
    let path = ["api", "settings", "email"];
    match command {
        EmailCommand::Show => {
            let answer = session.client.get(&path, &[]).await?;
            session.print(&answer, render)
        }
        EmailCommand::Set(args) => {
            if args.password.is_none() && args.password_file.is_none() && args.username.is_some() {
                eprintln!("warning: no --password or --password-file given: the server stores no SMTP password");
            }
            let answer = session.client.put(&path, &args.body()?).await?;
            session.print(&answer, |settings| {
                if settings.is_object() {
                    format!("E-mail settings saved.\n{}", render(settings))
                } else {
                    "E-mail settings saved.\n".to_owned()
                }
            })
        }
    }
}

fn render(s: &Value) -> String {
    if s["configured"] == false {
        return "E-mail is not configured.\n".to_owned();
    }
    let starttls = s["starttls"].as_bool() == Some(true);
    let tls = match s["tls"].as_str() {
        Some("starttls") => " with STARTTLS",
        Some("implicit") => " with TLS (implicit)",
        Some(_) => "",
        None if starttls => " with STARTTLS",
        None => "",
    };
    let password = match (s["password_set"].as_bool(), s.get("password")) {
        (Some(true), _) | (None, Some(Value::String(_))) => "set",
        _ => "not set",
    };
    let mut rows = vec![("SMTP server", format!("{}:{}{tls}", text(&s["smtp_host"]), text(&s["smtp_port"])))];
    if s["ca_file"].is_string() {
        rows.push(("CA file", text(&s["ca_file"])));
    }
    rows.extend([
        ("Username", text(&s["username"])),
        ("Password", password.to_owned()),
        ("From", text(&s["from"])),
        ("To", text(&s["to"])),
    ]);
    details(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: EmailArgs,
    }

    fn parse(args: &[&str]) -> Result<EmailArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("set").chain(args.iter().copied())).map(|w| w.args)
    }

    /// [`parse`] with the required flags given, then `extra`.
    fn parse_with_required(extra: &[&str]) -> Result<EmailArgs, clap::Error> {
        let required = ["--smtp-host", "h", "--from", "f", "--to", "t"];
        parse(&[&required[..], extra].concat())
    }

    #[test]
    fn email_flags_map_to_the_settings_body() {
        let args = parse(&[
            "--smtp-host",
            "mail.example.com",
            "--from",
            "r@example.com",
            "--to",
            "a@x",
            "b@x",
            "--starttls",
            "false",
        ])
        .unwrap();
        assert_eq!(
            args.body().unwrap(),
            json!({"smtp_host": "mail.example.com", "smtp_port": 587, "username": null,
                   "from": "r@example.com", "to": ["a@x", "b@x"], "starttls": false})
        );
        let args = parse_with_required(&["--username", "u", "--password", "p"]).unwrap();
        assert_eq!(args.body().unwrap()["password"], "p");
        assert_eq!(args.body().unwrap()["starttls"], true);
    }

    #[test]
    fn email_settings_as_shown() {
        assert_eq!(render(&json!({"configured": false})), "E-mail is not configured.\n");
        let settings = json!({"configured": true, "smtp_host": "mail.example.com", "smtp_port": 587,
            "username": "rampart", "password_set": true, "from": "r@example.com", "to": ["soc@example.com"], "starttls": true});
        assert_eq!(
            render(&settings),
            "SMTP server:  mail.example.com:587 with STARTTLS\nUsername:     rampart\nPassword:     set\n\
             From:         r@example.com\nTo:           soc@example.com\n"
        );
    }

    #[test]
    fn tls_mode_and_ca_file_flags() {
        let args = parse_with_required(&["--tls", "implicit", "--ca-file", "/etc/rampart/relay-ca.pem"]).unwrap();
        let body = args.body().unwrap();
        assert_eq!((&body["tls"], &body["starttls"]), (&json!("implicit"), &json!(false)));
        assert_eq!(body["ca_file"], "/etc/rampart/relay-ca.pem");
        assert_eq!(parse_with_required(&["--tls", "starttls"]).unwrap().body().unwrap()["starttls"], true);
        assert!(parse_with_required(&["--tls", "ssl"]).is_err());
        assert!(parse_with_required(&["--tls", "none", "--starttls", "true"]).is_err());
    }

    #[test]
    fn tls_mode_and_ca_file_as_shown() {
        let settings = json!({"configured": true, "smtp_host": "mail.example.com", "smtp_port": 465,
            "username": null, "password_set": false, "from": "r@example.com", "to": ["soc@example.com"],
            "starttls": false, "tls": "implicit", "ca_file": "/etc/rampart/relay-ca.pem"});
        let shown = render(&settings);
        assert!(shown.starts_with("SMTP server:  mail.example.com:465 with TLS (implicit)\n"), "{shown}");
        assert!(shown.contains("CA file:      /etc/rampart/relay-ca.pem\n"), "{shown}");
        let plain = json!({"configured": true, "smtp_host": "m", "smtp_port": 25, "tls": "none", "starttls": false,
            "ca_file": null, "from": "r@example.com", "to": []});
        assert!(render(&plain).starts_with("SMTP server:  m:25\nUsername:"), "{}", render(&plain));
    }

    #[test]
    fn one_password_source_and_a_recipient() {
        assert!(parse(&["--smtp-host", "h", "--from", "f"]).is_err());
        assert!(parse_with_required(&["--password", "p", "--password-file", "x"]).is_err());
    }
}
