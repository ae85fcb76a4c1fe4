//! Joining and leaving a master: `token` (on the master, registration tokens
//! for would-be slaves), `register` and `unregister` (on the server that
//! joins or leaves).
//!
//! A registration token is handed from the master's operator to the slave's
//! out of band, which is why `token create` prints the bare token on stdout:
//! `T=$(rampartctl token create)`.

use std::net::Ipv6Addr;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::defaults::DEFAULT_PORT;
use crate::output::{count, items, text, time, Table};
use crate::session::Session;

/// How `--expires` may be written.
const DURATION_FORMS: &str = "90s, 30m, 2h, 7d or a number of seconds";
/// How `--master` may be written.
const ADDRESS_FORM: &str = "expected HOST[:PORT], e.g. hq.example or 10.0.0.1:7073";

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a one-time registration token; prints only the token (expiry on stderr).
    Create {
        /// How long the token stays valid: 90s, 30m, 2h, 7d or seconds (server default 1h).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires: Option<Duration>,
    },
    /// List registration tokens: unused, used (and by which slave) or expired.
    List,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The master's API address (the port defaults to 7073).
    #[arg(long, value_name = "HOST[:PORT]", value_parser = parse_master_address)]
    master: String,
    /// A registration token from `rampartctl token create` on the master
    /// (not this server's API token, which is --api-token).
    #[arg(long = "token", visible_alias = "registration-token", value_name = "T")]
    registration_token: String,
}

/// Reads `90s`, `30m`, `2h`, `7d` or plain seconds; zero is refused, as a
/// token that expires at once is of no use.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let unit_seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(format!("expected {DURATION_FORMS}")),
    };
    let number: u64 = number.parse().map_err(|_| format!("expected {DURATION_FORMS}"))?;
    match number.checked_mul(unit_seconds) {
        Some(0) => Err("must be longer than 0 seconds".to_owned()),
        Some(seconds) => Ok(Duration::from_secs(seconds)),
        None => Err("is too long".to_owned()),
    }
}

/// Reads `HOST[:PORT]` (an IPv6 address in brackets) into `HOST:PORT`, the
/// port defaulting to the API's. Checked here so that a typo is a usage error
/// rather than a failed registration on the server.
pub fn parse_master_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.contains("://") {
        return Err(format!("give the address without a scheme; {ADDRESS_FORM}"));
    }
    let (host, port) = split_host_port(text)?;
    let port = match port {
        None => DEFAULT_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("port `{port}` is not a number from 1 to 65535"))?,
    };
    Ok(format!("{host}:{port}"))
}

/// Splits `HOST[:PORT]` or `[IPv6][:PORT]` and checks the host: a name or
/// IPv4 address (letters, digits, `-`, `.`, `_`), or an IPv6 address.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (ip, rest) = bracketed.split_once(']').ok_or_else(|| format!("unclosed `[`; {ADDRESS_FORM}"))?;
        ip.parse::<Ipv6Addr>().map_err(|_| format!("`{ip}` is not an IPv6 address; {ADDRESS_FORM}"))?;
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':').ok_or_else(|| format!("unexpected `{rest}` after `]`; {ADDRESS_FORM}"))?),
        };
        return Ok((&text[..ip.len() + 2], port));
    }
    if text.matches(':').count() > 1 {
        return Err("write an IPv6 address in brackets, e.g. [fd00::1]:7073".to_owned());
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let is_host = !host.is_empty()
        && !host.starts_with(['-', '.'])
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !is_host {
        return Err(format!("`{host}` is not a host name or IP address; {ADDRESS_FORM}"));
    }
    Ok((host, port))
}

/// The body of `POST /api/registration-tokens`: the server's default
/// lifetime unless `--expires` was given.
fn token_body(expires: Option<Duration>) -> Value {
    match expires {
        Some(expires) => json!({ "expires_in_seconds": expires.as_secs() }),
        None => json!({}),
    }
}

