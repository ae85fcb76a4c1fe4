//! What the site server changes on its computers: the policy in force and
//! agent deployment on discovered computers.

use rampart_shared::messages::{AgentMessage, DeployAgent, DeployResult, EndpointPolicy};

use super::{Fleet, Moment};
use crate::computer::{AppliedPolicy, Endpoint, AGENT_VERSION};

impl Fleet {
    /// Applies a policy unless it is an older version of the one in force,
    /// and owes a heartbeat that shows it applied.
    pub(super) fn apply_policy(&mut self, pos: usize, policy: EndpointPolicy) -> Vec<AgentMessage> {
        let endpoint = &mut self.endpoints[pos];
        if let Some(current) = &endpoint.policy {
            if current.policy_id == policy.policy_id && current.version > policy.version {
                return Vec::new();
            }
        }
        endpoint.realtime_protection = policy.settings.realtime_protection;
        endpoint.policy =
            Some(AppliedPolicy { policy_id: policy.policy_id, version: policy.version, settings: policy.settings });
        self.stats.policies_applied += 1;
        self.owe_heartbeat(pos, true);
        Vec::new()
    }

    /// Installs an agent on one of our unmanaged computers: it becomes an
    /// endpoint with the computer's id. Idempotent.
    pub(super) fn deploy(&mut self, deploy: DeployAgent, now: Moment) -> Vec<AgentMessage> {
        let message = if self.positions.contains_key(&deploy.computer_id) {
            "The agent is already installed."
        } else if let Some(i) = self.unmanaged.iter().position(|c| c.computer_id == deploy.computer_id) {
            let computer = self.unmanaged.remove(i);
            let pos = self.endpoints.len();
            self.endpoints.push(Endpoint::deployed(&computer, now.today()));
            self.positions.insert(computer.computer_id, pos);
            self.owes_heartbeat.push(false);
            self.owe_heartbeat(pos, true);
            self.stats.deployments += 1;
            "The agent is installed."
        } else {
            self.stats.commands_ignored += 1;
            return Vec::new();
        };
        vec![AgentMessage::DeployResult(DeployResult {
            deployment_id: deploy.deployment_id,
            computer_id: deploy.computer_id,
            succeeded: true,
            message: Some(format!("{message} Version {AGENT_VERSION}.")),
        })]
    }
}

#[cfg(test)]
mod tests {
    use rampart_shared::messages::{EndpointCommand, EndpointTask, PolicySettings, TaskKind};
    use uuid::Uuid;

    use super::*;
    use crate::fleet::tests::{at, config, started, today};

    fn policy(policy_id: Uuid, version: i32, realtime_protection: bool) -> EndpointCommand {
        EndpointCommand::Policy(EndpointPolicy {
            policy_id: Some(policy_id),
            version,
            name: "Workstations".into(),
            settings: PolicySettings { realtime_protection, ..PolicySettings::default() },
        })
    }

    fn deploy(computer_id: &str) -> EndpointCommand {
        EndpointCommand::Deploy(DeployAgent { deployment_id: Uuid::new_v4(), computer_id: computer_id.into() })
    }

    #[test]
    fn a_policy_applies_and_the_next_heartbeat_shows_it() {
        let mut fleet = started(config(10));
        let id = Uuid::new_v4();
        assert!(fleet.apply("sim1-00005", policy(id, 1, false), at(1.0)).is_empty());
        let [heartbeat] = &fleet.take_heartbeats(10)[..] else { panic!("one heartbeat owed") };
        assert_eq!(heartbeat.endpoint_id, "sim1-00005");
        assert!(!heartbeat.realtime_protection);
        assert_eq!((heartbeat.policy_id, heartbeat.policy_version), (Some(id), Some(1)));
    }

    #[test]
    fn an_older_version_of_the_policy_in_force_is_ignored() {
        let mut fleet = started(config(10));
        let id = Uuid::new_v4();
        fleet.apply("sim1-00001", policy(id, 2, false), at(1.0));
        fleet.apply("sim1-00001", policy(id, 1, true), at(2.0));
        let endpoint = fleet.endpoint("sim1-00001").unwrap();
        assert_eq!((endpoint.realtime_protection, endpoint.policy.as_ref().unwrap().version), (false, 2));
        let other = Uuid::new_v4();
        fleet.apply("sim1-00001", policy(other, 1, true), at(3.0));
        assert_eq!(fleet.endpoint("sim1-00001").unwrap().heartbeat().policy_id, Some(other));
        assert_eq!(fleet.stats().policies_applied, 2);
    }

    #[test]
    fn deploying_turns_a_discovered_computer_into_an_endpoint() {
        let mut fleet = started(config(10));
        let reply = fleet.apply("sim1-u0002", deploy("sim1-u0002"), at(1.0));
        let [AgentMessage::DeployResult(r)] = reply.as_slice() else { panic!("{reply:?}") };
        assert!(r.succeeded);
        assert_eq!(r.computer_id, "sim1-u0002");
        let endpoint = fleet.endpoint("sim1-u0002").expect("managed now");
        assert_eq!((endpoint.hostname.as_str(), endpoint.signatures_date), ("lab-0002", today()));
        assert_eq!(fleet.take_heartbeats(10)[0].endpoint_id, "sim1-u0002");
        let Some(AgentMessage::Discovery(d)) = fleet.discovery() else { panic!("no discovery") };
        assert!(d.computers.iter().all(|c| c.computer_id != "sim1-u0002"));
        assert_eq!((fleet.unmanaged().len(), fleet.endpoints().len()), (2, 11));
        // It takes part in heartbeat rounds and runs tasks like the others.
        fleet.tick(at(11.0));
        assert!(fleet.take_heartbeats(100).iter().any(|h| h.endpoint_id == "sim1-u0002"));
        let scan = EndpointCommand::Task(EndpointTask { task_id: Uuid::new_v4(), kind: TaskKind::QuickScan });
        assert_eq!(fleet.apply("sim1-u0002", scan, at(12.0)).len(), 1);
    }

    #[test]
    fn deploying_again_succeeds_again_and_others_are_ignored() {
        let mut fleet = started(config(10));
        fleet.apply("sim1-u0001", deploy("sim1-u0001"), at(1.0));
        let again = fleet.apply("sim1-u0001", deploy("sim1-u0001"), at(2.0));
        assert!(matches!(again.as_slice(), [AgentMessage::DeployResult(r)] if r.succeeded));
        assert_eq!(fleet.endpoints().len(), 11);
        assert!(fleet.apply("sim2-u0001", deploy("sim2-u0001"), at(3.0)).is_empty());
        assert_eq!(fleet.stats().deployments, 1);
    }
}
