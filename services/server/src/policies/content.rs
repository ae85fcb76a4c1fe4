//! What an operator writes into a policy: its name and a patch of its
//! settings, checked before anything is stored.

use rampart_shared::messages::PolicySettings;
use serde::Deserialize;

/// Shortest and longest signature update interval a policy may ask for.
const UPDATE_INTERVAL_MINUTES: std::ops::RangeInclusive<u32> = 5..=10_080;

/// A policy name or setting the operator cannot have.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("name is required")]
    NameRequired,
    #[error("settings.update_interval_minutes must be between 5 and 10080")]
    UpdateInterval,
    #[error("settings.scan_schedule '{0}' must be 'off', 'daily HH:MM' or 'weekly mon..sun HH:MM'")]
    ScanSchedule(String),
}

/// A policy name as given: trimmed, and required.
pub fn policy_name(name: &str) -> Result<String, ContentError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ContentError::NameRequired);
    }
    Ok(name.to_owned())
}

/// Settings as sent by operators: any subset; the rest keep their value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    realtime_protection: Option<bool>,
    scan_schedule: Option<String>,
    update_interval_minutes: Option<u32>,
}

impl SettingsPatch {
    /// `settings` with this patch applied, once every patched value is valid.
    pub fn apply(self, mut settings: PolicySettings) -> Result<PolicySettings, ContentError> {
        if let Some(v) = self.realtime_protection {
            settings.realtime_protection = v;
        }
        if let Some(v) = self.scan_schedule {
            validate_schedule(&v)?;
            settings.scan_schedule = v;
        }
        if let Some(v) = self.update_interval_minutes {
            if !UPDATE_INTERVAL_MINUTES.contains(&v) {
                return Err(ContentError::UpdateInterval);
            }
            settings.update_interval_minutes = v;
        }
        Ok(settings)
    }
}

/// `off`, `daily HH:MM` or `weekly <mon..sun> HH:MM`.
fn validate_schedule(s: &str) -> Result<(), ContentError> {
    let time_ok = |t: &str| {
        t.split_once(':').is_some_and(|(h, m)| {
            h.len() == 2
                && m.len() == 2
                && h.parse::<u8>().is_ok_and(|h| h < 24)
                && m.parse::<u8>().is_ok_and(|m| m < 60)
        })
    };
    let parts: Vec<&str> = s.split_whitespace().collect();
    match parts.as_slice() {
        ["off"] => Ok(()),
        ["daily", t] if time_ok(t) => Ok(()),
        ["weekly", d, t] if ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].contains(d) && time_ok(t) => Ok(()),
        _ => Err(ContentError::ScanSchedule(s.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_checked() {
        for ok in ["off", "daily 02:00", "weekly sun 23:59"] {
            assert!(validate_schedule(ok).is_ok(), "{ok}");
        }
        for bad in ["", "daily", "daily 24:00", "weekly xyz 01:00", "hourly"] {
            assert!(validate_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patches_keep_unset_settings() {
        let patch = SettingsPatch { realtime_protection: Some(false), ..Default::default() };
        let s = patch.apply(PolicySettings::default()).unwrap();
        assert!(!s.realtime_protection);
        assert_eq!(s.scan_schedule, PolicySettings::default().scan_schedule);
    }

    #[test]
    fn intervals_and_names_are_checked() {
        let patch = SettingsPatch { update_interval_minutes: Some(4), ..Default::default() };
        assert!(matches!(patch.apply(PolicySettings::default()), Err(ContentError::UpdateInterval)));
        assert!(matches!(policy_name("  "), Err(ContentError::NameRequired)));
        assert_eq!(policy_name(" Servers ").unwrap(), "Servers");
    }
}
