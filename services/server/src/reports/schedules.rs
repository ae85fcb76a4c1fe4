//! Scheduled reports on a stand-alone or slave.
//!
//! A schedule makes one report every N seconds or daily at a UTC time. Each
//! run writes a file to `<Reports><Directory>` (written aside, then renamed,
//! so a reader never sees half a report) and, when the schedule asks for
//! e-mail, sends it to the recipients of the stored e-mail settings. The
//! outcome of the last run (file, error) stays on the schedule. A master has
//! no scheduled reports (its report service makes the consolidated ones).

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{DateTime, NaiveTime, Utc};
use deadpool_postgres::GenericClient;
use rampart_shared::{
    report::{Format, Kind},
    Shutdown,
};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::local;
use crate::{mail, settings_store, state::AppState};

/// What an operator asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub every_seconds: Option<i32>,
    /// `HH:MM` in UTC.
    #[serde(default)]
    pub daily_at: Option<String>,
    #[serde(default)]
    pub email: bool,
}

/// When a schedule runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Every {
    Seconds(i32),
    DailyAt(NaiveTime),
}

impl Every {
    /// The first run strictly after `after`.
    pub fn next_after(self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Every::Seconds(s) => after + chrono::Duration::seconds(i64::from(s)),
            Every::DailyAt(time) => {
                let today = after.date_naive().and_time(time).and_utc();
                if today > after {
                    today
                } else {
                    today + chrono::Duration::days(1)
                }
            }
        }
    }
}

/// A checked request: `Err` says what is wrong, for a 422.
pub fn check(new: &NewSchedule) -> Result<(Kind, Format, Every), String> {
    let name = new.name.trim();
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!(
            "name '{}' must be 1 to 64 letters, digits, '-' or '_' (it names the report files)",
            new.name
        ));
    }
    let kind = Kind::parse(&new.kind)?;
    if kind == Kind::Health {
        return Err("the hierarchy health report exists on a master only".into());
    }
    let format = Format::parse(new.format.as_deref().unwrap_or("html"))?;
    if format == Format::Text {
        return Err("scheduled reports are json, csv or html".into());
    }
    let every = match (new.every_seconds, new.daily_at.as_deref()) {
        (Some(s), None) if s >= 60 => Every::Seconds(s),
        (Some(s), None) => return Err(format!("every_seconds must be at least 60, not {s}")),
        (None, Some(t)) => Every::DailyAt(
            NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| format!("daily_at '{t}' must be HH:MM (UTC)"))?,
        ),
        _ => return Err("give either every_seconds or daily_at".into()),
    };
    Ok((kind, format, every))
}

pub async fn create<C: GenericClient>(
    client: &C,
    new: &NewSchedule,
    kind: Kind,
    format: Format,
    every: Every,
) -> Result<Uuid, tokio_postgres::Error> {
    let id = Uuid::new_v4();
    let (seconds, daily) = match every {
        Every::Seconds(s) => (Some(s), None),
        Every::DailyAt(t) => (None, Some(t)),
    };
    client
        .execute(
            "INSERT INTO report_schedules (id, name, kind, format, every_seconds, daily_at, email, next_run)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &id,
                &new.name.trim(),
                &kind.as_str(),
                &format.as_str(),
                &seconds,
                &daily,
                &new.email,
                &every.next_after(Utc::now()),
            ],
        )
        .await?;
    Ok(id)
}

pub async fn list<C: GenericClient>(client: &C) -> Result<Vec<Value>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, name, kind, format, every_seconds, daily_at, email, next_run, last_run, last_file, last_error, runs
               FROM report_schedules ORDER BY name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            json!({"id": r.get::<_, Uuid>(0), "name": r.get::<_, String>(1), "kind": r.get::<_, String>(2),
                   "format": r.get::<_, String>(3), "every_seconds": r.get::<_, Option<i32>>(4),
                   "daily_at": r.get::<_, Option<NaiveTime>>(5).map(|t| t.format("%H:%M").to_string()),
                   "email": r.get::<_, bool>(6), "next_run": r.get::<_, DateTime<Utc>>(7),
                   "last_run": r.get::<_, Option<DateTime<Utc>>>(8), "last_file": r.get::<_, Option<String>>(9),
                   "last_error": r.get::<_, Option<String>>(10), "runs": r.get::<_, i64>(11)})
        })
        .collect())
}

