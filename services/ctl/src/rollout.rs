//! Policies and tasks that a master sends to its slaves: the `--target`
//! flags that choose the slaves (`policies create`, `tasks create`), and the
//! per-slave table that `policies show` and `tasks show` print on a master.
//!
//! Groups on the slaves are chosen by name, as each slave numbers its own.

use clap::Args;
use rampart_shared::hierarchy::{self, ALL_SLAVES};
use serde_json::Value;

use crate::args::args_checked_by;
use crate::output::{count, section, text, time, Table};

/// Which slaves receive a policy or a task, and which of their endpoints:
/// the API's target, checked as the flags were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveTarget(hierarchy::SlaveTarget);

impl SlaveTarget {
    /// Reads the `--target` values: `all` on its own, or slave ids.
    pub fn new(target: Vec<String>, group: Option<String>, virtual_group: Option<String>) -> Result<Self, String> {
        let slaves = match target.as_slice() {
            [] => return Err("--target needs `all` or slave ids".to_owned()),
            [one] if one == ALL_SLAVES => None,
            ids if ids.iter().any(|id| id == ALL_SLAVES) => {
                return Err("--target takes either `all` or slave ids, not both".to_owned())
            }
            _ => Some(target),
        };
        Ok(Self(hierarchy::SlaveTarget::new(slaves, group, virtual_group)))
    }

    /// `{"slaves": "all" | [ids], "group"?: NAME, "virtual_group"?: NAME}`.
    pub fn body(&self) -> Value {
        serde_json::to_value(&self.0).expect("targets serialize")
    }
}

/// `--target all|SLAVE_ID... [--group NAME] [--virtual-group NAME]` as clap
/// reads them; [`SlaveTarget`] once checked.
#[derive(Debug, Args)]
pub struct SlaveTargetFlags {
    /// On a master: send to `all` slaves, or to these slave ids.
    #[arg(long, value_name = "all|SLAVE_ID", num_args = 1..)]
    target: Vec<String>,
    /// With --target: only the network group of this name on each slave.
    #[arg(long, value_name = "NAME", requires = "target")]
    group: Option<String>,
    /// With --target: only the virtual group of this name on each slave.
    #[arg(long, value_name = "NAME", requires = "target")]
    virtual_group: Option<String>,
}

impl TryFrom<SlaveTargetFlags> for SlaveTarget {
    type Error = String;

    fn try_from(flags: SlaveTargetFlags) -> Result<Self, String> {
        Self::new(flags.target, flags.group, flags.virtual_group)
    }
}

args_checked_by!(SlaveTarget, SlaveTargetFlags);

/// A policy or task answer's `target`, e.g. `all slaves; group Paris`;
/// `None` when there is none (the answer of a server that is not a master).
pub fn target_label(target: &Value) -> Option<String> {
    if !target.is_object() {
        return None;
    }
    let mut label = match target["slaves"].as_str() {
        Some(ALL_SLAVES) => "all slaves".to_owned(),
        _ => format!("slaves {}", text(&target["slaves"])),
    };
    if let Some(group) = target["group"].as_str() {
        label.push_str(&format!("; group {group}"));
    }
    if let Some(virtual_group) = target["virtual_group"].as_str() {
        label.push_str(&format!("; virtual group {virtual_group}"));
    }
    Some(label)
}

/// What a master sent, which decides the per-slave columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    Policy,
    Task,
}

/// The `Slaves` section of `policies show` and `tasks show`: how far each
/// slave got. Empty when the answer has no `slaves` (not a master).
pub fn slaves_section(answer: &Value, sent: Sent) -> String {
    let Some(slaves) = answer["slaves"].as_array() else {
        return String::new();
    };
    let body = if slaves.is_empty() {
        "None.\n".to_owned()
    } else {
        match sent {
            Sent::Policy => policy_table(slaves),
            Sent::Task => task_table(slaves),
        }
        .render()
    };
    section("Slaves", &body)
}

fn policy_table(slaves: &[Value]) -> Table {
    let mut table = Table::new(&["SLAVE", "VERSION", "STATE", "ENDPOINTS APPLIED", "UPDATED", "REASON"])
        .numeric(&["VERSION", "ENDPOINTS APPLIED"]);
    for s in slaves {
        let endpoints = &s["endpoints"];
        let applied = if endpoints.is_object() {
            format!("{}/{}", count(&endpoints["applied"]), count(&endpoints["assigned"]))
        } else {
            "-".to_owned()
        };
        table.row([
            text(&s["slave"]),
            text(&s["version"]),
            text(&s["state"]),
            applied,
            time(&s["updated_at"]),
            text(&s["reason"]),
        ]);
    }
    table
}

fn task_table(slaves: &[Value]) -> Table {
    let mut table =
        Table::new(&["SLAVE", "STATE", "PROGRESS", "FAILED", "UPDATED", "REASON"]).numeric(&["PROGRESS", "FAILED"]);
    for s in slaves {
        let progress = &s["progress"];
        let (done, failed) = if progress.is_object() {
            (progress_label(progress), count(&progress["failed"]).to_string())
        } else {
            ("-".to_owned(), "-".to_owned())
        };
        table.row([text(&s["slave"]), text(&s["state"]), done, failed, time(&s["updated_at"]), text(&s["reason"])]);
    }
    table
}

