//! Message kinds and their bodies.
//!
//! Agents -> site (exchange `<ns>.site`, key `site.<instance_id>.<kind>`):
//! [`Heartbeat`], [`Detection`], [`Discovery`], [`TaskResult`],
//! [`DeployResult`]. The envelope's `from` is the endpoint id (for
//! `agent.discovery`, the endpoint that scanned the network).
//!
//! Site -> agents (exchange `<ns>.agents`, key
//! `site.<instance_id>.endpoint.<endpoint_id>`): [`EndpointTask`],
//! [`EndpointPolicy`], [`DeployAgent`], [`CancelTask`]. The envelope's `from`
//! is the instance id.
//!
//! Each family is one `message_family!` table: kind, body,
//! producer and consumer, once. Every kind is documented in
//! `docs/protocol.md`.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    envelope::{Envelope, Rejection},
    family::message_family,
};

/// Wire names of every message kind.
pub mod kind {
    pub const HEARTBEAT: &str = "agent.heartbeat";
    pub const DETECTION: &str = "agent.detection";
    pub const DISCOVERY: &str = "agent.discovery";
    pub const TASK_RESULT: &str = "agent.task_result";
    pub const DEPLOY_RESULT: &str = "agent.deploy_result";

    pub const ENDPOINT_TASK: &str = "endpoint.task";
    pub const ENDPOINT_POLICY: &str = "endpoint.policy";
    pub const DEPLOY_AGENT: &str = "endpoint.deploy";
    pub const CANCEL_TASK: &str = "endpoint.cancel_task";

    /// Kinds an agent may send to its site.
    pub const FROM_AGENTS: &[&str] = super::AgentMessage::KINDS;
}

/// A computer's status snapshot, sent periodically and after every change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub endpoint_id: String,
    pub hostname: String,
    pub ip: String,
    pub os: String,
    pub agent_version: String,
    /// Version label of the installed malware signatures.
    pub signatures_version: String,
    /// Release date of the installed signatures; drives "outdated".
    pub signatures_date: NaiveDate,
    pub realtime_protection: bool,
    /// Threats found and not cleaned (the computer is infected while > 0).
    pub active_threats: u32,
    /// The policy the agent has applied, if any.
    pub policy_id: Option<Uuid>,
    pub policy_version: Option<i32>,
}

/// What the agent did about a threat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectionAction {
    Cleaned,
    Quarantined,
    Deleted,
    Blocked,
    /// Found but left in place (cleaning failed or not allowed).
    None,
}

impl DetectionAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cleaned => "cleaned",
            Self::Quarantined => "quarantined",
            Self::Deleted => "deleted",
            Self::Blocked => "blocked",
            Self::None => "none",
        }
    }

    /// True when the threat is gone from the computer.
    pub fn resolved(self) -> bool {
        !matches!(self, Self::None)
    }
}

/// A threat found on an endpoint (by real-time protection or a scan task).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// Chosen by the agent; makes the detection idempotent.
    pub detection_id: Uuid,
    pub endpoint_id: String,
    pub malware: String,
    pub path: String,
    pub action: DetectionAction,
    pub detected_at: DateTime<Utc>,
    /// The scan task that found it, when it was a scan.
    pub task_id: Option<Uuid>,
}

/// A computer seen on the network that has no agent (network audit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveredComputer {
    /// Stable id; becomes the endpoint id once an agent is deployed.
    pub computer_id: String,
    pub hostname: String,
    pub ip: String,
    pub mac: String,
    pub os: String,
    /// Another vendor's protection is installed on it.
    pub third_party_protection: bool,
}

/// Result of a network discovery sweep run by one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    pub reported_by: String,
    pub computers: Vec<DiscoveredComputer>,
}

/// The kinds of task an endpoint can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    QuickScan,
    FullScan,
    Update,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QuickScan => "quick_scan",
            Self::FullScan => "full_scan",
            Self::Update => "update",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "quick_scan" => Some(Self::QuickScan),
            "full_scan" => Some(Self::FullScan),
            "update" => Some(Self::Update),
            _ => None,
        }
    }
}

