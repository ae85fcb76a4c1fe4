//! The checker of the fault suite: once a fault has healed and everything
//! has settled, it compares the source of truth with what was applied and
//! counts what went wrong, per slave:
//!
//! * **lost**: in the truth, missing (or deleted) where it was applied;
//! * **duplicated**: one effect applied twice (a version written twice, a
//!   task dispatched twice to an endpoint, a receipt or a report counting
//!   more than there is);
//! * **stale**: applied at another version than the truth's latest;
//! * **reordered**: an older version applied after a newer one.
//!
//! All four must be 0. It also gives the **recovery time**: from the moment
//! the fault healed to the last effect applied anywhere.
//!
//! [`fanout`] checks master -> slaves (policies, tasks, dispatches,
//! receipts), [`replication`] slave -> master (the copy of every replicated
//! row, and what the master's reports count). Both need history the tables
//! do not keep, so [`install`] adds test-only triggers that log every write
//! before the traffic starts. The counting itself is pure and unit-tested
//! here.

pub mod fanout;
pub mod replication;

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    time::Duration,
};

use chrono::{DateTime, Utc};

use crate::TestServer;

/// Discrepancies of one kind of traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Items of truth compared.
    pub checked: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub stale: u64,
    pub reordered: u64,
}

impl Counts {
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.stale == 0 && self.reordered == 0
    }

    /// The sum of both.
    pub fn plus(self, other: Counts) -> Counts {
        Counts {
            checked: self.checked + other.checked,
            lost: self.lost + other.lost,
            duplicated: self.duplicated + other.duplicated,
            stale: self.stale + other.stale,
            reordered: self.reordered + other.reordered,
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checked {:>6}  lost {}  duplicated {}  stale {}  reordered {}",
            self.checked, self.lost, self.duplicated, self.stale, self.reordered
        )
    }
}

/// What the checker found for one slave.
#[derive(Clone, Debug, Default)]
pub struct SlaveFindings {
    pub slave: String,
    /// Master -> slave: policies, tasks, dispatches, receipts.
    pub fanout: Counts,
    /// Slave -> master: the copy of the replicated rows.
    pub replication: Counts,
    /// What the master's consolidated counts say against the slave's own.
    pub reports: Counts,
    /// The latest write the checker saw for this slave (either side).
    pub last_effect: Option<DateTime<Utc>>,
    /// The first few discrepancies, for the failure message.
    pub examples: Vec<String>,
}

impl SlaveFindings {
    pub fn total(&self) -> Counts {
        self.fanout.plus(self.replication).plus(self.reports)
    }

    pub(crate) fn note(&mut self, example: impl FnOnce() -> String) {
        if self.examples.len() < 8 {
            self.examples.push(example());
        }
    }

    pub(crate) fn saw(&mut self, at: Option<DateTime<Utc>>) {
        self.last_effect = self.last_effect.max(at);
    }
}

/// The checker's answer for one run of one scenario.
#[derive(Clone, Debug)]
pub struct Report {
    pub scenario: String,
    /// When the fault healed (recovery is measured from here).
    pub healed_at: DateTime<Utc>,
    pub slaves: Vec<SlaveFindings>,
}

impl Report {
    pub fn totals(&self) -> Counts {
        self.slaves.iter().fold(Counts::default(), |sum, s| sum.plus(s.total()))
    }

    /// From healing to the last effect applied (zero when nothing was left
    /// to apply after healing).
    pub fn recovery(&self) -> Duration {
        let last = self.slaves.iter().filter_map(|s| s.last_effect).max();
        last.and_then(|l| (l - self.healed_at).to_std().ok()).unwrap_or_default()
    }

    /// One line `ops/chaos` collects: `CHAOS scenario=… lost=… …`.
    pub fn machine_line(&self) -> String {
        let t = self.totals();
        format!(
            "CHAOS scenario={} checked={} lost={} duplicated={} stale={} reordered={} recovery_ms={}",
            self.scenario,
            t.checked,
            t.lost,
            t.duplicated,
            t.stale,
            t.reordered,
            self.recovery().as_millis()
        )
    }

