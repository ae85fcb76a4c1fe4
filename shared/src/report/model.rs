//! The reports: what each one says, built from per-site data.
//!
//! The same builders serve the report service (one site per slave, from its
//! read model) and a stand-alone or slave (one site, its own database), so a
//! report reads the same wherever it was made. A [`Report`] serializes as
//! the JSON format; [`Report::document`] gives the tables and charts the CSV
//! and HTML formats render.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::events::{
    DayCount, InfectedEndpoint, LicenseUsage, SiteSummary, SlaveHealth, StatusCounts, TaskOutcome, MOST_INFECTED,
};
use super::kind::Kind;

/// What is known of one site (a slave, or the stand-alone itself).
#[derive(Clone, Debug, Default)]
pub struct SiteData {
    pub site: String,
    /// When `summary` was taken.
    pub as_of: Option<DateTime<Utc>>,
    pub summary: SiteSummary,
    pub tasks: Vec<TaskOutcome>,
    /// Known on a master only.
    pub health: Option<SlaveHealth>,
}

/// Everything a report is built from.
#[derive(Clone, Debug)]
pub struct Input {
    pub generated_at: DateTime<Utc>,
    /// Who made it: the master (consolidated) or a site.
    pub source: String,
    /// The one slave asked for, if any.
    pub slave: Option<String>,
    /// Made by the report service over a master's slaves (which have a
    /// health), rather than by one site about itself.
    pub consolidated: bool,
    pub sites: Vec<SiteData>,
    /// Slaves that left the hierarchy: listed in the health report, not counted.
    pub removed: Vec<SlaveHealth>,
}

