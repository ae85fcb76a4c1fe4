//! `rampartctl activity`: the activity log (`GET /api/activity`), who did
//! what to which object, newest first. On a master the slaves' entries are
//! there too, and a SITE column says where each happened.

use chrono::{DateTime, Local, NaiveDate, TimeZone, Utc};
use clap::Args;
use serde_json::Value;

use crate::output::{items, text, time, Table};
use crate::session::Session;

/// The server's page size when no `--limit` is given.
const DEFAULT_LIMIT: u32 = 200;

#[derive(Debug, Args)]
pub struct ActivityArgs {
    /// Only what this operator did.
    #[arg(long, value_name = "NAME")]
    operator: Option<String>,
    /// Only entries whose object starts with this (`operator:alice`, `token:`).
    #[arg(long, value_name = "TEXT")]
    object: Option<String>,
    /// Only since this time: RFC 3339 (2026-12-01T08:00:00Z), a local date
    /// (2026-12-01), or a time ago (30m, 12h, 7d).
    #[arg(long, value_name = "TIME", value_parser = parse_since)]
    since: Option<DateTime<Utc>>,
    /// At most this many (server default 200, at most 10000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: Option<u32>,
}

pub async fn run(args: ActivityArgs, session: &Session) -> anyhow::Result<()> {
    let mut query = Vec::new();
    for (name, value) in [("operator", args.operator), ("object", args.object)] {
        if let Some(value) = value {
            query.push((name, value));
        }
    }
    if let Some(since) = args.since {
        query.push(("since", since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let answer = session.client.get(&["api", "activity"], &query).await?;
    if session.json() {
        return session.print(&answer, |_| String::new());
    }
    // The SITE column is for a master, where the slaves' entries arrive.
    let on_master = match session.client.get(&["api", "status"], &[]).await {
        Ok(status) => status.value["role"].as_str() == Some("master"),
        Err(_) => false,
    };
    let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
    session.print(&answer, |a| render(a, on_master, limit))
}

fn render(answer: &Value, on_master: bool, limit: u32) -> String {
    let entries = items(answer);
    if entries.is_empty() {
        return "No activity recorded.\n".to_owned();
    }
    let mut headers = vec!["AT"];
    if on_master {
        headers.push("SITE");
    }
    headers.extend(["OPERATOR", "ACTION", "OBJECT", "ADDRESS", "CHANGE"]);
    let mut table = Table::new(&headers);
    for e in entries {
        let mut row = vec![time(&e["at"])];
        if on_master {
            row.push(text(&e["site"]));
        }
        row.extend([
            text(&e["operator"]),
            text(&e["action"]),
            text(&e["object"]),
            text(&e["address"]),
            change(&e["before"], &e["after"]),
        ]);
        table.row(row);
    }
    let mut out = table.render();
    if entries.len() as u64 >= u64::from(limit) {
        out.push_str(&format!("{} shown (newest first; --limit or --since for others).\n", entries.len()));
    }
    out
}

/// What changed: `role: auditor -> operator` for each field that differs,
/// `field=value` for a new object, `-` for nothing recorded.
fn change(before: &Value, after: &Value) -> String {
    let cell = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (before.as_object(), after.as_object()) {
        (Some(before), Some(after)) => {
            let mut keys: Vec<&String> = before.keys().chain(after.keys()).collect();
            keys.sort();
            keys.dedup();
            let changed: Vec<String> = keys
                .into_iter()
                .filter(|k| before.get(*k) != after.get(*k))
                .map(|k| {
                    let (b, a) = (before.get(k).unwrap_or(&Value::Null), after.get(k).unwrap_or(&Value::Null));
                    format!("{k}: {} -> {}", cell(b), cell(a))
                })
                .collect();
            if changed.is_empty() {
                "-".to_owned()
            } else {
                changed.join(", ")
            }
        }
        (None, Some(fields)) | (Some(fields), None) => {
            let shown: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect();
            if shown.is_empty() {
                "-".to_owned()
            } else {
                shown.join(", ")
            }
        }
        (None, None) if after.is_null() => text(before),
        (None, None) => text(after),
    }
}

/// `--since`: RFC 3339, a local date (its midnight), or `N` seconds,
/// minutes, hours or days ago (`90s`, `30m`, `12h`, `7d`).
fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    parse_since_at(text, Utc::now())
}

fn parse_since_at(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.to_utc());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        return Local
            .from_local_datetime(&midnight)
            .earliest()
            .map(|at| at.to_utc())
            .ok_or_else(|| format!("{text} has no local midnight"));
    }
    let split = text.char_indices().last().map_or(0, |(i, _)| i);
    let (number, unit) = text.split_at(split);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u32>() {
        Ok(n) if seconds > 0 => Ok(now - chrono::Duration::seconds(i64::from(n) * seconds)),
        _ => Err("expected an RFC 3339 time (2026-12-01T08:00:00Z), a date (2026-12-01) or a time ago (30m, 12h, 7d)"
            .to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    #[test]
    fn since_takes_a_time_a_date_or_a_time_ago() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z").unwrap().to_utc();
        let at = |t: &str| parse_since_at(t, now).map(|t| t.to_rfc3339());
        assert_eq!(at("2026-12-01T08:00:00+01:00").unwrap(), "2026-12-01T07:00:00+00:00");
        assert_eq!(at("30m").unwrap(), "2026-12-06T11:30:00+00:00");
        assert_eq!(at("12h").unwrap(), "2026-12-06T00:00:00+00:00");
        assert_eq!(at("7d").unwrap(), "2026-11-29T12:00:00+00:00");
        let local_midnight = Local.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap().to_utc();
        assert_eq!(parse_since_at("2026-12-01", now).unwrap(), local_midnight);
        for bad in ["yesterday", "12", "h", "-3d", "", "3é"] {
            assert!(at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn activity_flags_parse() {
        let cli = Cli::try_parse_from([
            "rampartctl",
            "activity",
            "--operator",
            "alice",
            "--object",
            "operator:",
            "--since",
            "7d",
            "--limit",
            "50",
            "--json",
        ])
        .unwrap();
        assert!(cli.json && matches!(cli.command, Command::Activity(ActivityArgs { limit: Some(50), .. })));
        assert!(Cli::try_parse_from(["rampartctl", "activity", "--limit", "0"]).is_err());
        assert!(Cli::try_parse_from(["rampartctl", "activity", "--since", "soon"]).is_err());
    }

    #[test]
    fn entries_show_who_did_what_and_the_site_on_a_master() {
        let answer = json!([
            {"at": "x", "site": "paris", "operator": "alice", "action": "operator.set_role", "object": "operator:bob",
             "address": "10.0.0.9", "before": {"role": "auditor"}, "after": {"role": "operator"}},
            {"at": "x", "site": "hq", "operator": "alice", "action": "sign_in", "object": "token:6f1c",
             "address": null, "before": null, "after": null}]);
        let out = render(&answer, false, 200);
        assert_eq!(
            out,
            "AT  OPERATOR  ACTION             OBJECT        ADDRESS   CHANGE\n\
             x   alice     operator.set_role  operator:bob  10.0.0.9  role: auditor -> operator\n\
             x   alice     sign_in            token:6f1c    -         -\n"
        );
        let master = render(&answer, true, 2);
        assert!(master.starts_with("AT  SITE   OPERATOR"), "{master}");
        assert!(master.lines().nth(1).unwrap().starts_with("x   paris  alice"), "{master}");
        assert!(master.ends_with("2 shown (newest first; --limit or --since for others).\n"), "{master}");
        assert_eq!(render(&json!([]), true, 200), "No activity recorded.\n");
    }

    #[test]
    fn changes_name_the_fields_that_differ() {
        assert_eq!(
            change(&json!({"disabled": false, "role": "a"}), &json!({"disabled": true, "role": "a"})),
            "disabled: false -> true"
        );
        assert_eq!(change(&json!(null), &json!({"role": "auditor"})), "role=auditor");
        assert_eq!(change(&json!(null), &json!(null)), "-");
    }
}
