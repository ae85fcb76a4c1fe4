//! Tasks on endpoints: scans run for a while and report running, then
//! succeeded (or cancelled); signature updates finish at once. A task
//! redelivered to an endpoint is answered, not run twice.

use rampart_shared::messages::{AgentMessage, DetectionAction, EndpointTask, TaskKind, TaskResult, TaskState};
use rand::Rng;
use uuid::Uuid;

use super::{scans::Scans, Fleet, Moment};
use crate::computer;

impl Fleet {
    pub(super) fn start_task(&mut self, pos: usize, task: EndpointTask, now: Moment) -> Vec<AgentMessage> {
        let key = (pos, task.task_id);
        if self.scans.is_running(key) {
            // Redelivered while running: say so again.
            return vec![self.task_result(pos, task.task_id, TaskState::Running)];
        }
        if let Some(done) = self.endpoints[pos].finished(task.task_id) {
            return vec![AgentMessage::TaskResult(done.clone())];
        }
        self.stats.tasks_started += 1;
        if task.kind == TaskKind::Update {
            let endpoint = &mut self.endpoints[pos];
            let version = endpoint.update_signatures(now.today());
            let result = TaskResult {
                signatures_version: Some(version),
                ..self.result_body(pos, task.task_id, TaskState::Succeeded)
            };
            return vec![self.finish_task(pos, result)];
        }
        let finishes_at = now.elapsed + Scans::duration(task.kind, self.config.scan_duration);
        self.scans.start(key, task.kind, finishes_at);
        vec![self.task_result(pos, task.task_id, TaskState::Running)]
    }

    /// A scan found every active threat (cleaning them) and, now and then,
    /// one real-time protection had missed.
    pub(super) fn finish_scan(
        &mut self,
        pos: usize,
        task_id: Uuid,
        kind: TaskKind,
        now: Moment,
        out: &mut Vec<AgentMessage>,
    ) {
        let scanned_files = match kind {
            TaskKind::FullScan => self.rng.gen_range(100_000..=400_000),
            _ => self.rng.gen_range(5_000..=20_000),
        };
        let mut found = std::mem::take(&mut self.endpoints[pos].threats);
        if self.rng.gen_bool(0.05) {
            found.push(computer::random_threat(&mut self.rng));
        }
        let detections = found.len() as u32;
        for threat in found {
            let detection = self.detection(pos, threat, DetectionAction::Cleaned, Some(task_id), now);
            out.push(detection);
        }
        let result = TaskResult { scanned_files, detections, ..self.result_body(pos, task_id, TaskState::Succeeded) };
        out.push(self.finish_task(pos, result));
    }

    pub(super) fn cancel(&mut self, pos: usize, task_id: Uuid) -> Vec<AgentMessage> {
        if !self.scans.cancel((pos, task_id)) {
            return Vec::new();
        }
        self.stats.tasks_cancelled += 1;
        let result = TaskResult {
            message: Some("Cancelled before it finished.".into()),
            ..self.result_body(pos, task_id, TaskState::Cancelled)
        };
        vec![self.finish_task(pos, result)]
    }

    /// Records a terminal result and owes a heartbeat with the new state.
    fn finish_task(&mut self, pos: usize, result: TaskResult) -> AgentMessage {
        if result.state == TaskState::Succeeded {
            self.stats.tasks_finished += 1;
        }
        self.endpoints[pos].remember(result.clone());
        self.owe_heartbeat(pos, true);
        AgentMessage::TaskResult(result)
    }

    fn task_result(&self, pos: usize, task_id: Uuid, state: TaskState) -> AgentMessage {
        AgentMessage::TaskResult(self.result_body(pos, task_id, state))
    }