    /// Prints the report and its machine line, then fails the test unless
    /// every count is 0.
    pub fn assert_clean(&self) {
        println!("{self}");
        println!("{}", self.machine_line());
        assert!(self.totals().is_clean(), "the checker found discrepancies:\n{self}");
        assert!(self.totals().checked > 0, "the checker compared nothing:\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: recovery {:.1} s", self.scenario, self.recovery().as_secs_f64())?;
        for s in &self.slaves {
            writeln!(f, "  {:<10} fan-out     {}", s.slave, s.fanout)?;
            writeln!(f, "  {:<10} replication {}", s.slave, s.replication)?;
            writeln!(f, "  {:<10} reports     {}", s.slave, s.reports)?;
            for e in &s.examples {
                writeln!(f, "  {:<10}   {e}", "")?;
            }
        }
        Ok(())
    }
}

/// Installs the history triggers on the master and on each slave. Call it
/// before any traffic the check is about.
pub async fn install(master: &TestServer, slaves: &[&TestServer]) {
    replication::install(master).await;
    for slave in slaves {
        fanout::install(slave).await;
    }
}

/// Removes what [`install`] added outside the databases (the slaves'
/// dispatch probes), once a scenario is over.
pub async fn uninstall(slaves: &[&TestServer]) {
    for slave in slaves {
        fanout::remove_probe(slave).await;
    }
}

/// Checks every slave's fan-out and replication against the truth.
pub async fn check(scenario: &str, healed_at: DateTime<Utc>, master: &TestServer, slaves: &[&TestServer]) -> Report {
    let mut findings = Vec::new();
    for slave in slaves {
        let mut f = SlaveFindings { slave: slave.options.instance.clone(), ..Default::default() };
        fanout::check(master, slave, &mut f).await;
        replication::check(master, slave, &mut f).await;
        findings.push(f);
    }
    Report { scenario: scenario.to_owned(), healed_at, slaves: findings }
}

/// Compares a copy with its truth: every key of `truth` (with its latest
/// version) against `copy` (version, and whether the item is live there).
/// Missing or deleted in the copy, or live in the copy but gone from the
/// truth, is lost; any other version is stale.
pub fn compare_copy<K: Ord + fmt::Debug>(
    truth: &BTreeMap<K, i64>,
    copy: &BTreeMap<K, (i64, bool)>,
    mut example: impl FnMut(String),
) -> Counts {
    let mut counts = Counts { checked: truth.len() as u64, ..Default::default() };
    for (key, version) in truth {
        match copy.get(key) {
            None | Some((_, false)) => {
                counts.lost += 1;
                example(format!("lost: {key:?} (version {version})"));
            }
            Some((copied, true)) if copied != version => {
                counts.stale += 1;
                example(format!("stale: {key:?} at version {copied}, truth {version}"));
            }
            Some(_) => {}
        }
    }
    for (key, (version, live)) in copy {
        if *live && !truth.contains_key(key) {
            counts.lost += 1;
            example(format!("lost deletion: {key:?} still present (version {version})"));
        }
    }
    counts
}

/// Counts, in a log of writes in the order they happened, the writes of a
/// version already written (duplicated) and the writes of a version older
/// than one written before (reordered). A `None` version is a removal from
/// the copy (a new epoch or a purge replaces it): the versions written
/// before it may be written again, but never an older one.
pub fn count_history<K: Ord + Clone + fmt::Debug>(
    writes: impl IntoIterator<Item = (K, Option<i64>)>,
    mut example: impl FnMut(String),
) -> (u64, u64) {
    let mut seen: BTreeMap<K, (BTreeSet<i64>, i64)> = BTreeMap::new();
    let (mut duplicated, mut reordered) = (0, 0);
    for (key, version) in writes {
        let (versions, newest) = seen.entry(key.clone()).or_insert_with(|| (BTreeSet::new(), i64::MIN));
        let Some(version) = version else {
            versions.clear();
            continue;
        };
        if version < *newest {
            reordered += 1;
            example(format!("reordered: {key:?} version {version} written after {newest}"));
        } else if !versions.insert(version) {
            duplicated += 1;
            example(format!("duplicated: {key:?} version {version} written again"));
        }
        *newest = (*newest).max(version);
    }
    (duplicated, reordered)
}

