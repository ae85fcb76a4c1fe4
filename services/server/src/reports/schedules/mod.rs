//! Scheduled reports on a stand-alone or slave.
//!
//! A schedule makes one report every N seconds or daily at a UTC time. Each
//! run writes a file to `<Reports><Directory>` and, when the schedule asks
//! for e-mail, sends it to the recipients of the stored e-mail settings
//! ([`runs`]). The outcome of the last run (file, error) stays on the
//! schedule. A master has no scheduled reports (its report service makes
//! the consolidated ones).
//!
//! Here: what an operator does with schedules (create from a checked
//! [`request`], list, delete, run now). View fields are declared in the
//! order the API has always answered them (alphabetical), so the JSON stays
//! byte for byte the same.

mod request;
mod runs;

use chrono::{DateTime, NaiveTime, Utc};
use deadpool_postgres::{GenericClient, PoolError};
use serde::Serialize;
use tokio_postgres::{error::SqlState, Row};
use uuid::Uuid;

pub use request::{check, Every, InvalidSchedule, NewSchedule};
pub use runs::run;

use crate::{
    email_settings,
    operators::{activity, Actor},
    state::AppState,
};

const SELECT: &str =
    "SELECT id, name, kind, format, every_seconds, daily_at, email, next_run, last_run, last_file, last_error, runs
       FROM report_schedules";

/// A schedule and the outcome of its last run.
#[derive(Debug, Serialize)]
pub struct ScheduleView {
    /// `HH:MM` in UTC, for a daily schedule.
    pub daily_at: Option<String>,
    pub email: bool,
    pub every_seconds: Option<i32>,
    pub format: String,
    pub id: Uuid,
    pub kind: String,
    pub last_error: Option<String>,
    pub last_file: Option<String>,
    pub last_run: Option<DateTime<Utc>>,
    pub name: String,
    pub next_run: DateTime<Utc>,
    pub runs: i64,
}

impl ScheduleView {
    fn from_row(r: &Row) -> Self {
        Self {
            id: r.get(0),
            name: r.get(1),
            kind: r.get(2),
            format: r.get(3),
            every_seconds: r.get(4),
            daily_at: r.get::<_, Option<NaiveTime>>(5).map(|t| t.format("%H:%M").to_string()),
            email: r.get(6),
            next_run: r.get(7),
            last_run: r.get(8),
            last_file: r.get(9),
            last_error: r.get(10),
            runs: r.get(11),
        }
    }
}

/// Every schedule, by name, and where their files go.
#[derive(Debug, Serialize)]
pub struct ScheduleList {
    /// `<Reports><Directory>`, if set.
    pub directory: Option<String>,
    pub schedules: Vec<ScheduleView>,
}

/// A deleted schedule.
#[derive(Debug, Serialize)]
pub struct ScheduleDeleted {
    /// Always `true`.
    pub deleted: bool,
    pub id: Uuid,
}

/// A schedule asked to run now.
#[derive(Debug, Serialize)]
pub struct RunRequested {
    pub id: Uuid,
    pub message: &'static str,
}

/// Why a schedule operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(transparent)]
    Invalid(#[from] InvalidSchedule),
    #[error("scheduled reports need a directory to write to: set <Reports><Directory> in server.xml and restart")]
    NoDirectory,
    #[error("e-mail is asked but no e-mail settings are stored: PUT /api/settings/email first")]
    NoEmailSettings,
    #[error("a schedule named '{0}' exists")]
    NameTaken(String),
    #[error("no report schedule {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// Creates a schedule; its first run is due one period from now. Returns
/// it as listed (`None` if it was deleted meanwhile).
pub async fn create(state: &AppState, actor: &Actor, new: &NewSchedule) -> Result<Option<ScheduleView>, ScheduleError> {
    let (kind, format, every) = check(new)?;
    if state.settings.reports.directory.is_none() {
        return Err(ScheduleError::NoDirectory);
    }
    let mut client = state.pool.get().await?;
    let client = client.transaction().await?;
    if new.email && !email_settings::configured(&client).await? {
        return Err(ScheduleError::NoEmailSettings);
    }
    let id = Uuid::new_v4();
    let (seconds, daily) = match every {
        Every::Seconds(s) => (Some(s), None),
        Every::DailyAt(t) => (None, Some(t)),
    };
    let name = new.name.trim();
    let inserted = client
        .execute(
            "INSERT INTO report_schedules (id, name, kind, format, every_seconds, daily_at, email, next_run)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &id,
                &name,
                &kind.as_str(),
                &format.as_str(),
                &seconds,
                &daily,
                &new.email,
                &every.next_after(Utc::now()),
            ],
        )
        .await;
    match inserted {
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Err(ScheduleError::NameTaken(name.into())),
        other => other?,
    };
    let created = client.query_opt(&format!("{SELECT} WHERE id = $1"), &[&id]).await?;
    let after = serde_json::json!({
        "name": name, "kind": kind.as_str(), "format": format.as_str(),
        "every_seconds": seconds, "daily_at": daily.map(|t| t.format("%H:%M").to_string()), "email": new.email,
    });
    activity::record(&client, actor, "report_schedule.create", &format!("report_schedule:{id}"), None, Some(after))
        .await?;
    client.commit().await?;
    tracing::info!(schedule_id = %id, schedule = %name, kind = kind.as_str(), "Created a report schedule.");
    state.wakes.report_schedules.wake();
    Ok(created.as_ref().map(ScheduleView::from_row))
}

