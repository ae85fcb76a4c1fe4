//! Every agent and endpoint kind round-trips through envelopes; bodies stay byte-compatible.

use super::*;
use crate::family::tests::assert_family;

fn heartbeat(id: &str) -> Heartbeat {
    Heartbeat {
        endpoint_id: id.into(),
        hostname: "pc-1".into(),
        ip: "10.0.0.1".into(),
        os: "Windows 11".into(),
        agent_version: "1.0.0".into(),
        signatures_version: "2026.11.26".into(),
        signatures_date: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(),
        realtime_protection: true,
        active_threats: 0,
        policy_id: None,
        policy_version: None,
    }
}

#[test]
fn decodes_by_kind() {
    let e = Envelope::new(kind::HEARTBEAT, "ep-1", 1, &heartbeat("ep-1"));
    assert_eq!(AgentMessage::from_envelope(&e).unwrap(), AgentMessage::Heartbeat(heartbeat("ep-1")));
}

#[test]
fn refuses_an_endpoint_speaking_for_another() {
    let e = Envelope::new(kind::HEARTBEAT, "ep-1", 1, &heartbeat("ep-2"));
    let err = AgentMessage::from_envelope(&e).unwrap_err();
    assert!(matches!(err, Rejection::UnknownSender(_)), "{err}");
}

#[test]
fn refuses_unknown_kind_and_bad_body() {
    let e = Envelope::new("agent.selfdestruct", "ep-1", 1, &heartbeat("ep-1"));
    assert_eq!(AgentMessage::from_envelope(&e).unwrap_err(), Rejection::UnknownKind("agent.selfdestruct".into()));
    let e = Envelope::new(kind::DETECTION, "ep-1", 1, &heartbeat("ep-1"));
    assert!(matches!(AgentMessage::from_envelope(&e).unwrap_err(), Rejection::InvalidBody { .. }));
}

fn agent_samples() -> Vec<AgentMessage> {
    let task_id = Uuid::new_v4();
    vec![
        AgentMessage::Heartbeat(heartbeat("ep-1")),
        AgentMessage::Detection(Detection {
            detection_id: Uuid::new_v4(),
            endpoint_id: "ep-1".into(),
            malware: "Trojan.GenericKD.4821".into(),
            path: "C:\\Users\\a\\invoice.exe".into(),
            action: DetectionAction::Quarantined,
            detected_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            task_id: Some(task_id),
        }),
        AgentMessage::Discovery(Discovery {
            reported_by: "ep-1".into(),
            computers: vec![DiscoveredComputer {
                computer_id: "u-1".into(),
                hostname: "lab-1".into(),
                ip: "10.0.200.1".into(),
                mac: "02:00:00:00:00:01".into(),
                os: "Windows 10".into(),
                third_party_protection: false,
            }],
        }),
        AgentMessage::TaskResult(TaskResult {
            task_id,
            endpoint_id: "ep-1".into(),
            state: TaskState::Succeeded,
            scanned_files: 12_000,
            detections: 1,
            signatures_version: None,
            message: None,
        }),
        AgentMessage::DeployResult(DeployResult {
            deployment_id: Uuid::new_v4(),
            computer_id: "u-1".into(),
            succeeded: true,
            message: None,
        }),
    ]
}

fn endpoint_samples() -> Vec<EndpointCommand> {
    vec![
        EndpointCommand::Task(EndpointTask { task_id: Uuid::new_v4(), kind: TaskKind::FullScan }),
        EndpointCommand::Policy(EndpointPolicy {
            policy_id: None,
            version: 0,
            name: "Default".into(),
            settings: PolicySettings::default(),
        }),
        EndpointCommand::Deploy(DeployAgent { deployment_id: Uuid::new_v4(), computer_id: "u-1".into() }),
        EndpointCommand::Cancel(CancelTask { task_id: Uuid::new_v4() }),
    ]
}

#[test]
fn every_agent_kind_round_trips_from_the_endpoint_it_speaks_for() {
    assert_family(
        AgentMessage::KINDS,
        &agent_samples(),
        AgentMessage::kind,
        |m| m.to_envelope(7),
        AgentMessage::from_envelope,
    );
    for m in agent_samples() {
        let e = m.to_envelope(7);
        assert_eq!((e.from.as_str(), e.seq), (m.sender(), 7));
    }
    assert_eq!(kind::FROM_AGENTS, AgentMessage::KINDS);
}

#[test]
fn every_endpoint_command_kind_round_trips() {
    assert_family(
        EndpointCommand::KINDS,
        &endpoint_samples(),
        EndpointCommand::kind,
        |c| c.to_envelope("site-a", 3),
        EndpointCommand::from_envelope,
    );
    let e = endpoint_samples()[0].to_envelope("site-a", 3);
    assert_eq!((e.from.as_str(), e.seq), ("site-a", 3));
}

#[test]
fn bodies_stay_byte_compatible() {
    let id = Uuid::nil();
    let e = EndpointCommand::Task(EndpointTask { task_id: id, kind: TaskKind::QuickScan }).to_envelope("site-a", 1);
    assert_eq!(e.body.get(), format!(r#"{{"task_id":"{id}","kind":"quick_scan"}}"#));
}
