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
//! master's API are HTTP, not AMQP: they are in [`api`], the contract the
//! servers and `rampartctl` share.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    envelope::{Envelope, Rejection},
    family::message_family,
    messages::{PolicySettings, TaskKind},
    replication::{self, ReplicateNow, ReplicationAck, ReplicationProgress, VerifyRequest},
    signing::SigningKey,
};

pub mod api;
pub use api::{RegisterRequest, RegisterResponse, SlaveSelection, SlaveTarget, ALL_SLAVES, REGISTER_PATH};

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

message_family! {
    /// Any command from the master, decoded by kind.
    pub enum MasterCommand {
        /// master -> slave: a master policy, new or in a new version, to store and assign.
        Policy(MasterPolicy) = kind::POLICY,
        /// master -> slave: a master policy deleted (or no longer targeting this slave).
        PolicyRemoved(PolicyRemoved) = kind::POLICY_REMOVED,
        /// master -> slave: a master task to create and dispatch to the endpoints in scope.
        Task(MasterTask) = kind::TASK,
        /// master -> slave: stop a master task's open endpoint work.
        CancelTask(CancelMasterTask) = kind::CANCEL_TASK,
        /// master -> slave: leave the hierarchy (the slave answers `slave.unregistered`).
        Unregister(Unregister) = kind::UNREGISTER,
        /// master -> slave (replicator): the answer to a replication batch.
        ReplicationAck(ReplicationAck) = replication::kind::ACK,
        /// master -> slave (replicator): replicate now, or start a new epoch.
        ReplicateNow(ReplicateNow) = replication::kind::REPLICATE_NOW,
        /// master -> slave (replicator): carry checksums on the next caught-up batch.
        Verify(VerifyRequest) = replication::kind::VERIFY,
    }
}

impl MasterCommand {
    /// Wraps the command in an envelope from the `master` instance.
    pub fn to_envelope(&self, master: &str) -> Envelope {
        self.encode(master, 0)
    }

    pub fn from_envelope(envelope: &Envelope) -> Result<Self, Rejection> {
        Self::decode(envelope)
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
    /// A slave with a broker of its own: its links to the master's broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<crate::site_link::LinkState>>,
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

message_family! {
    /// Any report from a slave, decoded by kind.
    pub enum SlaveReport {
        /// slave -> master: sign of life with a summary of the site, every 10 s.
        Heartbeat(SlaveHeartbeat) = kind::HEARTBEAT,
        /// slave -> master: where a master policy or task stands on the slave.
        Receipt(Receipt) = kind::RECEIPT,
        /// slave -> master: the slave left the hierarchy.
        Unregistered(Unregistered) = kind::UNREGISTERED,
    }
}

impl SlaveReport {
    /// Wraps the report in an envelope from `slave`.
    pub fn to_envelope(&self, slave: &str) -> Envelope {
        self.encode(slave, 0)
    }

    pub fn from_envelope(envelope: &Envelope) -> Result<Self, Rejection> {
        Self::decode(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::tests::assert_family;

    #[test]
    fn command_keys_differ_per_slave_and_are_stable() {
        let master = SigningKey::generate();
        let a = command_key(&master, "paris");
        assert_eq!(a.to_hex(), command_key(&master, "paris").to_hex());
        assert_ne!(a.to_hex(), command_key(&master, "lyon").to_hex());
        assert_ne!(a.to_hex(), command_key(&SigningKey::generate(), "paris").to_hex());
    }

    fn command_samples() -> Vec<MasterCommand> {
        let scope = Scope { group: Some("Servers".into()), virtual_group: None };
        vec![
            MasterCommand::Policy(MasterPolicy {
                policy_id: Uuid::new_v4(),
                version: 2,
                name: "Office".into(),
                settings: PolicySettings::default(),
                scope: scope.clone(),
            }),
            MasterCommand::PolicyRemoved(PolicyRemoved { policy_id: Uuid::new_v4() }),
            MasterCommand::Task(MasterTask {
                task_id: Uuid::new_v4(),
                name: "scan".into(),
                kind: TaskKind::QuickScan,
                scope,
            }),
            MasterCommand::CancelTask(CancelMasterTask { task_id: Uuid::new_v4() }),
            MasterCommand::Unregister(Unregister { reason: "site closed".into() }),
            MasterCommand::ReplicationAck(ReplicationAck {
                epoch: 1,
                batch: 12,
                applied: false,
                watermark: replication::Watermark { xid: 815, seq: 3 },
                reason: Some("gap".into()),
            }),
            MasterCommand::ReplicateNow(ReplicateNow { full: true }),
            MasterCommand::Verify(VerifyRequest { verification: Uuid::new_v4() }),
        ]
    }

    fn report_samples() -> Vec<SlaveReport> {
        vec![
            SlaveReport::Heartbeat(SlaveHeartbeat {
                version: "1.0.0".into(),
                endpoints: 300,
                license: Some(LicenseUsage {
                    seats: 500,
                    used: 300,
                    expires_on: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
                }),
                replication: Some(ReplicationProgress {
                    epoch: 1,
                    acked: replication::Watermark::START,
                    rows_behind: 4,
                }),
                links: Some(vec![crate::site_link::LinkState {
                    carries: "status".into(),
                    state: "running".into(),
                    reason: None,
                    waiting: Some(0),
                }]),
            }),
            SlaveReport::Receipt(Receipt {
                object: ReceiptObject::Policy,
                id: Uuid::new_v4(),
                version: 3,
                state: ReceiptState::Applied,
                reason: None,
                policy: Some(PolicyProgress { assigned: 10, applied: 10 }),
                task: None,
            }),
            SlaveReport::Unregistered(Unregistered { reason: "told to by the master".into() }),
        ]
    }

    #[test]
    fn every_command_kind_round_trips_through_envelopes() {
        assert_family(
            MasterCommand::KINDS,
            &command_samples(),
            MasterCommand::kind,
            |c| c.to_envelope("hq"),
            MasterCommand::from_envelope,
        );
        assert!(command_samples().iter().all(|c| c.to_envelope("hq").from == "hq"));
    }

    #[test]
    fn every_report_kind_round_trips_through_envelopes() {
        assert_family(
            SlaveReport::KINDS,
            &report_samples(),
            SlaveReport::kind,
            |r| r.to_envelope("paris"),
            SlaveReport::from_envelope,
        );
        assert!(report_samples().iter().all(|r| r.to_envelope("paris").from == "paris"));
    }

    #[test]
    fn command_bodies_stay_byte_compatible() {
        let cmd = MasterCommand::Unregister(Unregister { reason: "bye".into() });
        assert_eq!(cmd.to_envelope("hq").body.get(), r#"{"reason":"bye"}"#);
        let ack = MasterCommand::ReplicateNow(ReplicateNow { full: false });
        assert_eq!(ack.to_envelope("hq").body.get(), r#"{"full":false}"#);
    }
}