/// Header every report carries.
#[derive(Clone, Debug, Serialize)]
pub struct Header {
    pub kind: Kind,
    pub title: &'static str,
    pub generated_at: DateTime<Utc>,
    pub source: String,
    pub slave: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SiteStatus {
    pub site: String,
    pub as_of: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub counts: StatusCounts,
}

#[derive(Clone, Debug, Serialize)]
pub struct SecurityStatus {
    #[serde(flatten)]
    pub header: Header,
    pub sites: Vec<SiteStatus>,
    pub total: StatusCounts,
}

#[derive(Clone, Debug, Serialize)]
pub struct ThreatRow {
    pub malware: String,
    pub detections: i64,
    pub endpoints: i64,
    pub sites: i64,
    pub last_detected: DateTime<Utc>,
}

#[derive(Clone, Debug, Serialize)]
pub struct InfectedRow {
    pub site: String,
    #[serde(flatten)]
    pub endpoint: InfectedEndpoint,
}

#[derive(Clone, Debug, Serialize)]
pub struct SiteDetections {
    pub site: String,
    pub detections: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Malware {
    #[serde(flatten)]
    pub header: Header,
    pub total_detections: i64,
    pub sites: Vec<SiteDetections>,
    pub daily: Vec<DayCount>,
    pub top_threats: Vec<ThreatRow>,
    pub most_infected: Vec<InfectedRow>,
}

/// How many threats and computers the consolidated malware report names
/// (at most [`MOST_INFECTED`] per site travel, so the top is exact).
pub const TOP: usize = 10;
const _: () = assert!(TOP <= MOST_INFECTED);

/// Signature age buckets, in days: a bucket holds ages up to its bound.
pub const AGE_BUCKETS: [(&str, Option<i64>); 6] = [
    ("today", Some(0)),
    ("1-3 days", Some(3)),
    ("4-7 days", Some(7)),
    ("8-30 days", Some(30)),
    ("over 30 days", None),
    ("never updated", None),
];

#[derive(Clone, Debug, Serialize)]
pub struct SiteAges {
    pub site: String,
    /// Computers per bucket of [`AGE_BUCKETS`], in that order.
    pub endpoints: Vec<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Updates {
    #[serde(flatten)]
    pub header: Header,
    pub buckets: Vec<&'static str>,
    pub sites: Vec<SiteAges>,
    pub total: Vec<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TaskRow {
    pub site: String,
    #[serde(flatten)]
    pub outcome: TaskOutcome,
    pub total: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Tasks {
    #[serde(flatten)]
    pub header: Header,
    pub tasks: Vec<TaskRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SiteLicense {
    pub site: String,
    pub license: Option<LicenseUsage>,
    pub endpoints: i64,
    pub days_left: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Licenses {
    #[serde(flatten)]
    pub header: Header,
    pub sites: Vec<SiteLicense>,
    pub seats: i64,
    pub used: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SiteHealth {
    #[serde(flatten)]
    pub health: SlaveHealth,
    /// Seconds between `synced_as_of` and the report's time.
    pub lag_seconds: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Health {
    #[serde(flatten)]
    pub header: Header,
    pub slaves: Vec<SiteHealth>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Overview {
    #[serde(flatten)]
    pub header: Header,
    pub security_status: SecurityStatus,
    pub malware: Malware,
    pub updates: Updates,
    pub tasks: Tasks,
    pub licenses: Licenses,
    pub health: Option<Health>,
}

/// A built report; serializes as its JSON format.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Report {
    SecurityStatus(SecurityStatus),
    Malware(Malware),
    Updates(Updates),
    Tasks(Tasks),
    Licenses(Licenses),
    Health(Health),
    Overview(Box<Overview>),
}

impl Input {
    fn header(&self, kind: Kind) -> Header {
        Header {
            kind,
            title: kind.title(),
            generated_at: self.generated_at,
            source: self.source.clone(),
            slave: self.slave.clone(),
        }
    }

    fn today(&self) -> NaiveDate {
        self.generated_at.date_naive()
    }
}

/// Builds `kind` from `input`. The health report needs slaves' health, which
/// only a master has: `Err` says so elsewhere.
pub fn build(kind: Kind, input: &Input) -> Result<Report, String> {
    Ok(match kind {
        Kind::SecurityStatus => Report::SecurityStatus(security_status(input)),
        Kind::Malware => Report::Malware(malware(input)),
        Kind::Updates => Report::Updates(updates(input)),
        Kind::Tasks => Report::Tasks(tasks(input)),
        Kind::Licenses => Report::Licenses(licenses(input)),
        Kind::Health => Report::Health(health(input).ok_or_else(|| {
            "the hierarchy health report exists on a master (through its report service) only".to_owned()
        })?),
        Kind::Overview => Report::Overview(Box::new(Overview {
            header: input.header(Kind::Overview),
            security_status: security_status(input),
            malware: malware(input),
            updates: updates(input),
            tasks: tasks(input),
            licenses: licenses(input),
            health: health(input),
        })),
    })
}

fn security_status(input: &Input) -> SecurityStatus {
    let mut total = StatusCounts::default();
    let sites = input
        .sites
        .iter()
        .map(|s| {
            total += s.summary.endpoints;
            SiteStatus { site: s.site.clone(), as_of: s.as_of, counts: s.summary.endpoints }
        })
        .collect();
    SecurityStatus { header: input.header(Kind::SecurityStatus), sites, total }
}

fn malware(input: &Input) -> Malware {
    use std::collections::BTreeMap;
    let mut daily: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    let mut threats: BTreeMap<&str, ThreatRow> = BTreeMap::new();
    let mut infected = Vec::new();
    let mut sites = Vec::new();
    for s in &input.sites {
        let mut site_total = 0;
        for d in &s.summary.detections_daily {
            *daily.entry(d.day).or_default() += d.detections;
            site_total += d.detections;
        }
        sites.push(SiteDetections { site: s.site.clone(), detections: site_total });
        for t in &s.summary.threats {
            let row = threats.entry(&t.malware).or_insert_with(|| ThreatRow {
                malware: t.malware.clone(),
                detections: 0,
                endpoints: 0,
                sites: 0,
                last_detected: t.last_detected,
            });
            row.detections += t.detections;
            row.endpoints += t.endpoints;
            row.sites += 1;
            row.last_detected = row.last_detected.max(t.last_detected);
        }
        infected
            .extend(s.summary.most_infected.iter().map(|e| InfectedRow { site: s.site.clone(), endpoint: e.clone() }));
    }
    let mut top_threats: Vec<ThreatRow> = threats.into_values().collect();
    top_threats.sort_by(|a, b| b.detections.cmp(&a.detections).then_with(|| a.malware.cmp(&b.malware)));
    top_threats.truncate(TOP);
    infected.sort_by(|a, b| {
        b.endpoint
            .detections
            .cmp(&a.endpoint.detections)
            .then_with(|| b.endpoint.last_detected.cmp(&a.endpoint.last_detected))
            .then_with(|| (&a.site, &a.endpoint.endpoint_id).cmp(&(&b.site, &b.endpoint.endpoint_id)))
    });
    infected.truncate(TOP);
    Malware {
        header: input.header(Kind::Malware),
        total_detections: sites.iter().map(|s| s.detections).sum(),
        sites,
        daily: daily.into_iter().map(|(day, detections)| DayCount { day, detections }).collect(),
        top_threats,
        most_infected: infected,
    }
}

/// The index in [`AGE_BUCKETS`] of signatures dated `date`, seen on `today`.
pub fn age_bucket(date: Option<NaiveDate>, today: NaiveDate) -> usize {
    let Some(date) = date else { return AGE_BUCKETS.len() - 1 };
    let age = (today - date).num_days().max(0);
    AGE_BUCKETS.iter().position(|(_, bound)| bound.is_some_and(|b| age <= b)).unwrap_or(AGE_BUCKETS.len() - 2)
}

fn updates(input: &Input) -> Updates {
    let mut total = vec![0; AGE_BUCKETS.len()];
    let sites = input
        .sites
        .iter()
        .map(|s| {
            let mut endpoints = vec![0; AGE_BUCKETS.len()];
            for d in &s.summary.signatures {
                let i = age_bucket(d.date, input.today());
                endpoints[i] += d.endpoints;
                total[i] += d.endpoints;
            }
            SiteAges { site: s.site.clone(), endpoints }
        })
        .collect();
    Updates {
        header: input.header(Kind::Updates),
        buckets: AGE_BUCKETS.iter().map(|(n, _)| *n).collect(),
        sites,
        total,
    }
}

fn tasks(input: &Input) -> Tasks {
    let mut tasks: Vec<TaskRow> = input
        .sites
        .iter()
        .flat_map(|s| s.tasks.iter().map(|t| TaskRow { site: s.site.clone(), total: t.total(), outcome: t.clone() }))
        .collect();
    tasks.sort_by(|a, b| {
        (&a.outcome.name, a.outcome.task_id, &a.site).cmp(&(&b.outcome.name, b.outcome.task_id, &b.site))
    });
    Tasks { header: input.header(Kind::Tasks), tasks }
}

fn licenses(input: &Input) -> Licenses {
    let sites: Vec<SiteLicense> = input
        .sites
        .iter()
        .map(|s| SiteLicense {
            site: s.site.clone(),
            license: s.summary.license.clone(),
            endpoints: s.summary.endpoints.total,
            days_left: s.summary.license.as_ref().map(|l| (l.expires_on - input.today()).num_days()),
        })
        .collect();
    let seats = sites.iter().filter_map(|s| s.license.as_ref()).map(|l| l.seats).sum();
    let used = sites.iter().filter_map(|s| s.license.as_ref()).map(|l| l.used).sum();
    Licenses { header: input.header(Kind::Licenses), sites, seats, used }
}

fn health(input: &Input) -> Option<Health> {
    if !input.consolidated {
        return None;
    }
    let mut slaves: Vec<SiteHealth> = input
        .sites
        .iter()
        .filter_map(|s| s.health.as_ref())
        .chain(&input.removed)
        .map(|h| SiteHealth {
            lag_seconds: h.synced_as_of.map(|t| (input.generated_at - t).num_seconds().max(0)),
            health: h.clone(),
        })
        .collect();
    slaves.sort_by(|a, b| a.health.slave.cmp(&b.health.slave));
    Some(Health { header: input.header(Kind::Health), slaves })
}
