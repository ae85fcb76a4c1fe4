//! Messages between a master and its slaves, and the keys that sign them.
//!
//! Master -> slave (exchange `<ns>.commands`, key `slave.<slave_id>`, queue
//! `<ns>.slave.<slave_id>.commands`): [`MasterCommand`], signed with the
//! slave's command key. The envelope's `from` is the master's instance id.
//!
//! Slave -> master (exchange `<ns>.status`, key `slave.<slave_id>.<kind>`,
//! queue `<ns>.master.status`): [`SlaveReport`], signed with the slave's own
//! key issued at registration. The envelope's `from` is the slave's id and
//! must match the routing key.
//!
//! Both keys are per slave, so no slave can speak for another or forge a
//! command to another: the slave key is random, the command key is derived
//! from the master's key and the slave id ([`command_key`]).
//!
//! The registration exchange on `:7073` ([`REGISTER_PATH`],
//! [`RegisterRequest`], [`RegisterResponse`]) and the [`SlaveTarget`] of the
//! master's API are HTTP, not AMQP; they live here as the contract the
//! servers and `rampartctl` share.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    envelope::{Envelope, Rejection},
    messages::{PolicySettings, TaskKind},
    replication::{self, ReplicateNow, ReplicationAck, ReplicationProgress, VerifyRequest},
    signing::SigningKey,
};

/// Wire names of the master <-> slave kinds.
pub mod kind {
    pub const POLICY: &str = "master.policy";
    pub const POLICY_REMOVED: &str = "master.policy_removed";
    pub const TASK: &str = "master.task";
    pub const CANCEL_TASK: &str = "master.cancel_task";
    pub const UNREGISTER: &str = "master.unregister";

    pub const HEARTBEAT: &str = "slave.heartbeat";
    pub const RECEIPT: &str = "slave.receipt";
    pub const UNREGISTERED: &str = "slave.unregistered";
}

/// The command key the master signs commands to `slave` with, derived from
/// the master's own key (so the master stores one secret, and each slave
/// holds a key valid only for its own commands).
pub fn command_key(master_key: &SigningKey, slave: &str) -> SigningKey {
    let derived = master_key.sign(format!("rampart command key for slave {slave}").as_bytes());
    SigningKey::from_hex(&derived).expect("an HMAC-SHA256 output is a valid key")
}

/// Which endpoints of a slave a policy or task is for. Groups are named,
/// since ids differ between slaves; neither means every endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_group: Option<String>,
}

/// A master-owned policy, new or in a new version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterPolicy {
    pub policy_id: Uuid,
    pub version: i32,
    pub name: String,
    pub settings: PolicySettings,
    pub scope: Scope,
}

/// The master deleted a policy (or stopped targeting this slave).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRemoved {
    pub policy_id: Uuid,
}

/// A master-owned task to run on the slave's endpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterTask {
    pub task_id: Uuid,
    pub name: String,
    pub kind: TaskKind,
    pub scope: Scope,
}

/// Stop a master-owned task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelMasterTask {
    pub task_id: Uuid,
}

/// The master removed this slave: become a stand-alone again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unregister {
    pub reason: String,
}

/// Any command from the master, decoded by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum MasterCommand {
    Policy(MasterPolicy),
    PolicyRemoved(PolicyRemoved),
    Task(MasterTask),
    CancelTask(CancelMasterTask),
    Unregister(Unregister),
    ReplicationAck(ReplicationAck),
    ReplicateNow(ReplicateNow),
    Verify(VerifyRequest),
}

impl MasterCommand {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Policy(_) => kind::POLICY,
            Self::PolicyRemoved(_) => kind::POLICY_REMOVED,
            Self::Task(_) => kind::TASK,
            Self::CancelTask(_) => kind::CANCEL_TASK,
            Self::Unregister(_) => kind::UNREGISTER,
            Self::ReplicationAck(_) => replication::kind::ACK,
            Self::ReplicateNow(_) => replication::kind::REPLICATE_NOW,
            Self::Verify(_) => replication::kind::VERIFY,
        }
    }

    pub fn to_envelope(&self, master: &str) -> Envelope {
        match self {
            Self::Policy(b) => Envelope::new(self.kind(), master, 0, b),
            Self::PolicyRemoved(b) => Envelope::new(self.kind(), master, 0, b),
            Self::Task(b) => Envelope::new(self.kind(), master, 0, b),
            Self::CancelTask(b) => Envelope::new(self.kind(), master, 0, b),
            Self::Unregister(b) => Envelope::new(self.kind(), master, 0, b),
            Self::ReplicationAck(b) => Envelope::new(self.kind(), master, 0, b),
            Self::ReplicateNow(b) => Envelope::new(self.kind(), master, 0, b),
            Self::Verify(b) => Envelope::new(self.kind(), master, 0, b),
        }
    }

    pub fn from_envelope(envelope: &Envelope) -> Result<Self, Rejection> {
        Ok(match envelope.kind.as_str() {
            kind::POLICY => Self::Policy(envelope.body()?),
            kind::POLICY_REMOVED => Self::PolicyRemoved(envelope.body()?),
            kind::TASK => Self::Task(envelope.body()?),
            kind::CANCEL_TASK => Self::CancelTask(envelope.body()?),
            kind::UNREGISTER => Self::Unregister(envelope.body()?),
            replication::kind::ACK => Self::ReplicationAck(envelope.body()?),
            replication::kind::REPLICATE_NOW => Self::ReplicateNow(envelope.body()?),
            replication::kind::VERIFY => Self::Verify(envelope.body()?),
            other => return Err(Rejection::UnknownKind(other.to_owned())),
        })
    }
}