pub async fn token(command: TokenCommand, session: &Session) -> anyhow::Result<()> {
    let client = &session.client;
    match command {
        TokenCommand::Create { expires } => {
            let answer = client.post(&["api", "registration-tokens"], &token_body(expires)).await?;
            if !session.json() {
                eprintln!(
                    "Registration token valid until {}; it can register one slave.",
                    time(&answer.value["expires_at"])
                );
            }
            // The bare token, so that `T=$(rampartctl token create)` works.
            session.print(&answer, |t| format!("{}\n", text(&t["token"])))
        }
        TokenCommand::List => {
            let answer = client.get(&["api", "registration-tokens"], &[]).await?;
            session.print(&answer, render_tokens)
        }
    }
}

pub async fn register(args: RegisterArgs, session: &Session) -> anyhow::Result<()> {
    let body = json!({ "master": args.master, "token": args.registration_token.trim() });
    let answer = session.client.post(&["api", "hierarchy", "register"], &body).await?;
    session.print(&answer, |h| {
        let master = &h["master"];
        format!(
            "Registered to master {} at {}; this server is now a slave.\n",
            text(&master["id"]),
            text(&master["address"])
        )
    })
}

pub async fn unregister(session: &Session) -> anyhow::Result<()> {
    let answer = session.client.post(&["api", "hierarchy", "unregister"], &json!({})).await?;
    session.print(&answer, unregistered)
}

fn unregistered(answer: &Value) -> String {
    let policies = count(&answer["removed_policies"]);
    let tasks = count(&answer["cancelled_tasks"]);
    let mut out = format!(
        "Unregistered from the master: removed {policies} master {}, cancelled {tasks} {}; \
         this server is now stand-alone.\n",
        if policies == 1 { "policy" } else { "policies" },
        if tasks == 1 { "task" } else { "tasks" },
    );
    if let Some(note) = answer["note"].as_str() {
        out.push_str(&format!("Note: {note}.\n"));
    }
    out
}