/// `450/500 (90%)`: finished endpoints out of all, and the server's percent
/// (computed here only if the server left it out).
pub fn progress_label(progress: &Value) -> String {
    let total = count(&progress["total"]);
    let finished = count(&progress["succeeded"]) + count(&progress["failed"]) + count(&progress["cancelled"]);
    let percent = progress["percent"].as_u64().unwrap_or_else(|| (finished * 100).checked_div(total).unwrap_or(100));
    format!("{finished}/{total} ({percent}%)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(slaves: &[&str], group: Option<&str>) -> Result<SlaveTarget, String> {
        SlaveTarget::new(slaves.iter().map(|s| s.to_string()).collect(), group.map(str::to_owned), None)
    }

    #[test]
    fn all_or_a_list_of_slaves() {
        assert_eq!(target(&["all"], None).unwrap().body(), json!({"slaves": "all"}));
        assert_eq!(
            target(&["lyon", "nice"], Some("Paris")).unwrap().body(),
            json!({"slaves": ["lyon", "nice"], "group": "Paris"})
        );
        let both = SlaveTarget::new(vec!["lyon".into()], None, Some("Laptops".into())).unwrap();
        assert_eq!(both.body(), json!({"slaves": ["lyon"], "virtual_group": "Laptops"}));
        assert!(target(&["all", "lyon"], None).unwrap_err().contains("not both"));
        assert!(target(&[], None).is_err());
    }

    #[derive(clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        target: Option<SlaveTarget>,
    }

    fn parse(args: &[&str]) -> Result<Option<Value>, clap::Error> {
        use clap::Parser;
        Wrapper::try_parse_from(std::iter::once("create").chain(args.iter().copied()))
            .map(|w| w.target.map(|t| t.body()))
    }

    #[test]
    fn the_flags_are_optional_but_groups_need_a_target() {
        use clap::error::ErrorKind;
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(
            parse(&["--target", "lyon", "--virtual-group", "Laptops"]).unwrap(),
            Some(json!({"slaves": ["lyon"], "virtual_group": "Laptops"}))
        );
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(kind(&["--group", "Paris"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(kind(&["--virtual-group", "Laptops"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(kind(&["--target"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["--target", "all", "--group", "A", "--group", "B"]), ErrorKind::ArgumentConflict);
        let mixed = parse(&["--target", "all", "lyon"]).unwrap_err();
        assert_eq!(mixed.kind(), ErrorKind::ValueValidation);
        assert!(mixed.to_string().contains("either `all` or slave ids"), "{mixed}");
    }

    #[test]
    fn target_labels() {
        assert_eq!(target_label(&Value::Null), None);
        assert_eq!(target_label(&json!({"slaves": "all"})).unwrap(), "all slaves");
        assert_eq!(
            target_label(&json!({"slaves": ["lyon", "nice"], "group": "Paris", "virtual_group": "Laptops"})).unwrap(),
            "slaves lyon, nice; group Paris; virtual group Laptops"
        );
    }

    #[test]
    fn per_slave_policy_rollout() {
        let policy = json!({"slaves": [
            {"slave": "lyon", "version": 3, "state": "applied", "reason": null,
             "endpoints": {"assigned": 120, "applied": 118}, "updated_at": "x"},
            {"slave": "nice", "version": 2, "state": "failed", "reason": "group Paris not found",
             "endpoints": null, "updated_at": "y"}
        ]});
        assert_eq!(
            slaves_section(&policy, Sent::Policy),
            "\nSlaves\n\
             SLAVE  VERSION  STATE    ENDPOINTS APPLIED  UPDATED  REASON\n\
             lyon         3  applied            118/120  x        -\n\
             nice         2  failed                   -  y        group Paris not found\n"
        );
        assert_eq!(slaves_section(&json!({"id": "p"}), Sent::Policy), "");
        assert_eq!(slaves_section(&json!({"slaves": []}), Sent::Task), "\nSlaves\nNone.\n");
    }

    #[test]
    fn per_slave_task_progress() {
        let task = json!({"slaves": [
            {"slave": "lyon", "state": "delivered", "reason": null, "updated_at": "x",
             "progress": {"total": 120, "pending": 10, "running": 20, "succeeded": 85, "failed": 5, "cancelled": 0, "percent": 75}},
            {"slave": "nice", "state": "pending", "reason": null, "updated_at": "y", "progress": null}
        ]});
        assert_eq!(
            slaves_section(&task, Sent::Task),
            "\nSlaves\n\
             SLAVE  STATE          PROGRESS  FAILED  UPDATED  REASON\n\
             lyon   delivered  90/120 (75%)       5  x        -\n\
             nice   pending               -       -  y        -\n"
        );
    }
}
