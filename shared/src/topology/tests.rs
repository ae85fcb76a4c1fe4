//! Name segments are strict, names follow the wire contract, and each replication lane reaches its own queue.

use super::*;

#[test]
fn name_segments_are_strict() {
    assert!(NameSegment::parse("site-paris_1").is_ok());
    assert!(NameSegment::parse("").is_err());
    let err = NameSegment::parse("Paris").unwrap_err();
    assert!(err.contains("'P'"), "{err}");
    assert!(NameSegment::parse("a.b").is_err());
    assert!(NameSegment::parse(&"x".repeat(65)).is_err());
}

#[test]
fn names_follow_the_contract() {
    let t = Topology::new(&NameSegment::parse("rampart").unwrap());
    assert_eq!(t.site_inbox("paris"), "rampart.site.paris.inbox");
    assert_eq!(t.agents_exchange(), "rampart.agents");
    assert_eq!(Topology::endpoint_key("paris", "ep-1"), "site.paris.endpoint.ep-1");
    assert_eq!(Topology::site_key("paris", "agent.heartbeat"), "site.paris.agent.heartbeat");
    assert_eq!(Topology::parking_queue("q"), "q.parking");
    assert_eq!(t.slave_commands_queue("paris"), "rampart.slave.paris.commands");
    assert_eq!(t.master_status_queue(), "rampart.master.status");
    assert_eq!(t.master_replication_queue(), "rampart.master.replication");
    assert_eq!(t.report_events_queue(), "rampart.report.events");
    assert_eq!(Topology::status_key("paris", "slave.receipt"), "slave.paris.slave.receipt");
    assert_eq!(Topology::slave_of_key("slave.paris.slave.receipt"), Some("paris"));
    assert_eq!(Topology::slave_of_key("agent.paris"), None);
    assert_eq!(Topology::slave_of_key(&Topology::slave_key("paris")), Some("paris"));
    assert_eq!(t.master_live_replication_queue(), "rampart.master.replication.live");
}

/// A batch's key reaches the queue of its lane and no other, and names
/// its slave either way.
#[test]
fn replication_lanes_reach_their_own_queue() {
    // AMQP topic matching for the two bindings: `*` is one word.
    let matches = |binding: &str, key: &str| {
        let (b, k): (Vec<_>, Vec<_>) = (binding.split('.').collect(), key.split('.').collect());
        b.len() == k.len() && b.iter().zip(&k).all(|(b, k)| *b == "*" || b == k)
    };
    let (bulk, live) = (Topology::replication_key("par", Lane::Bulk), Topology::replication_key("par", Lane::Live));
    assert!(matches(Topology::REPLICATION_BINDING, &bulk) && !matches(Topology::LIVE_REPLICATION_BINDING, &bulk));
    assert!(matches(Topology::LIVE_REPLICATION_BINDING, &live) && !matches(Topology::REPLICATION_BINDING, &live));
    assert_eq!(Topology::slave_of_key(&bulk), Some("par"));
    assert_eq!(Topology::slave_of_key(&live), Some("par"));
    assert_eq!(Topology::replication_lane_of_key(&bulk), Lane::Bulk);
    assert_eq!(Topology::replication_lane_of_key(&live), Lane::Live);
}
