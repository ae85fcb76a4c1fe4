//! How a computer's security status is judged from its last snapshot.

use chrono::NaiveDate;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityStatus {
    Protected,
    AtRisk,
    Infected,
    Unprotected,
}

impl SecurityStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Protected => "protected",
            Self::AtRisk => "at_risk",
            Self::Infected => "infected",
            Self::Unprotected => "unprotected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "protected" => Some(Self::Protected),
            "at_risk" => Some(Self::AtRisk),
            "infected" => Some(Self::Infected),
            "unprotected" => Some(Self::Unprotected),
            _ => None,
        }
    }
}

/// Worst first: an active threat outranks disabled protection, which
/// outranks outdated signatures.
pub fn judge(
    active_threats: u32,
    realtime_protection: bool,
    signatures_date: NaiveDate,
    today: NaiveDate,
    outdated_after_days: u32,
) -> SecurityStatus {
    if active_threats > 0 {
        SecurityStatus::Infected
    } else if !realtime_protection {
        SecurityStatus::Unprotected
    } else if (today - signatures_date).num_days() > i64::from(outdated_after_days) {
        SecurityStatus::AtRisk
    } else {
        SecurityStatus::Protected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn worst_condition_wins() {
        let today = day("2026-11-26");
        assert_eq!(judge(0, true, today, today, 3), SecurityStatus::Protected);
        assert_eq!(judge(0, true, day("2026-11-23"), today, 3), SecurityStatus::Protected);
        assert_eq!(judge(0, true, day("2026-11-22"), today, 3), SecurityStatus::AtRisk);
        assert_eq!(judge(0, false, day("2026-11-01"), today, 3), SecurityStatus::Unprotected);
        assert_eq!(judge(2, false, day("2026-11-01"), today, 3), SecurityStatus::Infected);
    }
}