/// Seats on a slave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseUsage {
    pub seats: i64,
    pub used: i64,
    pub expires_on: NaiveDate,
}

/// Periodic sign of life with a summary of the site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaveHeartbeat {
    pub version: String,
    pub endpoints: i64,
    pub license: Option<LicenseUsage>,
    /// Where replication stands (absent before the first batch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationProgress>,
}

/// What a receipt is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptObject {
    Policy,
    Task,
}

impl ReceiptObject {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Policy => "policy",
            Self::Task => "task",
        }
    }
}

/// Where a master policy or task stands on one slave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptState {
    /// The slave stored it; its endpoints are on their way.
    Delivered,
    /// Every endpoint it governs has applied it (policy) or finished (task).
    Applied,
    /// The slave could not apply it; see the reason.
    Failed,
    /// The task was cancelled (by the master, or by unregistering).
    Cancelled,
}

impl ReceiptState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Applied => "applied",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Endpoints governed by a master policy on a slave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyProgress {
    pub assigned: i64,
    pub applied: i64,
}

/// Per-endpoint states of a master task on a slave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskProgress {
    pub total: i64,
    pub pending: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl TaskProgress {
    pub fn finished(&self) -> i64 {
        self.succeeded + self.failed + self.cancelled
    }
}

/// The state of one master policy or task on the sending slave.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub object: ReceiptObject,
    pub id: Uuid,
    /// Policy version (tasks have version 1).
    pub version: i32,
    pub state: ReceiptState,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub policy: Option<PolicyProgress>,
    #[serde(default)]
    pub task: Option<TaskProgress>,
}

/// The slave left the hierarchy (on its own, or told to by the master).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unregistered {
    pub reason: String,
}

/// Any report from a slave, decoded by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum SlaveReport {
    Heartbeat(SlaveHeartbeat),
    Receipt(Receipt),
    Unregistered(Unregistered),
}

impl SlaveReport {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Heartbeat(_) => kind::HEARTBEAT,
            Self::Receipt(_) => kind::RECEIPT,
            Self::Unregistered(_) => kind::UNREGISTERED,
        }
    }

    pub fn to_envelope(&self, slave: &str) -> Envelope {
        match self {
            Self::Heartbeat(b) => Envelope::new(self.kind(), slave, 0, b),
            Self::Receipt(b) => Envelope::new(self.kind(), slave, 0, b),
            Self::Unregistered(b) => Envelope::new(self.kind(), slave, 0, b),
        }
    }

    pub fn from_envelope(envelope: &Envelope) -> Result<Self, Rejection> {
        Ok(match envelope.kind.as_str() {
            kind::HEARTBEAT => Self::Heartbeat(envelope.body()?),
            kind::RECEIPT => Self::Receipt(envelope.body()?),
            kind::UNREGISTERED => Self::Unregistered(envelope.body()?),
            other => return Err(Rejection::UnknownKind(other.to_owned())),
        })
    }
}

/// Where a master takes registrations on its API (server to server).
pub const REGISTER_PATH: &str = "/api/slaves/register";

/// The `slaves` value of a [`SlaveTarget`] that means every slave.
pub const ALL_SLAVES: &str = "all";

/// Which slaves, and which endpoints inside them, a master policy or task
/// is for: the `target` of `POST /api/policies` and `POST /api/tasks` on a
/// master, as the master stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaveTarget {
    /// `"all"` (every slave, including ones registered later, for
    /// policies) or a list of slave ids.
    pub slaves: SlaveSelection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_group: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SlaveSelection {
    /// Must be [`ALL_SLAVES`]; [`SlaveTarget::validate`] checks it.
    All(String),
    Listed(Vec<String>),
}

