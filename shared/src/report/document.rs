//! A report as tables and charts: what the CSV and HTML formats render.

use chrono::{DateTime, Utc};

use super::model::{Health, Licenses, Malware, Report, SecurityStatus, Tasks, Updates, AGE_BUCKETS};
use crate::replication::ReplicationProgress;

/// One report laid out for people.
#[derive(Clone, Debug)]
pub struct Document {
    pub title: String,
    /// "Consolidated over 3 slaves by hq", "Site paris", ...
    pub subtitle: String,
    pub generated_at: DateTime<Utc>,
    pub sections: Vec<Section>,
}

/// A titled part of a document: its charts, then its tables.
#[derive(Clone, Debug)]
pub struct Section {
    pub title: String,
    pub charts: Vec<Chart>,
    pub tables: Vec<Table>,
}

/// Rows of text cells under a header; numbers are right-aligned in HTML.
#[derive(Clone, Debug)]
pub struct Table {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// A named series of a chart, with its colour (CSS colour).
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
}

#[derive(Clone, Debug)]
pub enum Chart {
    /// One horizontal bar per label, split into the series (stacked).
    StackedBars { title: String, series: Vec<Series>, bars: Vec<(String, Vec<i64>)> },
    /// One horizontal bar per label.
    Bars { title: String, color: &'static str, bars: Vec<(String, i64)> },
    /// Vertical columns over time (labels in order, e.g. days).
    Columns { title: String, color: &'static str, points: Vec<(String, i64)> },
}

const GREEN: &str = "#2e7d32";
const AMBER: &str = "#f9a825";
const RED: &str = "#c62828";
const GREY: &str = "#757575";
const PURPLE: &str = "#6a1b9a";
const BLUE: &str = "#1565c0";

fn status_series() -> Vec<Series> {
    [("protected", GREEN), ("at risk", AMBER), ("infected", RED), ("unprotected", GREY)]
        .into_iter()
        .map(|(name, color)| Series { name: name.into(), color })
        .collect()
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_else(|| "never".into())
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl Report {
    /// The report as tables and charts.
    pub fn document(&self) -> Document {
        let (header, sections) = match self {
            Report::SecurityStatus(r) => (&r.header, vec![security_status(r)]),
            Report::Malware(r) => (&r.header, vec![malware(r)]),
            Report::Updates(r) => (&r.header, vec![updates(r)]),
            Report::Tasks(r) => (&r.header, vec![tasks(r)]),
            Report::Licenses(r) => (&r.header, vec![licenses(r)]),
            Report::Health(r) => (&r.header, vec![health(r)]),
            Report::Overview(o) => {
                let mut sections = vec![
                    security_status(&o.security_status),
                    malware(&o.malware),
                    updates(&o.updates),
                    tasks(&o.tasks),
                    licenses(&o.licenses),
                ];
                sections.extend(o.health.as_ref().map(health));
                (&o.header, sections)
            }
        };
        let subtitle = match &header.slave {
            Some(slave) => format!("Slave {slave}, from {}", header.source),
            None => format!("Made by {}", header.source),
        };
        Document { title: header.title.to_owned(), subtitle, generated_at: header.generated_at, sections }
    }
}

fn security_status(r: &SecurityStatus) -> Section {
    let bars = r
        .sites
        .iter()
        .map(|s| (s.site.clone(), vec![s.counts.protected, s.counts.at_risk, s.counts.infected, s.counts.unprotected]))
        .collect();
    let columns = ["site", "computers", "protected", "at risk", "infected", "unprotected", "unlicensed", "as of"];
    let mut rows: Vec<Vec<String>> = r
        .sites
        .iter()
        .map(|s| {
            let c = &s.counts;
            vec![
                s.site.clone(),
                c.total.to_string(),
                c.protected.to_string(),
                c.at_risk.to_string(),
                c.infected.to_string(),
                c.unprotected.to_string(),
                c.unlicensed.to_string(),
                time(s.as_of),
            ]
        })
        .collect();
    let t = &r.total;
    rows.push(vec![
        "total".into(),
        t.total.to_string(),
        t.protected.to_string(),
        t.at_risk.to_string(),
        t.infected.to_string(),
        t.unprotected.to_string(),
        t.unlicensed.to_string(),
        String::new(),
    ]);
    Section {
        title: "Security status".into(),
        charts: vec![Chart::StackedBars {
            title: "Computers by security status".into(),
            series: status_series(),
            bars,
        }],
        tables: vec![Table { title: "Security status per site".into(), columns: strings(&columns), rows }],
    }
}

fn malware(r: &Malware) -> Section {
    let daily = Table {
        title: "Detections per day".into(),
        columns: strings(&["day", "detections"]),
        rows: r.daily.iter().map(|d| vec![d.day.to_string(), d.detections.to_string()]).collect(),
    };
    let threats = Table {
        title: "Top threats".into(),
        columns: strings(&["malware", "detections", "computers", "sites", "last detected"]),
        rows: r
            .top_threats
            .iter()
            .map(|t| {
                vec![
                    t.malware.clone(),
                    t.detections.to_string(),
                    t.endpoints.to_string(),
                    t.sites.to_string(),
                    time(Some(t.last_detected)),
                ]
            })
            .collect(),
    };
    let infected = Table {
        title: "Most infected computers".into(),
        columns: strings(&["site", "endpoint", "hostname", "detections", "active threats", "last detected"]),
        rows: r
            .most_infected
            .iter()
            .map(|i| {
                let e = &i.endpoint;
                vec![
                    i.site.clone(),
                    e.endpoint_id.clone(),
                    opt(e.hostname.clone()),
                    e.detections.to_string(),
                    e.active_threats.to_string(),
                    time(Some(e.last_detected)),
                ]
            })
            .collect(),
    };
    let per_site = Table {
        title: "Detections per site".into(),
        columns: strings(&["site", "detections"]),
        rows: r.sites.iter().map(|s| vec![s.site.clone(), s.detections.to_string()]).collect(),
    };
    Section {
        title: format!("Malware activity ({} detections)", r.total_detections),
        charts: vec![
            Chart::Columns {
                title: "Detections per day".into(),
                color: RED,
                points: r.daily.iter().map(|d| (d.day.to_string(), d.detections)).collect(),
            },
            Chart::Bars {
                title: "Top threats".into(),
                color: PURPLE,
                bars: r.top_threats.iter().map(|t| (t.malware.clone(), t.detections)).collect(),
            },
        ],
        tables: vec![per_site, threats, infected, daily],
    }
}

fn updates(r: &Updates) -> Section {
    let colors = [GREEN, "#66bb6a", AMBER, "#ef6c00", RED, GREY];
    let series =
        AGE_BUCKETS.iter().zip(colors).map(|((name, _), color)| Series { name: (*name).into(), color }).collect();
    let mut columns = vec!["site".to_owned()];
    columns.extend(r.buckets.iter().map(|b| (*b).to_owned()));
    let mut rows: Vec<Vec<String>> = r
        .sites
        .iter()
        .map(|s| std::iter::once(s.site.clone()).chain(s.endpoints.iter().map(i64::to_string)).collect())
        .collect();
    rows.push(std::iter::once("total".to_owned()).chain(r.total.iter().map(i64::to_string)).collect());
    Section {
        title: "Update status (signature age)".into(),
        charts: vec![Chart::StackedBars {
            title: "Computers by signature age".into(),
            series,
            bars: r.sites.iter().map(|s| (s.site.clone(), s.endpoints.clone())).collect(),
        }],
        tables: vec![Table { title: "Signature age per site".into(), columns, rows }],
    }
}

fn tasks(r: &Tasks) -> Section {
    let columns = [
        "task",
        "name",
        "kind",
        "site",
        "computers",
        "pending",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "detections",
    ];
    let rows = r
        .tasks
        .iter()
        .map(|t| {
            let o = &t.outcome;
            vec![
                o.task_id.to_string(),
                o.name.clone().unwrap_or_else(|| "(site task)".into()),
                opt(o.kind.clone()),
                t.site.clone(),
                t.total.to_string(),
                o.pending.to_string(),
                o.running.to_string(),
                o.succeeded.to_string(),
                o.failed.to_string(),
                o.cancelled.to_string(),
                o.detections.to_string(),
            ]
        })
        .collect();
    let series = [("succeeded", GREEN), ("failed", RED), ("cancelled", GREY), ("running", BLUE), ("pending", AMBER)]
        .into_iter()
        .map(|(name, color)| Series { name: name.into(), color })
        .collect();
    let bars = r
        .tasks
        .iter()
        .map(|t| {
            let o = &t.outcome;
            let label = format!("{} @ {}", o.name.clone().unwrap_or_else(|| o.task_id.to_string()), t.site);
            (label, vec![o.succeeded, o.failed, o.cancelled, o.running, o.pending])
        })
        .collect();
    Section {
        title: "Task outcomes".into(),
        charts: vec![Chart::StackedBars { title: "Outcome per task and site".into(), series, bars }],
        tables: vec![Table { title: "Outcome per task and site".into(), columns: strings(&columns), rows }],
    }
}

fn licenses(r: &Licenses) -> Section {
    let columns = ["site", "customer", "seats", "used", "computers", "expires on", "days left"];
    let mut rows: Vec<Vec<String>> = r
        .sites
        .iter()
        .map(|s| match &s.license {
            Some(l) => vec![
                s.site.clone(),
                l.customer.clone(),
                l.seats.to_string(),
                l.used.to_string(),
                s.endpoints.to_string(),
                l.expires_on.to_string(),
                opt(s.days_left),
            ],
            None => vec![
                s.site.clone(),
                "(no license)".into(),
                "0".into(),
                "0".into(),
                s.endpoints.to_string(),
                String::new(),
                String::new(),
            ],
        })
        .collect();
    rows.push(vec![
        "total".into(),
        String::new(),
        r.seats.to_string(),
        r.used.to_string(),
        String::new(),
        String::new(),
        String::new(),
    ]);
    let series = vec![Series { name: "used".into(), color: BLUE }, Series { name: "free".into(), color: "#90caf9" }];
    let bars = r
        .sites
        .iter()
        .map(|s| {
            let (seats, used) = s.license.as_ref().map(|l| (l.seats, l.used)).unwrap_or((0, 0));
            (s.site.clone(), vec![used, (seats - used).max(0)])
        })
        .collect();
    Section {
        title: format!("License usage ({} of {} seats)", r.used, r.seats),
        charts: vec![Chart::StackedBars { title: "Seats used per site".into(), series, bars }],
        tables: vec![Table { title: "License per site".into(), columns: strings(&columns), rows }],
    }
}

fn health(r: &Health) -> Section {
    let columns = [
        "slave",
        "state",
        "version",
        "last seen",
        "last replication",
        "data as of",
        "lag (s)",
        "rows behind",
        "refused batches",
    ];
    let rows = r
        .slaves
        .iter()
        .map(|s| {
            let h = &s.health;
            vec![
                h.slave.clone(),
                h.state.clone(),
                opt(h.version.clone()),
                time(h.last_seen),
                time(h.replicated_at),
                time(h.synced_as_of),
                opt(s.lag_seconds),
                opt(h.rows_behind.map(ReplicationProgress::rows_behind_text)),
                h.batches_refused.to_string(),
            ]
        })
        .collect();
    Section {
        title: "Hierarchy health".into(),
        charts: vec![Chart::Bars {
            title: "Replication lag (seconds)".into(),
            color: BLUE,
            bars: r.slaves.iter().filter_map(|s| Some((s.health.slave.clone(), s.lag_seconds?))).collect(),
        }],
        tables: vec![Table { title: "Slaves".into(), columns: strings(&columns), rows }],
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
