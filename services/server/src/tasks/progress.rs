//! How far a task is: per-endpoint counters and the share finished, and
//! whether the task still runs.

use serde::{Deserialize, Serialize};

/// Where a task stands as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Running,
    Completed,
    Cancelled,
}

/// Endpoints of a task by state, and the percentage finished. Fields in
/// the order the API has always answered them (alphabetical). Read from a
/// slave's stored [`TaskProgress`](rampart_shared::hierarchy::TaskProgress),
/// missing counters being zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct TaskProgress {
    pub cancelled: i64,
    pub failed: i64,
    pub pending: i64,
    /// Finished endpoints (succeeded, failed or cancelled) in percent of all.
    #[serde(skip_deserializing)]
    pub percent: i64,
    pub running: i64,
    pub succeeded: i64,
    pub total: i64,
}

impl TaskProgress {
    pub fn finished(&self) -> i64 {
        self.succeeded + self.failed + self.cancelled
    }

    /// These counters with `percent` computed; `when_empty` is the percent
    /// of a task with no endpoint.
    pub fn with_percent(self, when_empty: i64) -> Self {
        let percent = if self.total == 0 { when_empty } else { self.finished() * 100 / self.total };
        Self { percent, ..self }
    }

    /// The counters of several parts (the slaves of a master task) added up,
    /// `percent` not yet computed.
    pub fn sum<'a>(parts: impl IntoIterator<Item = &'a TaskProgress>) -> Self {
        parts.into_iter().fold(Self::default(), |sum, p| Self {
            cancelled: sum.cancelled + p.cancelled,
            failed: sum.failed + p.failed,
            pending: sum.pending + p.pending,
            percent: 0,
            running: sum.running + p.running,
            succeeded: sum.succeeded + p.succeeded,
            total: sum.total + p.total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_summed_with_percent() {
        let parts: Vec<TaskProgress> = [
            serde_json::json!({"total": 10, "succeeded": 10}),
            serde_json::json!({"total": 10, "succeeded": 4, "failed": 1, "running": 5}),
        ]
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
        let sum = TaskProgress::sum(&parts).with_percent(0);
        assert_eq!((sum.total, sum.percent), (20, 75));
        assert_eq!(TaskProgress::default().with_percent(0).percent, 0);
        assert_eq!(TaskProgress::default().with_percent(100).percent, 100);
    }

    #[test]
    fn progress_serializes_as_the_api_always_did() {
        let p = TaskProgress { total: 4, succeeded: 1, failed: 1, running: 2, ..Default::default() }.with_percent(100);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"cancelled":0,"failed":1,"pending":0,"percent":50,"running":2,"succeeded":1,"total":4}"#
        );
        assert_eq!(serde_json::to_value(TaskState::Completed).unwrap(), "completed");
    }
}
