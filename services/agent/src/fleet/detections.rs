//! Threats found by real-time protection: on average
//! `detections_per_hour` per endpoint, drawn over the whole fleet each tick
//! (a Poisson count), each on a random endpoint. Most are handled; a few are
//! left in place and the endpoint is infected until a scan cleans it.

use std::time::Duration;

use rampart_shared::messages::{AgentMessage, Detection, DetectionAction};
use rand::Rng;
use uuid::Uuid;

use super::{Fleet, Moment};
use crate::computer::{self, Threat};

impl Fleet {
    /// Threats caught by real-time protection: on average
    /// `detections_per_hour` per endpoint, drawn over the whole fleet.
    pub(super) fn realtime_detections(&mut self, step: Duration, now: Moment, out: &mut Vec<AgentMessage>) {
        let count = self.endpoints.len();
        let rate = self.config.detections_per_hour;
        if count == 0 || rate <= 0.0 {
            return;
        }
        let expected = count as f64 * rate / 3600.0 * step.as_secs_f64();
        for _ in 0..poisson(&mut self.rng, expected) {
            let pos = self.rng.gen_range(0..count);
            let threat = computer::random_threat(&mut self.rng);
            let action = random_action(&mut self.rng);
            if !action.resolved() {
                self.endpoints[pos].threats.push(threat.clone());
            }
            out.push(self.detection(pos, threat, action, None, now));
            self.owe_heartbeat(pos, true);
        }
    }

    /// A detection on endpoint `pos`, with an id from the seeded generator.
    pub(super) fn detection(
        &mut self,
        pos: usize,
        threat: Threat,
        action: DetectionAction,
        task_id: Option<Uuid>,
        now: Moment,
    ) -> AgentMessage {
        self.stats.detections += 1;
        AgentMessage::Detection(Detection {
            detection_id: computer::random_uuid(&mut self.rng),
            endpoint_id: self.endpoints[pos].id.clone(),
            malware: threat.malware,
            path: threat.path,
            action,
            detected_at: now.wall,
            task_id,
        })
    }
}

/// Mostly handled, sometimes left in place (the computer is then infected).
fn random_action(rng: &mut impl Rng) -> DetectionAction {
    match rng.gen_range(0..100) {
        0..=39 => DetectionAction::Quarantined,
        40..=69 => DetectionAction::Cleaned,
        70..=81 => DetectionAction::Deleted,
        82..=91 => DetectionAction::Blocked,
        _ => DetectionAction::None,
    }
}

/// How many events happen in a step expected to hold `mean` of them.
fn poisson(rng: &mut impl Rng, mean: f64) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        // Normal approximation (Box-Muller); exact sampling is slow here.
        let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        return (mean + z * mean.sqrt()).round().max(0.0) as u32;
    }
    // Knuth: multiply uniforms until the product drops below e^-mean.
    let limit = (-mean).exp();
    let mut product: f64 = rng.gen();
    let mut count = 0;
    while product > limit {
        count += 1;
        product *= rng.gen::<f64>();
    }
    count
}

#[cfg(test)]
mod tests {
    use rand::{rngs::SmallRng, SeedableRng};

    use super::*;
    use crate::fleet::tests::{at, config, started};
    use crate::fleet::FleetConfig;

    #[test]
    fn detections_follow_the_rate_and_some_infect() {
        let mut fleet = started(FleetConfig { detections_per_hour: 2.0, ..config(1_000) });
        let infected_before: usize = fleet.endpoints().iter().map(|e| e.threats.len()).sum();
        let mut left_in_place = 0;
        let mut detections = 0;
        for s in 1..=3_600 {
            for message in fleet.tick(at(f64::from(s))) {
                let AgentMessage::Detection(d) = message else {
                    continue;
                };
                detections += 1;
                assert_eq!(d.task_id, None);
                assert!(fleet.endpoint(&d.endpoint_id).is_some());
                if !d.action.resolved() {
                    left_in_place += 1;
                }
            }
        }
        assert!((1_800..=2_200).contains(&detections), "{detections} detections in an hour");
        assert!(left_in_place > 0);
        let infected_after: usize = fleet.endpoints().iter().map(|e| e.threats.len()).sum();
        assert_eq!(infected_after, infected_before + left_in_place);
        assert_eq!(fleet.stats().detections, detections);
    }

    #[test]
    fn poisson_has_the_right_mean() {
        let mut rng = SmallRng::seed_from_u64(3);
        for mean in [0.2, 4.0, 80.0] {
            let total: u32 = (0..10_000).map(|_| poisson(&mut rng, mean)).sum();
            let measured = f64::from(total) / 10_000.0;
            assert!((measured - mean).abs() < mean * 0.05 + 0.02, "mean {mean}, measured {measured}");
        }
    }
}