/// Where a task stands on one endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// Progress or outcome of a task on one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskResult {
    pub task_id: Uuid,
    pub endpoint_id: String,
    pub state: TaskState,
    /// Files scanned (scans only).
    #[serde(default)]
    pub scanned_files: u64,
    /// Threats found by this task (scans only).
    #[serde(default)]
    pub detections: u32,
    /// New signatures version (updates only).
    #[serde(default)]
    pub signatures_version: Option<String>,
    /// Why it failed, or a short note.
    #[serde(default)]
    pub message: Option<String>,
}

/// Outcome of installing an agent on a discovered computer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployResult {
    pub deployment_id: Uuid,
    pub computer_id: String,
    pub succeeded: bool,
    pub message: Option<String>,
}

/// Settings a policy carries to an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Real-time (on-access) protection on or off.
    pub realtime_protection: bool,
    /// When scheduled scans run, e.g. `daily 02:00`, `weekly sun 03:00`, `off`.
    pub scan_schedule: String,
    /// Minutes between signature update checks.
    pub update_interval_minutes: u32,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self { realtime_protection: true, scan_schedule: "daily 02:00".into(), update_interval_minutes: 60 }
    }
}

/// Run a task on this endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointTask {
    pub task_id: Uuid,
    pub kind: TaskKind,
}

/// Apply this policy (the endpoint's effective policy; `None` id means the
/// built-in default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointPolicy {
    pub policy_id: Option<Uuid>,
    pub version: i32,
    pub name: String,
    pub settings: PolicySettings,
}

/// Install an agent on a discovered computer (routed to its computer id).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployAgent {
    pub deployment_id: Uuid,
    pub computer_id: String,
}

/// Stop a task that has not finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelTask {
    pub task_id: Uuid,
}

message_family! {
    /// Any message an agent sends to its site, decoded by kind.
    pub enum AgentMessage {
        /// agent -> site: the endpoint's status, periodically and after every change.
        Heartbeat(Heartbeat) = kind::HEARTBEAT,
        /// agent -> site: a threat found by real-time protection or a scan.
        Detection(Detection) = kind::DETECTION,
        /// agent -> site: computers without an agent seen on the endpoint's network.
        Discovery(Discovery) = kind::DISCOVERY,
        /// agent -> site: progress or outcome of a task on the endpoint.
        TaskResult(TaskResult) = kind::TASK_RESULT,
        /// agent (newly installed) -> site: outcome of a deployment.
        DeployResult(DeployResult) = kind::DEPLOY_RESULT,
    }
}

impl AgentMessage {
    /// Decodes an envelope's body by kind. The claimed endpoint id in the body
    /// must match the envelope's sender, so one endpoint cannot speak for another.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, Rejection> {
        let message = Self::decode(envelope)?;
        let claimed = message.sender();
        if claimed != envelope.from {
            return Err(Rejection::UnknownSender(format!("{} (body speaks for '{claimed}')", envelope.from)));
        }
        Ok(message)
    }

    /// The endpoint (or computer) the body speaks for: the envelope's `from`.
    pub fn sender(&self) -> &str {
        match self {
            Self::Heartbeat(h) => &h.endpoint_id,
            Self::Detection(d) => &d.endpoint_id,
            Self::Discovery(d) => &d.reported_by,
            Self::TaskResult(t) => &t.endpoint_id,
            Self::DeployResult(d) => &d.computer_id,
        }
    }

    /// Wraps the message in an envelope from the endpoint it speaks for.
    pub fn to_envelope(&self, seq: u64) -> Envelope {
        self.encode(self.sender(), seq)
    }
}

message_family! {
    /// Any command the site sends to an endpoint, decoded by kind.
    pub enum EndpointCommand {
        /// site -> agent: run a task on this endpoint.
        Task(EndpointTask) = kind::ENDPOINT_TASK,
        /// site -> agent: apply the endpoint's effective policy.
        Policy(EndpointPolicy) = kind::ENDPOINT_POLICY,
        /// site -> agent (the deploying endpoint): install an agent on a discovered computer.
        Deploy(DeployAgent) = kind::DEPLOY_AGENT,
        /// site -> agent: stop a task that has not finished.
        Cancel(CancelTask) = kind::CANCEL_TASK,
    }
}

impl EndpointCommand {
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, Rejection> {
        Self::decode(envelope)
    }

    /// Wraps the command in an envelope from `instance_id`.
    pub fn to_envelope(&self, instance_id: &str, seq: u64) -> Envelope {
        self.encode(instance_id, seq)
    }
}

#[cfg(test)]
mod tests;
