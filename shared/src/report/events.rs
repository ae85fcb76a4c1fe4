//! The aggregated events a master publishes for the report service.
//!
//! After each replication batch it applies, the master publishes, in the
//! same transaction (through its outbox), a [`SlaveSummary`]: that slave's
//! part of the consolidated picture, as absolute numbers rather than
//! increments. Every 30 s, and when a slave joins or leaves, it publishes a
//! [`HealthRoster`] of every slave it knows. Both travel on `<ns>.events`
//! (key `report.<kind>`, queue `<ns>.report.events`), signed with the event
//! key that the master and the report service share.
//!
//! Each event carries `seq`, from one sequence on the master: a part with a
//! lower or equal `seq` than the one stored changes nothing, so a
//! redelivered, duplicated or overtaken event is harmless, and a resend of
//! everything rebuilds the same state.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Wire names of the event kinds (also the routing keys).
pub mod kind {
    pub const SLAVE_SUMMARY: &str = "report.slave_summary";
    pub const HEALTH_ROSTER: &str = "report.health_roster";
}

/// Largest event the report service accepts.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// How many days of detections a summary carries.
pub const DETECTION_DAYS: i32 = 365;
/// How many computers a summary names as most infected.
pub const MOST_INFECTED: usize = 20;
/// How many threat names a summary carries (the most frequent first).
pub const MAX_THREATS: usize = 500;

/// One slave's part of the consolidated picture after a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaveSummary {
    pub slave: String,
    pub seq: i64,
    /// When the master computed it.
    pub as_of: DateTime<Utc>,
    /// Present when the batch touched endpoints, detections or the license.
    #[serde(default)]
    pub site: Option<SiteSummary>,
    /// Outcomes of the tasks the batch touched (all tasks if `tasks_complete`).
    #[serde(default)]
    pub tasks: Vec<TaskOutcome>,
    /// `tasks` lists every task of the slave: any other is gone.
    #[serde(default)]
    pub tasks_complete: bool,
    pub health: SlaveHealth,
}

/// Every slave the master knows, with its health. A slave missing from a
/// roster was purged from the master.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthRoster {
    pub seq: i64,
    pub as_of: DateTime<Utc>,
    pub slaves: Vec<SlaveHealth>,
}

/// The state of one site's computers and license, absolute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteSummary {
    pub endpoints: StatusCounts,
    /// Computers by the date of their signatures (`None`: never updated).
    pub signatures: Vec<DateCount>,
    /// Detections per day over the last [`DETECTION_DAYS`].
    pub detections_daily: Vec<DayCount>,
    pub threats: Vec<ThreatCount>,
    pub most_infected: Vec<InfectedEndpoint>,
    pub license: Option<LicenseUsage>,
}

/// Computers by security status. `protected + at_risk + infected +
/// unprotected = total`; `unlicensed` counts across them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub total: i64,
    pub protected: i64,
    pub at_risk: i64,
    pub infected: i64,
    pub unprotected: i64,
    pub unlicensed: i64,
}

impl std::ops::AddAssign for StatusCounts {
    fn add_assign(&mut self, o: Self) {
        self.total += o.total;
        self.protected += o.protected;
        self.at_risk += o.at_risk;
        self.infected += o.infected;
        self.unprotected += o.unprotected;
        self.unlicensed += o.unlicensed;
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateCount {
    pub date: Option<NaiveDate>,
    pub endpoints: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCount {
    pub day: NaiveDate,
    pub detections: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreatCount {
    pub malware: String,
    pub detections: i64,
    /// Distinct computers it was found on.
    pub endpoints: i64,
    pub last_detected: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfectedEndpoint {
    pub endpoint_id: String,
    pub hostname: Option<String>,
    pub detections: i64,
    pub active_threats: i64,
    pub last_detected: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseUsage {
    pub customer: String,
    pub seats: i64,
    pub used: i64,
    pub expires_on: NaiveDate,
}

/// Where one task stands on one site, by endpoint state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub task_id: Uuid,
    /// Known for the master's own tasks; `None` for a task the site created.
    pub name: Option<String>,
    pub kind: Option<String>,
    pub pending: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub detections: i64,
}

impl TaskOutcome {
    pub fn total(&self) -> i64 {
        self.pending + self.running + self.succeeded + self.failed + self.cancelled
    }
}

/// A slave as its master sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaveHealth {
    pub slave: String,
    /// `online`, `offline`, `removing` or `removed`.
    pub state: String,
    pub version: Option<String>,
    pub last_seen: Option<DateTime<Utc>>,
    /// When the master last applied a batch of it.
    pub replicated_at: Option<DateTime<Utc>>,
    /// The copy is complete as of this time (slave clock).
    pub synced_as_of: Option<DateTime<Utc>>,
    pub rows_behind: Option<i64>,
    pub batches_refused: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_survives_the_wire() {
        let summary = SlaveSummary {
            slave: "paris".into(),
            seq: 7,
            as_of: Utc::now(),
            site: Some(SiteSummary {
                endpoints: StatusCounts { total: 3, protected: 2, infected: 1, unlicensed: 1, ..Default::default() },
                signatures: vec![DateCount { date: None, endpoints: 3 }],
                ..Default::default()
            }),
            tasks: vec![],
            tasks_complete: true,
            health: SlaveHealth {
                slave: "paris".into(),
                state: "online".into(),
                version: None,
                last_seen: None,
                replicated_at: None,
                synced_as_of: None,
                rows_behind: None,
                batches_refused: 0,
            },
        };
        let back: SlaveSummary = serde_json::from_value(serde_json::to_value(&summary).unwrap()).unwrap();
        assert_eq!(back, summary);
    }
}
