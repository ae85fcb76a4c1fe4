//! Which reports there are ([`Kind`]) and the formats they are rendered in
//! ([`Format`]), with their names in URLs, files and messages.

use serde::Serialize;

/// The reports there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    SecurityStatus,
    Malware,
    Updates,
    Tasks,
    Licenses,
    Health,
    /// Every report above on one page.
    Overview,
}

impl Kind {
    pub const ALL: [Kind; 7] =
        [Self::SecurityStatus, Self::Malware, Self::Updates, Self::Tasks, Self::Licenses, Self::Health, Self::Overview];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecurityStatus => "security-status",
            Self::Malware => "malware",
            Self::Updates => "updates",
            Self::Tasks => "tasks",
            Self::Licenses => "licenses",
            Self::Health => "health",
            Self::Overview => "overview",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::SecurityStatus => "Security status",
            Self::Malware => "Malware activity",
            Self::Updates => "Update status",
            Self::Tasks => "Task outcomes",
            Self::Licenses => "License usage",
            Self::Health => "Hierarchy health",
            Self::Overview => "Overview",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
            format!("unknown report '{s}': use one of {}", known.join(", "))
        })
    }
}

/// The formats a report is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
    Html,
    /// Aligned plain-text tables, for a terminal.
    Text,
}

impl Format {
    pub const ALL: [Format; 4] = [Self::Json, Self::Csv, Self::Html, Self::Text];

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            "html" => Ok(Self::Html),
            "text" => Ok(Self::Text),
            other => Err(format!("unknown format '{other}': use json, csv, html or text")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Html => "html",
            Self::Text => "text",
        }
    }

    /// File name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Text => "txt",
            other => other.as_str(),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Html => "text/html; charset=utf-8",
            Self::Text => "text/plain; charset=utf-8",
        }
    }
}