fn render_tokens(answer: &Value) -> String {
    let tokens = items(answer);
    if tokens.is_empty() {
        return "No registration tokens.\n".to_owned();
    }
    let mut table = Table::new(&["ID", "STATE", "CREATED", "EXPIRES", "USED", "USED BY"]);
    for t in tokens {
        table.row([
            text(&t["id"]),
            text(&t["state"]),
            time(&t["created_at"]),
            time(&t["expires_at"]),
            time(&t["used_at"]),
            text(&t["used_by"]),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn an_unregistration_the_master_did_not_hear_of_says_what_follows() {
        let plain = unregistered(&json!({"removed_policies": 1, "cancelled_tasks": 0, "master_informed": true}));
        assert_eq!(
            plain,
            "Unregistered from the master: removed 1 master policy, cancelled 0 tasks; this server is now stand-alone.\n"
        );
        let waiting = unregistered(&json!({"removed_policies": 0, "cancelled_tasks": 0, "master_informed": false,
                                           "note": "the master's broker could not be reached"}));
        assert!(waiting.ends_with("stand-alone.\nNote: the master's broker could not be reached.\n"), "{waiting}");
    }

    #[test]
    fn durations_take_a_unit_or_plain_seconds() {
        let secs = |text| parse_duration(text).map(|d| d.as_secs());
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("30m"), Ok(1800));
        assert_eq!(secs("2h"), Ok(7200));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("3600"), Ok(3600));
        assert_eq!(secs(" 5m "), Ok(300));
    }

    #[test]
    fn durations_that_make_no_sense_are_refused() {
        assert_eq!(parse_duration("0").unwrap_err(), "must be longer than 0 seconds");
        assert!(parse_duration("0h").is_err());
        for bad in ["", "h", "2w", "1.5h", "-5", "2 h", "1h30m", "m5"] {
            assert!(parse_duration(bad).unwrap_err().contains("expected 90s"), "{bad}");
        }
        assert_eq!(
            parse_duration("99999999999999999999d").unwrap_err(),
            "expected 90s, 30m, 2h, 7d or a number of seconds"
        );
        assert_eq!(parse_duration("9999999999999999d").unwrap_err(), "is too long");
    }

    #[test]
    fn master_addresses_get_the_default_port() {
        assert_eq!(parse_master_address("hq.example").unwrap(), "hq.example:7073");
        assert_eq!(parse_master_address("hq:8080").unwrap(), "hq:8080");
        assert_eq!(parse_master_address(" 10.0.0.1 ").unwrap(), "10.0.0.1:7073");
        assert_eq!(parse_master_address("rampart_hq").unwrap(), "rampart_hq:7073");
        assert_eq!(parse_master_address("[fd00::1]").unwrap(), "[fd00::1]:7073");
        assert_eq!(parse_master_address("[fd00::1]:9000").unwrap(), "[fd00::1]:9000");
    }

    #[test]
    fn bad_master_addresses_say_what_is_wrong() {
        let error = |text| parse_master_address(text).unwrap_err();
        assert_eq!(
            error("bad host:x"),
            "`bad host` is not a host name or IP address; expected HOST[:PORT], e.g. hq.example or 10.0.0.1:7073"
        );
        assert_eq!(error("hq:x"), "port `x` is not a number from 1 to 65535");
        assert_eq!(error("hq:0"), "port `0` is not a number from 1 to 65535");
        assert_eq!(error("hq:70000"), "port `70000` is not a number from 1 to 65535");
        assert_eq!(error("hq:"), "port `` is not a number from 1 to 65535");
        assert!(error("http://hq:7073").contains("without a scheme"));
        assert!(error("fd00::1").contains("in brackets"));
        assert!(error("[fd00::1").contains("unclosed"));
        assert!(error("[hq]:7073").contains("not an IPv6 address"));
        assert!(error("[fd00::1]7073").contains("after `]`"));
        assert!(error("").contains("is not a host name"));
        assert!(error(":7073").contains("is not a host name"));
        assert!(error("-hq").contains("is not a host name"));
        assert!(error("hq/api").contains("is not a host name"));
        assert!(error("user@hq").contains("is not a host name"));
        assert!(error("hq]").contains("is not a host name"));
    }

    #[derive(Parser)]
    struct Wrapper {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Top {
        #[command(subcommand)]
        Token(TokenCommand),
        Register(RegisterArgs),
    }

    fn parse(args: &[&str]) -> Result<Top, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("rampartctl").chain(args.iter().copied())).map(|w| w.command)
    }

    #[test]
    fn token_create_sends_the_lifetime_in_seconds() {
        let Top::Token(TokenCommand::Create { expires }) = parse(&["token", "create", "--expires", "2h"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(token_body(expires), json!({"expires_in_seconds": 7200}));
        assert_eq!(token_body(None), json!({}));
        assert!(parse(&["token", "create", "--expires", "0"]).is_err());
        assert!(parse(&["token", "create", "--expires", "soon"]).is_err());
    }

    #[test]
    fn register_needs_a_master_and_a_token() {
        let Top::Register(args) = parse(&["register", "--master", "hq.example", "--token", "rrt_abc"]).unwrap() else {
            panic!()
        };
        assert_eq!(args.master, "hq.example:7073");
        assert_eq!(args.registration_token, "rrt_abc");
        assert!(parse(&["register", "--master", "hq"]).is_err());
        assert!(parse(&["register", "--registration-token", "t"]).is_err());
        let bad = parse(&["register", "--master", "bad host:x", "--registration-token", "t"]).unwrap_err();
        assert_eq!(bad.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn unregistering_says_what_went() {
        assert_eq!(
            unregistered(&json!({"role": "standalone", "removed_policies": 1, "cancelled_tasks": 2})),
            "Unregistered from the master: removed 1 master policy, cancelled 2 tasks; \
             this server is now stand-alone.\n"
        );
        assert!(unregistered(&json!({"removed_policies": 3, "cancelled_tasks": 1}))
            .contains("removed 3 master policies, cancelled 1 task;"));
    }

    #[test]
    fn token_table() {
        assert_eq!(render_tokens(&json!([])), "No registration tokens.\n");
        let out = render_tokens(&json!([
            {"id": "t1", "created_at": "x", "expires_at": "y", "used_at": null, "used_by": null, "state": "unused"},
            {"id": "t2", "created_at": "x", "expires_at": "y", "used_at": "z", "used_by": "lyon", "state": "used"}
        ]));
        assert_eq!(
            out,
            "ID  STATE   CREATED  EXPIRES  USED  USED BY\n\
             t1  unused  x        y        -     -\n\
             t2  used    x        y        z     lyon\n"
        );
    }
}