/// Compares a count the master shows with the slave's own: more is
/// duplicated, fewer is lost.
pub fn compare_count(what: &str, truth: i64, shown: i64, counts: &mut Counts, mut example: impl FnMut(String)) {
    counts.checked += 1;
    if shown > truth {
        counts.duplicated += (shown - truth) as u64;
        example(format!("duplicated: {what} shows {shown}, truth {truth}"));
    } else if shown < truth {
        counts.lost += (truth - shown) as u64;
        example(format!("lost: {what} shows {shown}, truth {truth}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<V: Clone>(items: &[(&'static str, V)]) -> BTreeMap<&'static str, V> {
        items.iter().cloned().collect()
    }

    #[test]
    fn a_faithful_copy_counts_nothing() {
        let truth = map(&[("a", 3), ("b", 7)]);
        let copy = map(&[("a", (3, true)), ("b", (7, true)), ("gone", (9, false))]);
        let counts = compare_copy(&truth, &copy, |_| {});
        assert_eq!(counts, Counts { checked: 2, ..Default::default() });
        assert!(counts.is_clean());
    }

    #[test]
    fn missing_deleted_older_and_leftover_items_are_counted() {
        let truth = map(&[("missing", 1), ("deleted", 2), ("older", 5), ("newer", 5), ("same", 1)]);
        let copy = map(&[
            ("deleted", (2, false)),
            ("older", (4, true)),
            ("newer", (6, true)),
            ("same", (1, true)),
            ("leftover", (3, true)),
        ]);
        let mut examples = Vec::new();
        let counts = compare_copy(&truth, &copy, |e| examples.push(e));
        assert_eq!(
            (counts.checked, counts.lost, counts.stale, counts.duplicated, counts.reordered),
            (5, 3, 2, 0, 0),
            "{examples:?}"
        );
        assert!(examples.iter().any(|e| e.contains("lost deletion") && e.contains("leftover")), "{examples:?}");
    }

    #[test]
    fn history_finds_repeated_and_backward_writes_per_key() {
        let writes =
            [("a", 1), ("b", 1), ("a", 2), ("a", 2), ("b", 3), ("b", 2), ("a", 3), ("b", 3)].map(|(k, v)| (k, Some(v)));
        let mut examples = Vec::new();
        let (duplicated, reordered) = count_history(writes, |e| examples.push(e));
        // a: 1, 2, 2 (dup), 3. b: 1, 3, 2 (older than 3), 3 (dup).
        assert_eq!((duplicated, reordered), (2, 1), "{examples:?}");
        assert_eq!(count_history([("x", Some(1)), ("x", Some(2)), ("y", Some(1))], |_| {}), (0, 0));
        // A copy replaced (removed, then written again at the same version)
        // is no duplicate; an older version after the removal still is out
        // of order.
        assert_eq!(count_history([("x", Some(4)), ("x", None), ("x", Some(4))], |_| {}), (0, 0));
        assert_eq!(count_history([("x", Some(4)), ("x", None), ("x", Some(3))], |_| {}), (0, 1));
    }

    #[test]
    fn counts_shown_above_the_truth_are_duplicates_and_below_are_lost() {
        let mut counts = Counts::default();
        compare_count("detections", 10, 10, &mut counts, |_| {});
        compare_count("detections", 10, 12, &mut counts, |_| {});
        compare_count("results", 5, 4, &mut counts, |_| {});
        assert_eq!((counts.checked, counts.duplicated, counts.lost), (3, 2, 1));
    }

    #[test]
    fn recovery_runs_from_healing_to_the_last_effect_and_lines_are_machine_readable() {
        let healed_at = Utc::now();
        let slave = |name: &str, ms: i64| SlaveFindings {
            slave: name.into(),
            replication: Counts { checked: 4, ..Default::default() },
            last_effect: Some(healed_at + chrono::Duration::milliseconds(ms)),
            ..Default::default()
        };
        let report = Report {
            scenario: "broker-restart".into(),
            healed_at,
            slaves: vec![slave("paris", 1500), slave("lyon", 250)],
        };
        assert_eq!(report.recovery(), Duration::from_millis(1500));
        assert_eq!(
            report.machine_line(),
            "CHAOS scenario=broker-restart checked=8 lost=0 duplicated=0 stale=0 reordered=0 recovery_ms=1500"
        );
        let shown = report.to_string();
        assert_eq!(shown.lines().filter(|l| l.contains("replication")).count(), 2, "{shown}");
        let before = Report { slaves: vec![slave("paris", -500)], ..report };
        assert_eq!(before.recovery(), Duration::ZERO, "effects before healing need no recovery");
    }
}