/// Runs due schedules until shutdown (stand-alone or slave with a directory).
pub async fn run(state: Arc<AppState>, shutdown: Shutdown) {
    loop {
        if state.role().has_fleet() && state.settings.reports.directory.is_some() {
            if let Err(e) = run_due(&state).await {
                tracing::warn!(error = %format!("{e:#}"), "Scheduled reports failed; retrying in a few seconds.");
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = state.wakes.report_schedules.woken() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// Runs every due schedule once; returns how many ran.
async fn run_due(state: &AppState) -> anyhow::Result<usize> {
    let directory = state.settings.reports.directory.as_deref().context("no report directory")?;
    let mut ran = 0;
    loop {
        let mut client = state.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT id, name, kind, format, every_seconds, daily_at, email FROM report_schedules
                  WHERE next_run <= now() ORDER BY next_run LIMIT 1 FOR UPDATE SKIP LOCKED",
                &[],
            )
            .await?
        else {
            return Ok(ran);
        };
        let (id, name): (Uuid, String) = (row.get(0), row.get(1));
        let every = match (row.get::<_, Option<i32>>(4), row.get::<_, Option<NaiveTime>>(5)) {
            (Some(s), _) => Every::Seconds(s),
            (None, Some(t)) => Every::DailyAt(t),
            (None, None) => unreachable!("the table requires one of them"),
        };
        let outcome = produce(state, directory, &name, row.get(2), row.get(3), row.get(6)).await;
        let (file, error) = match &outcome {
            Ok((file, mail_error)) => (Some(file.display().to_string()), mail_error.clone()),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        match &error {
            None => {
                tracing::info!(schedule = %name, schedule_id = %id, file = file.as_deref().unwrap_or(""), "Scheduled report made.")
            }
            Some(e) => tracing::warn!(schedule = %name, schedule_id = %id, error = %e, "Scheduled report failed."),
        }
        tx.execute(
            "UPDATE report_schedules SET last_run = now(), last_file = COALESCE($2, last_file), last_error = $3,
                    runs = runs + 1, next_run = $4 WHERE id = $1",
            &[&id, &file, &error, &every.next_after(Utc::now())],
        )
        .await?;
        tx.commit().await?;
        ran += 1;
    }
}

/// Makes the report file and mails it if asked; `Ok` carries the file and
/// an e-mail error, if sending failed (the file stays).
async fn produce(
    state: &AppState,
    directory: &Path,
    name: &str,
    kind: &str,
    format: &str,
    email: bool,
) -> anyhow::Result<(std::path::PathBuf, Option<String>)> {
    let kind = Kind::parse(kind).map_err(anyhow::Error::msg)?;
    let format = Format::parse(format).map_err(anyhow::Error::msg)?;
    let bytes = local::make(state, kind, format).await?;
    let now = Utc::now();
    let file_name = format!("{name}-{}.{}", now.format("%Y%m%dT%H%M%SZ"), format.extension());
    let path = directory.join(&file_name);
    write_atomically(&path, &bytes).await.with_context(|| format!("cannot write {}", path.display()))?;
    let mail_error = if email {
        send(state, kind, &file_name, format, bytes)
            .await
            .err()
            .map(|e| format!("the report was written but not e-mailed: {e:#}"))
    } else {
        None
    };
    Ok((path, mail_error))
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (path, bytes) = (path.to_path_buf(), bytes.to_vec());
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes)?;
        std::fs::rename(&partial, &path)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// The stored e-mail settings (see `PUT /api/settings/email`).
#[derive(Deserialize)]
struct StoredEmail {
    smtp_host: String,
    smtp_port: u16,
    username: Option<String>,
    password: Option<String>,
    from: String,
    to: Vec<String>,
    /// Settings saved before `tls` existed have only `starttls`.
    starttls: bool,
    #[serde(default)]
    tls: Option<mail::TlsMode>,
    #[serde(default)]
    ca_file: Option<std::path::PathBuf>,
}

async fn send(state: &AppState, kind: Kind, file_name: &str, format: Format, bytes: Vec<u8>) -> anyhow::Result<()> {
    let client = state.pool.get().await?;
    let stored = settings_store::get(&client, settings_store::EMAIL)
        .await?
        .context("no e-mail settings are stored (PUT /api/settings/email)")?;
    let stored: StoredEmail = serde_json::from_value(stored).context("the stored e-mail settings are unreadable")?;
    let settings = mail::SmtpSettings {
        host: stored.smtp_host,
        port: stored.smtp_port,
        username: stored.username,
        password: stored.password,
        tls: stored.tls.unwrap_or(mail::TlsMode::from_starttls(stored.starttls)),
        ca_file: stored.ca_file,
    };
    let instance = &state.site.instance;
    let message = mail::Mail {
        from: stored.from,
        to: stored.to,
        subject: format!("Rampart {instance}: {}", kind.title()),
        text: format!("The scheduled report '{}' of {instance} is attached ({file_name}).\n", kind.title()),
        attachment: Some(mail::Attachment {
            filename: file_name.to_owned(),
            content_type: format.content_type().to_owned(),
            bytes,
        }),
    };
    mail::send(&settings, &message).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn next_runs() {
        let now = at("2026-11-26T10:00:00Z");
        assert_eq!(Every::Seconds(3600).next_after(now), at("2026-11-26T11:00:00Z"));
        let seven = NaiveTime::from_hms_opt(7, 0, 0).unwrap();
        assert_eq!(Every::DailyAt(seven).next_after(now), at("2026-11-27T07:00:00Z"));
        let noon = NaiveTime::from_hms_opt(12, 0, 0).unwrap();
        assert_eq!(Every::DailyAt(noon).next_after(now), at("2026-11-26T12:00:00Z"));
        assert_eq!(Every::DailyAt(noon).next_after(at("2026-11-26T12:00:00Z")), at("2026-11-27T12:00:00Z"));
    }

    #[test]
    fn requests_are_checked() {
        let new = |every: Option<i32>, daily: Option<&str>| NewSchedule {
            name: "daily-status".into(),
            kind: "security-status".into(),
            format: None,
            every_seconds: every,
            daily_at: daily.map(str::to_owned),
            email: false,
        };
        assert_eq!(check(&new(Some(3600), None)).unwrap(), (Kind::SecurityStatus, Format::Html, Every::Seconds(3600)));
        assert!(check(&new(Some(10), None)).unwrap_err().contains("at least 60"));
        assert!(check(&new(None, Some("25:00"))).unwrap_err().contains("HH:MM"));
        assert!(check(&new(Some(60), Some("07:00"))).unwrap_err().contains("either"));
        assert!(check(&new(None, None)).unwrap_err().contains("either"));
        let mut bad = new(Some(60), None);
        bad.name = "../etc".into();
        assert!(check(&bad).unwrap_err().contains("names the report files"));
        bad = new(Some(60), None);
        bad.kind = "health".into();
        assert!(check(&bad).unwrap_err().contains("master only"));
    }
}
