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
//! * an outbound link that reports `running` but **moves nothing** (the
//!   messages waiting on this side never fewer, none leaving, for
//!   [`IDLE_CHECKS`] looks) is restarted the same way;
//! * a link the master's broker **refuses to log in** (the master removed
//!   this slave and deleted its user) is removed, not repaired, and the
//!   error says so.

use std::{collections::HashMap, sync::Arc};

use rampart_shared::{site_link::BrokerLinkGrant, Shutdown};

use super::broker_links::{self, LinkView};
use crate::{role::Role, state::AppState};

/// Looks in a row a link may be not running before it is restarted.
pub const STUCK_CHECKS: u32 = 6;
/// Looks in a row an outbound link may hold messages without moving one.
pub const IDLE_CHECKS: u32 = 6;

/// What the keeper remembers of one link between looks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Watch {
    not_running: u32,
    idle: u32,
    last_waiting: Option<u64>,
}

/// What to do with a link after a look.
#[derive(Debug, PartialEq, Eq)]
enum Repair {
    Nothing,
    Redeclare(&'static str),
    Restart(&'static str),
    Refused(String),
}

/// Decides from one look and what was seen before.
fn decide(link: &LinkView, watch: &mut Watch) -> Repair {
    if link.state == "missing" {
        *watch = Watch::default();
        return Repair::Redeclare("missing (deleted by hand?)");
    }
    let reason = link.reason.as_deref().unwrap_or("");
    if reason.contains("ACCESS_REFUSED") || reason.contains("auth_failure") {
        return Repair::Refused(reason.to_owned());
    }
    if link.state != "running" {
        watch.not_running += 1;
        watch.idle = 0;
        if watch.not_running >= STUCK_CHECKS {
            *watch = Watch::default();
            return Repair::Restart("not running");
        }
        return Repair::Nothing;
    }
    watch.not_running = 0;
    let stalled = match (link.waiting, watch.last_waiting) {
        (Some(now), Some(before)) => now > 0 && now >= before,
        _ => false,
    };
    watch.last_waiting = link.waiting;
    watch.idle = if stalled { watch.idle + 1 } else { 0 };
    if watch.idle >= IDLE_CHECKS {
        *watch = Watch::default();
        return Repair::Restart("running but moving nothing");
    }
    Repair::Nothing
}

/// The stored link credentials of this slave, if it has a broker of its own.
async fn stored_grant(state: &AppState) -> Option<BrokerLinkGrant> {
    let client = state.pool.get().await.ok()?;
    let row = client.query_opt("SELECT broker_link FROM master_link WHERE id = 1", &[]).await.ok()??;
    serde_json::from_value(row.get::<_, Option<serde_json::Value>>(0)?).ok()
}

/// Looks after the links until `stop`.
pub async fn run(state: Arc<AppState>, stop: Shutdown) {
    let mut watches: HashMap<&'static str, Watch> = HashMap::new();
    // The grant whose links the master's broker refused: not repaired again.
    let mut refused: Option<String> = None;
    // The local link queues' bindings, declared again once per start: a
    // newer version may bind a key more (the live replication lane).
    let mut declared = false;
    while stop.sleep(state.settings.hierarchy.link_check).await {
        if state.role() != Role::Slave {
            watches.clear();
            declared = false;
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
            match decide(link, watch) {
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
                Repair::Redeclare(why) | Repair::Restart(why) => {
                    match broker_links::redeclare(&state, &grant, link.carries).await {
                        Ok(()) => tracing::warn!(shovel = %link.shovel, why, "Repaired a link to the master's broker."),
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

    fn link(state: &str, waiting: Option<u64>, reason: Option<&str>) -> LinkView {
        LinkView {
            carries: "status",
            shovel: "rt.link.p.status".into(),
            state: state.into(),
            reason: reason.map(str::to_owned),
            waiting,
        }
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
        assert_eq!(watch, Watch::default());
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
    fn refused_credentials_are_not_repaired() {
        let refused = link("terminated", None, Some("{auth_failure,\"ACCESS_REFUSED - Login was refused\"}"));
        assert!(matches!(decide(&refused, &mut Watch::default()), Repair::Refused(_)));
    }
}
