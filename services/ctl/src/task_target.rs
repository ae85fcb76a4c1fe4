//! Where `rampartctl tasks create` sends a task: this server's endpoints
//! (`--all`, `--group`, `--virtual-group`, `--endpoint`), or from a master
//! its slaves (`--target`, see [`crate::rollout`]).
//!
//! `--group` and `--virtual-group` serve both: ids of this server's groups,
//! or with `--target` one group name on each slave, as each slave numbers its
//! own groups. Which one is meant is settled once the flags are parsed.

use clap::Args;
use serde_json::{json, Value};

use crate::args::args_checked_by;
use crate::rollout::SlaveTarget;

/// Where a task runs: endpoints of this server, or (from a master) slaves.
#[derive(Debug)]
pub enum TaskTarget {
    Local(LocalTarget),
    Slaves(SlaveTarget),
}

/// Every endpoint, or any mix of groups, virtual groups and endpoints.
#[derive(Debug)]
pub struct LocalTarget {
    all: bool,
    groups: Vec<i64>,
    virtual_groups: Vec<i64>,
    endpoints: Vec<String>,
}

/// The target flags as clap reads them. `--group` and `--virtual-group` take
/// ids of this server's groups, or with `--target` one group name on the
/// slaves; [`TaskTarget`] once told apart. Flags repeat (`--group 1 --group
/// 2`) or take several values (`--group 1 2`).
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct TaskTargetFlags {
    /// Every endpoint of the site.
    #[arg(long, conflicts_with_all = ["group", "virtual_group", "endpoint", "target"])]
    all: bool,
    /// Network groups: ids here, or with --target one group name on each slave.
    #[arg(long, value_name = "GID|NAME", num_args = 1..)]
    group: Vec<String>,
    /// Virtual groups: ids here, or with --target one group name on each slave.
    #[arg(long, value_name = "VID|NAME", num_args = 1..)]
    virtual_group: Vec<String>,
    /// Endpoints.
    #[arg(long, value_name = "EID", num_args = 1.., conflicts_with = "target")]
    endpoint: Vec<String>,
    /// On a master: send to `all` slaves, or to these slave ids.
    #[arg(long, value_name = "all|SLAVE_ID", num_args = 1..)]
    target: Vec<String>,
}

impl TryFrom<TaskTargetFlags> for TaskTarget {
    type Error = String;

    fn try_from(flags: TaskTargetFlags) -> Result<Self, String> {
        if flags.target.is_empty() {
            return Ok(Self::Local(LocalTarget {
                all: flags.all,
                groups: group_ids("--group", &flags.group)?,
                virtual_groups: group_ids("--virtual-group", &flags.virtual_group)?,
                endpoints: flags.endpoint,
            }));
        }
        Ok(Self::Slaves(SlaveTarget::new(
            flags.target,
            group_name("--group", flags.group)?,
            group_name("--virtual-group", flags.virtual_group)?,
        )?))
    }
}

args_checked_by!(TaskTarget, TaskTargetFlags);

/// A local target's group ids.
fn group_ids(flag: &str, values: &[String]) -> Result<Vec<i64>, String> {
    values
        .iter()
        .map(|value| {
            value.parse().map_err(|_| {
                format!(
                    "{flag} takes group ids here, and `{value}` is not one (a group name on the slaves needs --target)"
                )
            })
        })
        .collect()
}

/// A slave target's group: one name at most.
fn group_name(flag: &str, mut values: Vec<String>) -> Result<Option<String>, String> {
    match values.len() {
        0 | 1 => Ok(values.pop()),
        _ => Err(format!("with --target, {flag} takes one group name")),
    }
}

impl TaskTarget {
    /// `{"all":true}` or `{"groups":[..],"virtual_groups":[..],"endpoints":[..]}`
    /// here; `{"slaves":..,"group"?,"virtual_group"?}` to slaves.
    pub fn body(&self) -> Value {
        match self {
            Self::Local(local) if local.all => json!({ "all": true }),
            Self::Local(local) => json!({
                "groups": local.groups,
                "virtual_groups": local.virtual_groups,
                "endpoints": local.endpoints,
            }),
            Self::Slaves(slaves) => slaves.body(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        target: TaskTarget,
    }

    fn parse(args: &[&str]) -> Result<Value, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("create").chain(args.iter().copied())).map(|w| w.target.body())
    }

    #[test]
    fn with_target_the_task_goes_to_slaves() {
        assert_eq!(parse(&["--target", "all"]).unwrap(), json!({"slaves": "all"}));
        assert_eq!(
            parse(&["--target", "lyon", "nice", "--group", "Paris"]).unwrap(),
            json!({"slaves": ["lyon", "nice"], "group": "Paris"})
        );
        assert_eq!(
            parse(&["--target", "all", "--virtual-group", "12"]).unwrap(),
            json!({"slaves": "all", "virtual_group": "12"})
        );
    }

    #[test]
    fn without_target_groups_are_ids_here() {
        assert_eq!(
            parse(&["--group", "1", "2", "--virtual-group", "3"]).unwrap(),
            json!({"groups": [1, 2], "virtual_groups": [3], "endpoints": []})
        );
        let error = parse(&["--group", "Paris"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ValueValidation);
        assert!(error.to_string().contains("--group takes group ids here, and `Paris` is not one"), "{error}");
    }

    #[test]
    fn local_and_slave_targets_do_not_mix() {
        for conflict in [&["--target", "all", "--all"][..], &["--target", "lyon", "--endpoint", "sim1-00001"]] {
            assert_eq!(parse(conflict).unwrap_err().kind(), ErrorKind::ArgumentConflict, "{conflict:?}");
        }
        let error = parse(&["--target", "all", "--group", "Paris", "Lyon"]).unwrap_err();
        assert!(error.to_string().contains("with --target, --group takes one group name"), "{error}");
        assert!(parse(&["--target", "all", "lyon"]).unwrap_err().to_string().contains("not both"));
        assert_eq!(parse(&["--target"]).unwrap_err().kind(), ErrorKind::InvalidValue);
        assert_eq!(parse(&[]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
    }
}