    fn result_body(&self, pos: usize, task_id: Uuid, state: TaskState) -> TaskResult {
        TaskResult {
            task_id,
            endpoint_id: self.endpoints[pos].id.clone(),
            state,
            scanned_files: 0,
            detections: 0,
            signatures_version: None,
            message: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use rampart_shared::messages::{EndpointCommand, TaskState};

    use super::*;
    use crate::computer::signatures_label;
    use crate::fleet::tests::{at, config, started, today};

    fn task(kind: TaskKind) -> (Uuid, EndpointCommand) {
        let task_id = Uuid::new_v4();
        (task_id, EndpointCommand::Task(EndpointTask { task_id, kind }))
    }

    fn results(messages: &[AgentMessage]) -> Vec<&TaskResult> {
        messages
            .iter()
            .filter_map(|m| match m {
                AgentMessage::TaskResult(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_quick_scan_runs_then_succeeds_after_the_scan_duration() {
        let mut fleet = started(config(10));
        let (task_id, command) = task(TaskKind::QuickScan);
        let running = fleet.apply("sim1-00004", command, at(1.0));
        let [AgentMessage::TaskResult(r)] = running.as_slice() else { panic!("{running:?}") };
        assert_eq!((r.task_id, r.endpoint_id.as_str(), r.state), (task_id, "sim1-00004", TaskState::Running));
        assert!(results(&fleet.tick(at(2.9))).is_empty());
        let done = fleet.tick(at(3.0));
        let [r] = results(&done)[..] else { panic!("{done:?}") };
        assert_eq!(r.state, TaskState::Succeeded);
        assert!((5_000..=20_000).contains(&r.scanned_files), "{}", r.scanned_files);
        assert_eq!(fleet.take_heartbeats(1)[0].endpoint_id, "sim1-00004");
        assert_eq!(fleet.stats().tasks_finished, 1);
    }

    #[test]
    fn a_full_scan_takes_three_times_longer() {
        let mut fleet = started(config(10));
        let (_, command) = task(TaskKind::FullScan);
        fleet.apply("sim1-00001", command, at(0.0));
        assert!(results(&fleet.tick(at(5.9))).is_empty());
        let done = fleet.tick(at(6.0));
        let [r] = results(&done)[..] else { panic!("{done:?}") };
        assert!((100_000..=400_000).contains(&r.scanned_files), "{}", r.scanned_files);
    }

    #[test]
    fn a_scan_cleans_the_threats_left_in_place() {
        let mut fleet = started(config(1_000));
        let infected = fleet.endpoints().iter().find(|e| !e.threats.is_empty()).expect("about 1% are infected");
        let (id, threats) = (infected.id.clone(), infected.threats.len());
        let (task_id, command) = task(TaskKind::QuickScan);
        fleet.apply(&id, command, at(0.0));
        let done = fleet.tick(at(2.0));
        let cleaned: Vec<_> = done
            .iter()
            .filter_map(|m| match m {
                AgentMessage::Detection(d) => Some(d),
                _ => None,
            })
            .collect();
        assert!(cleaned.len() >= threats);
        assert!(cleaned.iter().all(|d| d.task_id == Some(task_id) && d.action == DetectionAction::Cleaned));
        assert_eq!(results(&done)[0].detections as usize, cleaned.len());
        assert_eq!(fleet.endpoint(&id).unwrap().heartbeat().active_threats, 0);
    }

    #[test]
    fn a_cancelled_scan_reports_cancelled_and_never_succeeds() {
        let mut fleet = started(config(10));
        let (task_id, command) = task(TaskKind::QuickScan);
        fleet.apply("sim1-00002", command, at(0.0));
        let cancel = EndpointCommand::Cancel(rampart_shared::messages::CancelTask { task_id });
        let cancelled = fleet.apply("sim1-00002", cancel.clone(), at(1.0));
        assert_eq!(results(&cancelled)[0].state, TaskState::Cancelled);
        assert!(results(&fleet.tick(at(10.0))).is_empty());
        assert!(fleet.apply("sim1-00002", cancel.clone(), at(11.0)).is_empty());
        assert!(fleet.apply("sim1-00003", cancel, at(11.0)).is_empty());
        assert_eq!(fleet.stats().tasks_cancelled, 1);
    }

    #[test]
    fn a_redelivered_task_is_answered_not_run_again() {
        let mut fleet = started(config(10));
        let (_, command) = task(TaskKind::QuickScan);
        fleet.apply("sim1-00001", command.clone(), at(0.0));
        let again = fleet.apply("sim1-00001", command.clone(), at(1.0));
        assert_eq!(results(&again)[0].state, TaskState::Running);
        assert_eq!(fleet.scans_running(), 1);
        let done = fleet.tick(at(2.0));
        let replay = fleet.apply("sim1-00001", command, at(3.0));
        assert_eq!(results(&replay), results(&done));
        assert_eq!(fleet.stats().tasks_started, 1);
        assert_eq!(fleet.scans_running(), 0);
    }

    #[test]
    fn an_update_installs_todays_signatures_at_once() {
        let mut fleet = started(config(200));
        let outdated = fleet.endpoints().iter().find(|e| e.signatures_date < today()).unwrap().id.clone();
        let (_, command) = task(TaskKind::Update);
        let done = fleet.apply(&outdated, command, at(1.0));
        let [r] = results(&done)[..] else { panic!("{done:?}") };
        assert_eq!(r.state, TaskState::Succeeded);
        assert_eq!(r.signatures_version.as_deref(), Some("2026.11.26"));
        let heartbeat = &fleet.take_heartbeats(1)[0];
        assert_eq!(heartbeat.endpoint_id, outdated);
        assert_eq!(
            (heartbeat.signatures_date, heartbeat.signatures_version.clone()),
            (today(), signatures_label(today()))
        );
    }
}
