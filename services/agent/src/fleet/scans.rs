//! Scans in progress and when each one finishes.
//!
//! Ten thousand endpoints running a scan must not mean ten thousand tokio
//! tasks: a scan is an entry in a map plus a deadline in one binary heap
//! (earliest first), and the fleet's single ticker asks for the scans that
//! are due. A cancelled scan leaves its deadline in the heap; it is skipped
//! when it comes up because the scan is no longer in the map.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    time::Duration,
};

use rampart_shared::messages::TaskKind;
use uuid::Uuid;

/// A scan is identified by the endpoint (its position in the fleet) and the
/// task id: one task targets many endpoints.
pub type ScanKey = (usize, Uuid);

/// A scan that has reached its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FinishedScan {
    pub endpoint: usize,
    pub task_id: Uuid,
    pub kind: TaskKind,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Duration,
    endpoint: usize,
    task_id: Uuid,
    /// Which start of the scan this deadline belongs to, so the deadline of
    /// a cancelled scan cannot end a later restart of the same task.
    start: u64,
}

/// The scans running on the whole fleet.
#[derive(Debug, Default)]
pub struct Scans {
    /// Each running scan's kind and the number of the start that launched it.
    running: HashMap<ScanKey, (TaskKind, u64)>,
    starts: u64,
    /// Deadlines, earliest on top; may hold stale entries of cancelled scans.
    deadlines: BinaryHeap<Reverse<Deadline>>,
}

impl Scans {
    /// How long a scan of `kind` runs when a quick scan takes `quick`.
    pub fn duration(kind: TaskKind, quick: Duration) -> Duration {
        match kind {
            TaskKind::FullScan => quick * 3,
            TaskKind::QuickScan | TaskKind::Update => quick,
        }
    }

    /// Starts a scan that finishes at `finishes_at` (time since the fleet
    /// started). Returns `false`, changing nothing, if it is already running.
    pub fn start(&mut self, key: ScanKey, kind: TaskKind, finishes_at: Duration) -> bool {
        if self.running.contains_key(&key) {
            return false;
        }
        self.starts += 1;
        self.running.insert(key, (kind, self.starts));
        self.deadlines.push(Reverse(Deadline { at: finishes_at, endpoint: key.0, task_id: key.1, start: self.starts }));
        true
    }

    pub fn is_running(&self, key: ScanKey) -> bool {
        self.running.contains_key(&key)
    }

    /// Stops a scan; `false` if it was not running (finished or unknown).
    pub fn cancel(&mut self, key: ScanKey) -> bool {
        self.running.remove(&key).is_some()
    }

    /// Removes and returns every running scan whose deadline is at or
    /// before `now`, earliest first.
    pub fn due(&mut self, now: Duration) -> Vec<FinishedScan> {
        let mut finished = Vec::new();
        while let Some(Reverse(next)) = self.deadlines.peek() {
            if next.at > now {
                break;
            }
            let Reverse(next) = self.deadlines.pop().expect("peeked");
            let key = (next.endpoint, next.task_id);
            match self.running.get(&key) {
                Some(&(kind, start)) if start == next.start => {
                    self.running.remove(&key);
                    finished.push(FinishedScan { endpoint: next.endpoint, task_id: next.task_id, kind });
                }
                _ => {}
            }
        }
        finished
    }

    /// How many scans are running now.
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn scans_finish_in_deadline_order() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut scans = Scans::default();
        assert!(scans.start((1, a), TaskKind::FullScan, S(6)));
        assert!(scans.start((2, b), TaskKind::QuickScan, S(2)));
        assert!(scans.start((3, c), TaskKind::QuickScan, S(2)));
        assert!(scans.due(S(1)).is_empty());
        let first: Vec<_> = scans.due(S(2)).into_iter().map(|f| f.endpoint).collect();
        assert_eq!(first, vec![2, 3]);
        assert_eq!(scans.running(), 1);
        assert_eq!(scans.due(S(100)), vec![FinishedScan { endpoint: 1, task_id: a, kind: TaskKind::FullScan }]);
        assert_eq!(scans.running(), 0);
    }

    #[test]
    fn a_scan_runs_once_per_endpoint_and_task() {
        let task = Uuid::new_v4();
        let mut scans = Scans::default();
        assert!(scans.start((1, task), TaskKind::QuickScan, S(2)));
        assert!(!scans.start((1, task), TaskKind::QuickScan, S(5)));
        assert!(scans.start((2, task), TaskKind::QuickScan, S(2)));
        assert_eq!(scans.due(S(10)).len(), 2);
    }

    #[test]
    fn a_cancelled_scan_never_finishes() {
        let task = Uuid::new_v4();
        let mut scans = Scans::default();
        scans.start((1, task), TaskKind::QuickScan, S(2));
        assert!(scans.is_running((1, task)));
        assert!(scans.cancel((1, task)));
        assert!(!scans.cancel((1, task)));
        assert!(scans.due(S(10)).is_empty());
    }

    #[test]
    fn a_restart_after_cancel_keeps_its_own_deadline() {
        let task = Uuid::new_v4();
        let mut scans = Scans::default();
        scans.start((1, task), TaskKind::QuickScan, S(2));
        scans.cancel((1, task));
        scans.start((1, task), TaskKind::QuickScan, S(5));
        assert!(scans.due(S(3)).is_empty());
        assert_eq!(scans.due(S(5)).len(), 1);
    }

    #[test]
    fn a_full_scan_takes_three_quick_scans() {
        assert_eq!(Scans::duration(TaskKind::FullScan, S(2)), S(6));
        assert_eq!(Scans::duration(TaskKind::QuickScan, S(2)), S(2));
    }
}