/// Every schedule, by name.
pub async fn list(state: &AppState) -> Result<ScheduleList, ScheduleError> {
    let client = state.pool.get().await?;
    let rows = client.query(&format!("{SELECT} ORDER BY name"), &[]).await?;
    Ok(ScheduleList {
        directory: state.settings.reports.directory.as_ref().map(|d| d.display().to_string()),
        schedules: rows.iter().map(ScheduleView::from_row).collect(),
    })
}

/// Deletes a schedule (its files stay).
pub async fn delete(state: &AppState, actor: &Actor, id: Uuid) -> Result<ScheduleDeleted, ScheduleError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let before = tx
        .query_opt("DELETE FROM report_schedules WHERE id = $1 RETURNING name, kind", &[&id])
        .await?
        .ok_or(ScheduleError::NotFound(id))?;
    let (name, kind): (String, String) = (before.get(0), before.get(1));
    let before = serde_json::json!({"name": name, "kind": kind});
    activity::record(&tx, actor, "report_schedule.delete", &format!("report_schedule:{id}"), Some(before), None)
        .await?;
    tx.commit().await?;
    Ok(ScheduleDeleted { deleted: true, id })
}

/// Makes a schedule due now; it then runs on its schedule again.
pub async fn run_now(state: &AppState, actor: &Actor, id: Uuid) -> Result<RunRequested, ScheduleError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let changed = tx.execute("UPDATE report_schedules SET next_run = now() WHERE id = $1", &[&id]).await?;
    if changed == 0 {
        return Err(ScheduleError::NotFound(id));
    }
    activity::record(&tx, actor, "report_schedule.run", &format!("report_schedule:{id}"), None, None).await?;
    tx.commit().await?;
    state.wakes.report_schedules.wake();
    Ok(RunRequested { id, message: "the report is being made; see last_run and last_file in the schedule list" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_answer_with_their_fields_in_order() {
        let at = DateTime::parse_from_rfc3339("2026-11-26T07:00:00Z").unwrap().with_timezone(&Utc);
        let view = ScheduleView {
            daily_at: Some("07:00".into()),
            email: false,
            every_seconds: None,
            format: "html".into(),
            id: Uuid::nil(),
            kind: "security-status".into(),
            last_error: None,
            last_file: None,
            last_run: None,
            name: "daily".into(),
            next_run: at,
            runs: 0,
        };
        let list = ScheduleList { directory: Some("/var/lib/rampart/reports".into()), schedules: vec![view] };
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"directory":"/var/lib/rampart/reports","schedules":[{"daily_at":"07:00","email":false,"#.to_owned()
                + r#""every_seconds":null,"format":"html","id":"00000000-0000-0000-0000-000000000000","#
                + r#""kind":"security-status","last_error":null,"last_file":null,"last_run":null,"name":"daily","#
                + r#""next_run":"2026-11-26T07:00:00Z","runs":0}]}"#
        );
        let deleted = ScheduleDeleted { deleted: true, id: Uuid::nil() };
        assert_eq!(
            serde_json::to_string(&deleted).unwrap(),
            r#"{"deleted":true,"id":"00000000-0000-0000-0000-000000000000"}"#
        );
    }
}