impl SlaveTarget {
    /// Every slave (`None`) or the listed ones, optionally narrowed to a group.
    pub fn new(slaves: Option<Vec<String>>, group: Option<String>, virtual_group: Option<String>) -> Self {
        let slaves = match slaves {
            None => SlaveSelection::All(ALL_SLAVES.to_owned()),
            Some(ids) => SlaveSelection::Listed(ids),
        };
        Self { slaves, group, virtual_group }
    }

    /// Checks the shape; `Err` is the operator-facing message.
    pub fn validate(&self) -> Result<(), String> {
        match &self.slaves {
            SlaveSelection::All(s) if s == ALL_SLAVES => {}
            SlaveSelection::All(other) => {
                return Err(format!("target.slaves '{other}' must be \"{ALL_SLAVES}\" or a list of slave ids"))
            }
            SlaveSelection::Listed(ids) if ids.is_empty() => {
                return Err(format!("target.slaves is an empty list: give \"{ALL_SLAVES}\" or slave ids"))
            }
            SlaveSelection::Listed(_) => {}
        }
        if self.group.is_some() && self.virtual_group.is_some() {
            return Err("target takes a group or a virtual_group, not both".into());
        }
        for name in [&self.group, &self.virtual_group].into_iter().flatten() {
            if name.trim().is_empty() {
                return Err("target group names must not be empty".into());
            }
        }
        Ok(())
    }

    pub fn is_all(&self) -> bool {
        matches!(self.slaves, SlaveSelection::All(_))
    }

    /// What each slave is told about the endpoints in scope.
    pub fn scope(&self) -> Scope {
        Scope { group: self.group.clone(), virtual_group: self.virtual_group.clone() }
    }
}

/// Body of `POST /api/slaves/register` on the master (the token is the credential).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub token: String,
    pub slave_id: String,
    /// The AMQP namespace the slave uses; it must be the master's.
    pub namespace: String,
    pub version: String,
    pub heartbeat: SlaveHeartbeat,
}

/// The master's answer to a successful registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterResponse {
    pub master_id: String,
    /// Hex key the slave signs its reports with.
    pub slave_key: String,
    /// Hex key the master signs this slave's commands with.
    pub command_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_keys_differ_per_slave_and_are_stable() {
        let master = SigningKey::generate();
        let a = command_key(&master, "paris");
        assert_eq!(a.to_hex(), command_key(&master, "paris").to_hex());
        assert_ne!(a.to_hex(), command_key(&master, "lyon").to_hex());
        assert_ne!(a.to_hex(), command_key(&SigningKey::generate(), "paris").to_hex());
    }

    fn target(v: serde_json::Value) -> Result<SlaveTarget, String> {
        let t: SlaveTarget = serde_json::from_value(v).map_err(|e| e.to_string())?;
        t.validate().map(|_| t)
    }

    #[test]
    fn targets_are_checked() {
        use serde_json::json;
        assert!(target(json!({"slaves": "all"})).unwrap().is_all());
        assert!(!target(json!({"slaves": ["paris"], "group": "Servers"})).unwrap().is_all());
        assert!(target(json!({"slaves": "some"})).unwrap_err().contains("\"all\""));
        assert!(target(json!({"slaves": []})).unwrap_err().contains("empty"));
        assert!(target(json!({"slaves": "all", "group": "a", "virtual_group": "b"})).unwrap_err().contains("not both"));
        assert!(target(json!({"slaves": "all", "site": "x"})).is_err());
        assert_eq!(serde_json::to_value(SlaveTarget::new(None, None, None)).unwrap(), json!({"slaves": "all"}));
    }

    #[test]
    fn commands_round_trip_through_envelopes() {
        let cmd = MasterCommand::Task(MasterTask {
            task_id: Uuid::new_v4(),
            name: "scan".into(),
            kind: TaskKind::QuickScan,
            scope: Scope { group: Some("Servers".into()), virtual_group: None },
        });
        let env = cmd.to_envelope("hq");
        assert_eq!(env.kind, "master.task");
        assert_eq!(MasterCommand::from_envelope(&env).unwrap(), cmd);
        let mut unknown = env.clone();
        unknown.kind = "master.reboot".into();
        assert!(matches!(MasterCommand::from_envelope(&unknown), Err(Rejection::UnknownKind(_))));
    }

    #[test]
    fn reports_round_trip_through_envelopes() {
        let report = SlaveReport::Receipt(Receipt {
            object: ReceiptObject::Policy,
            id: Uuid::new_v4(),
            version: 3,
            state: ReceiptState::Applied,
            reason: None,
            policy: Some(PolicyProgress { assigned: 10, applied: 10 }),
            task: None,
        });
        let env = report.to_envelope("paris");
        assert_eq!(SlaveReport::from_envelope(&env).unwrap(), report);
    }
}
