//! Running due schedules: each run makes the report, writes its file
//! (aside, then renamed, so a reader never sees half a report), mails it
//! when asked, and records the outcome on the schedule.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use chrono::{NaiveTime, Utc};
use rampart_shared::{
    report::{Format, Kind},
    Shutdown,
};
use uuid::Uuid;

use super::Every;
use crate::{email_settings, mail, reports::local, state::AppState};

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

/// Mails the report through the stored e-mail settings (see
/// `PUT /api/settings/email`).
async fn send(state: &AppState, kind: Kind, file_name: &str, format: Format, bytes: Vec<u8>) -> anyhow::Result<()> {
    let client = state.pool.get().await?;
    let outgoing =
        email_settings::outgoing(&client).await?.context("no e-mail settings are stored (PUT /api/settings/email)")?;
    let instance = &state.site.instance;
    let message = mail::Mail {
        from: outgoing.from,
        to: outgoing.to,
        subject: format!("Rampart {instance}: {}", kind.title()),
        text: format!("The scheduled report '{}' of {instance} is attached ({file_name}).\n", kind.title()),
        attachment: Some(mail::Attachment {
            filename: file_name.to_owned(),
            content_type: format.content_type().to_owned(),
            bytes,
        }),
    };
    mail::send(&outgoing.relay, &message).await?;
    Ok(())
}
