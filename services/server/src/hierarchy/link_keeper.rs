//! Slave side: keeps the links to the master's broker working
//! (`docs/multi-site.md`, "Link repair").
//!
//! Every `<LinkCheckSeconds>` it reads the links' state on this site's
//! broker and repairs, logging each repair with the link's name:
//!
//! * a link **missing** (deleted by hand) is made again;
//! * a link **not running** for [`STUCK_CHECKS`] looks in a row (left
//!   `starting` or `terminated` after a broker restart or a long cut) is
//!   deleted and made again, which restarts its connections;
//! * an outbound link that reports `running` but **moves nothing**
//!   (messages wait on this side and none has left its queue, by the
//!   broker's acknowledgement count, for [`IDLE_CHECKS`] looks: a
//!   connection through a route that black-holes packets, not yet timed
//!   out by its heartbeat) is restarted the same way;
//! * a link the master's broker **refuses to log in** (the master removed
//!   this slave and deleted its user) is removed, not repaired, and the
//!   error says so.
//!
//! On a stand-alone with a broker of its own it removes the status link
//! left to deliver a departure the WAN held up, once it has delivered it
//! (`super::departure::finish`), also when this server restarted meanwhile
//! (the departure is stored: `super::departure::resume`).
//!
//! Each repair is counted by cause ([`LinkRepairs`], `/metrics`:
//! `rampart_link_repairs_total`).

use std::{collections::HashMap, sync::Arc};

use rampart_shared::{site_link::BrokerLinkGrant, Shutdown};

use super::{
    broker_links::{self, LinkView},
    link_repairs::Cause,
};
use crate::{role::Role, state::AppState};

/// Looks in a row a link may be not running before it is restarted.
pub const STUCK_CHECKS: u32 = 6;
/// Looks in a row an outbound link may hold messages without moving one.
pub const IDLE_CHECKS: u32 = 6;

/// What the keeper remembers of one link between looks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Watch {
    not_running: u32,
    /// Looks since the link last ran (restarts included), for the log.
    down: u32,
    idle: u32,
    last_waiting: Option<u64>,
    last_moved: Option<u64>,
}

/// What to do with a link after a look.
#[derive(Debug, PartialEq, Eq)]
enum Repair {
    Nothing,
    Redeclare(Cause),
    Restart(Cause),
    Refused(String),
}

/// Decides from one look and what was seen before.
fn decide(link: &LinkView, watch: &mut Watch) -> Repair {
    if link.state == "missing" {
        *watch = Watch::default();
        return Repair::Redeclare(Cause::Missing);
    }
    let reason = link.reason.as_deref().unwrap_or("");
    if reason.contains("ACCESS_REFUSED") || reason.contains("auth_failure") {
        return Repair::Refused(reason.to_owned());
    }
    if link.state != "running" {
        watch.not_running += 1;
        watch.down += 1;
        watch.idle = 0;
        if watch.not_running >= STUCK_CHECKS {
            *watch = Watch { down: watch.down, ..Watch::default() };
            return Repair::Restart(Cause::NotRunning);
        }
        return Repair::Nothing;
    }
    watch.not_running = 0;
    watch.down = 0;
    // Stalled: messages wait and none has left since the last look. A
    // slow link still moves some (its queue may stay as deep while the
    // slave keeps publishing); before the broker has counted any, the
    // depth alone says it: never fewer.
    let stalled = match link.waiting {
        Some(now) if now > 0 => match (link.moved, watch.last_moved) {
            (Some(moved), Some(before)) => moved <= before,
            _ => watch.last_waiting.is_some_and(|before| now >= before),
        },
        _ => false,
    };
    watch.last_waiting = link.waiting;
    watch.last_moved = link.moved;
    watch.idle = if stalled { watch.idle + 1 } else { 0 };
    if watch.idle >= IDLE_CHECKS {
        *watch = Watch::default();
        return Repair::Restart(Cause::MovingNothing);
    }
    Repair::Nothing
}

/// The stored link credentials of this slave, if it has a broker of its own.
async fn stored_grant(state: &AppState) -> Option<BrokerLinkGrant> {
    broker_links::stored_grant(&state.pool.get().await.ok()?).await
}

