//! What an operator asks of a schedule, checked: a name that can name
//! files, a report a site makes, a file format, and when it runs.

use chrono::{DateTime, NaiveTime, Utc};
use rampart_shared::report::{Format, Kind};
use serde::Deserialize;

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

/// What is wrong with a requested schedule.
#[derive(Debug, thiserror::Error)]
pub enum InvalidSchedule {
    #[error("name '{0}' must be 1 to 64 letters, digits, '-' or '_' (it names the report files)")]
    Name(String),
    /// Not a report kind (the shared crate's message).
    #[error("{0}")]
    Kind(String),
    #[error("the hierarchy health report exists on a master only")]
    HealthOnMasterOnly,
    /// Not a report format (the shared crate's message).
    #[error("{0}")]
    Format(String),
    #[error("scheduled reports are json, csv or html")]
    TextFormat,
    #[error("every_seconds must be at least 60, not {0}")]
    TooOften(i32),
    #[error("daily_at '{0}' must be HH:MM (UTC)")]
    DailyAt(String),
    #[error("give either every_seconds or daily_at")]
    NoTiming,
}

/// A checked request: the report, its format, and when it runs.
pub fn check(new: &NewSchedule) -> Result<(Kind, Format, Every), InvalidSchedule> {
    let name = new.name.trim();
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(InvalidSchedule::Name(new.name.clone()));
    }
    let kind = Kind::parse(&new.kind).map_err(InvalidSchedule::Kind)?;
    if kind == Kind::Health {
        return Err(InvalidSchedule::HealthOnMasterOnly);
    }
    let format = Format::parse(new.format.as_deref().unwrap_or("html")).map_err(InvalidSchedule::Format)?;
    if format == Format::Text {
        return Err(InvalidSchedule::TextFormat);
    }
    let every = match (new.every_seconds, new.daily_at.as_deref()) {
        (Some(s), None) if s >= 60 => Every::Seconds(s),
        (Some(s), None) => return Err(InvalidSchedule::TooOften(s)),
        (None, Some(t)) => {
            Every::DailyAt(NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| InvalidSchedule::DailyAt(t.to_owned()))?)
        }
        _ => return Err(InvalidSchedule::NoTiming),
    };
    Ok((kind, format, every))
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
        let refused = |new: &NewSchedule| check(new).unwrap_err().to_string();
        assert_eq!(check(&new(Some(3600), None)).unwrap(), (Kind::SecurityStatus, Format::Html, Every::Seconds(3600)));
        assert!(refused(&new(Some(10), None)).contains("at least 60"));
        assert!(refused(&new(None, Some("25:00"))).contains("HH:MM"));
        assert!(refused(&new(Some(60), Some("07:00"))).contains("either"));
        assert!(refused(&new(None, None)).contains("either"));
        let mut bad = new(Some(60), None);
        bad.name = "../etc".into();
        assert!(refused(&bad).contains("names the report files"));
        bad = new(Some(60), None);
        bad.kind = "health".into();
        assert!(refused(&bad).contains("master only"));
    }
}