/// Looks after the links until `stop`.
pub async fn run(state: Arc<AppState>, stop: Shutdown) {
    let mut watches: HashMap<&'static str, Watch> = HashMap::new();
    // The grant whose links the master's broker refused: not repaired again.
    let mut refused: Option<String> = None;
    // The local link queues' bindings, declared again once per start: a
    // newer version may bind a key more (the live replication lane).
    let mut declared = false;
    // Whether a departure left waiting before this server started has been
    // looked for (`super::departure::resume`): once, before any departure
    // of this run (which `retire` looks after).
    let mut resumed = !state.settings.hierarchy.site_broker || super::departure::resume(&state).await;
    while stop.sleep(state.settings.hierarchy.link_check).await {
        if !resumed {
            resumed = super::departure::resume(&state).await;
        }
        if state.role() != Role::Slave {
            watches.clear();
            declared = false;
            if state.role() == Role::Standalone && state.settings.hierarchy.site_broker {
                super::departure::finish(&state).await;
            }
            continue;
        }
        let Some(grant) = stored_grant(&state).await else { continue };
        if !declared {
            match broker_links::declare_local_queues(&state).await {
                Ok(()) => declared = true,
                Err(e) => tracing::warn!(error = %e, "Could not declare the local queues of the links."),
            }
        }
        if refused.as_deref() == Some(grant.password.as_str()) {
            continue;
        }
        let links = match broker_links::views(&state).await {
            Ok(links) => links,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the links to the master's broker.");
                continue;
            }
        };
        for link in &links {
            let watch = watches.entry(link.carries).or_default();
            let down = watch.down;
            let repair = decide(link, watch);
            if link.state == "running" && down > 0 {
                tracing::info!(shovel = %link.shovel, looks = down, "A link to the master's broker runs again.");
            }
            match repair {
                Repair::Nothing => {}
                Repair::Refused(reason) => {
                    tracing::error!(
                        shovel = %link.shovel, reason,
                        "The master's broker refused the links' credentials (was this slave removed on the master?): \
                         removed the links; unregister and register again."
                    );
                    broker_links::remove(&state).await;
                    refused = Some(grant.password.clone());
                    break;
                }
                Repair::Redeclare(cause) | Repair::Restart(cause) => {
                    let why = cause.describe();
                    match broker_links::redeclare(&state, &grant, link.carries).await {
                        Ok(()) => {
                            state.link_repairs.count(cause);
                            tracing::warn!(shovel = %link.shovel, why, "Repaired a link to the master's broker.");
                        }
                        Err(e) => tracing::warn!(shovel = %link.shovel, why, error = %e, "Could not repair a link."),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::link_repairs::LinkRepairs;

    fn link(state: &str, waiting: Option<u64>, reason: Option<&str>) -> LinkView {
        LinkView {
            carries: "status",
            shovel: "rt.link.p.status".into(),
            state: state.into(),
            reason: reason.map(str::to_owned),
            waiting,
            moved: None,
        }
    }

    fn moving(waiting: u64, moved: u64) -> LinkView {
        LinkView { moved: Some(moved), ..link("running", Some(waiting), None) }
    }

    #[test]
    fn a_missing_link_is_made_again_at_once() {
        assert!(matches!(decide(&link("missing", None, None), &mut Watch::default()), Repair::Redeclare(_)));
    }

    #[test]
    fn a_link_not_running_is_restarted_after_some_looks() {
        let mut watch = Watch::default();
        for _ in 1..STUCK_CHECKS {
            assert_eq!(decide(&link("starting", Some(3), None), &mut watch), Repair::Nothing);
        }
        assert!(matches!(decide(&link("terminated", Some(3), None), &mut watch), Repair::Restart(_)));
        assert_eq!(watch.not_running, 0);
    }

    #[test]
    fn the_looks_since_a_link_last_ran_count_across_restarts() {
        let mut watch = Watch::default();
        for _ in 0..2 * STUCK_CHECKS + 1 {
            decide(&link("starting", None, None), &mut watch);
        }
        assert_eq!((watch.down, watch.not_running), (2 * STUCK_CHECKS + 1, 1));
        assert_eq!(decide(&link("running", Some(0), None), &mut watch), Repair::Nothing);
        assert_eq!(watch.down, 0);
    }

    #[test]
    fn a_running_link_that_moves_nothing_is_restarted() {
        let mut watch = Watch::default();
        assert_eq!(decide(&link("running", Some(5), None), &mut watch), Repair::Nothing);
        for _ in 1..IDLE_CHECKS {
            assert_eq!(decide(&link("running", Some(5), None), &mut watch), Repair::Nothing);
        }
        assert!(matches!(decide(&link("running", Some(6), None), &mut watch), Repair::Restart(_)));
        // Draining, or empty, is healthy.
        let mut watch = Watch::default();
        for waiting in [9, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0] {
            assert_eq!(decide(&link("running", Some(waiting), None), &mut watch), Repair::Nothing);
        }
    }

    #[test]
    fn a_slow_link_that_keeps_moving_is_left_alone_and_a_stopped_one_restarted() {
        // As deep at every look, but messages leave between looks: slow, not stuck.
        let mut watch = Watch::default();
        for look in 0..3 * u64::from(IDLE_CHECKS) {
            assert_eq!(decide(&moving(4, 10 * look), &mut watch), Repair::Nothing);
        }
        // Nothing leaves any more while messages wait: held.
        let mut watch = Watch::default();
        for _ in 0..IDLE_CHECKS {
            assert_eq!(decide(&moving(4, 30), &mut watch), Repair::Nothing);
        }
        assert_eq!(decide(&moving(9, 30), &mut watch), Repair::Restart(Cause::MovingNothing));
        // Nothing waits: idle is healthy.
        let mut watch = Watch::default();
        for _ in 0..3 * IDLE_CHECKS {
            assert_eq!(decide(&moving(0, 30), &mut watch), Repair::Nothing);
        }
    }

    #[test]
    fn repairs_are_counted_by_cause() {
        let repairs = LinkRepairs::default();
        repairs.count(Cause::MovingNothing);
        repairs.count(Cause::MovingNothing);
        repairs.count(Cause::Missing);
        let counts = repairs.counts();
        assert_eq!(counts, [(Cause::Missing, 1), (Cause::NotRunning, 0), (Cause::MovingNothing, 2)]);
    }

    #[test]
    fn refused_credentials_are_not_repaired() {
        let refused = link("terminated", None, Some("{auth_failure,\"ACCESS_REFUSED - Login was refused\"}"));
        assert!(matches!(decide(&refused, &mut Watch::default()), Repair::Refused(_)));
    }
}
