//! Sites on brokers of their own under WAN and broker faults
//! (`docs/multi-site.md`): the link between a slave's broker and the
//! master's goes through a TCP proxy the test cuts, flaps, slows or holds.
//! While cut, the slave shows its links down and what waits on its side;
//! once restored, the commands sent meanwhile arrive and the changes made
//! meanwhile replicate, each once; unregistering while it is cut makes the
//! site a stand-alone at once, and the master hears of it once it is
//! restored. Under the fault suite's writers and
//! checker, a cut, a flapping link, a slow link, a held link (repaired by
//! the link keeper), and either broker killed (`kill -9`) and started again
//! lose, duplicate and reorder nothing; each prints its `CHAOS` line for
//! `ops/chaos`. With the slave's server down, commands keep crossing to its
//! broker and wait there for it.

use std::time::Duration;

use chrono::Utc;
use rampart_shared::topology::{NameSegment, Topology};
use rampart_tests::{
    faults::{
        broker::PrivateBroker,
        take_turn,
        traffic::{edit_policies, fan_out, FanOut, Stack, Writers, FAST_REPLICATION},
        wan::Wan,
    },
    hierarchy::{insert_endpoints, register, wait_for_receipts, wait_for_replicated_endpoints},
    multi_site::{departure_crosses, master_on, shovels, site_on},
    namespace, wait_for, ServerOptions, TestServer,
};
use serde_json::json;

/// Whether `ops/chaos --long` runs the scenarios (`RAMPART_CHAOS_LONG=1`).
fn long() -> bool {
    std::env::var("RAMPART_CHAOS_LONG").is_ok_and(|v| v == "1")
}

/// How long the link stays cut: 10 s, 60 s under `ops/chaos --long`.
fn cut() -> Duration {
    Duration::from_secs(if long() { 60 } else { 10 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_link_shows_down_and_catches_up_once_restored() {
    let _turn = take_turn().await;
    let (hq_broker, rennes_broker) = tokio::join!(PrivateBroker::start_with_links(), PrivateBroker::start_with_links());
    let wan = Wan::start(([127, 0, 0, 1], hq_broker.port).into()).await;
    let ns = namespace();
    let master = master_on(&hq_broker, &ns, &format!("amqp://127.0.0.1:{}/%2f", wan.address().port())).await;
    let rennes = site_on(&rennes_broker, &ns, "rennes").await;
    insert_endpoints(&rennes, "rennes-a", 10).await;
    register(&master, &rennes).await;
    wait_for_replicated_endpoints(&master, "rennes", 10).await;

    wan.cut();
    wait_for("the slave showing a link down while the WAN is cut", || async {
        let links = rennes.get_ok("/api/replication").await["links"]["links"].clone();
        links.as_array()?.iter().any(|l| l["state"] != "running").then_some(())
    })
    .await;
    // Meanwhile the master sends a policy and asks for the changes, and the
    // slave's computers change: everything waits on one side of the cut.
    let (status, policy) =
        master.post("/api/policies", json!({"name": "During the cut", "target": {"slaves": "all"}})).await;
    assert_eq!(status, 201, "{policy}");
    insert_endpoints(&rennes, "rennes-b", 15).await;
    let (status, body) = master.post("/api/slaves/rennes/replicate", json!({"full": false})).await;
    assert_eq!(status, 202, "{body}");
    tokio::time::sleep(cut()).await; // the fault itself, not a wait for anything
    wan.restore();

    let path = format!("/api/policies/{}", policy["id"].as_str().unwrap());
    wait_for_receipts(&master, &path, &["rennes"], "the policy sent during the cut", |r| r["state"] == "delivered")
        .await;
    let replication = wait_for_replicated_endpoints(&master, "rennes", 25).await;
    assert_eq!(replication["refused_batches"], 0, "nothing replayed or out of order: {replication}");
    let slave = master.get_ok("/api/slaves/rennes").await;
    assert_eq!(slave["refused_messages"], 0, "{slave}");
    wait_for("the links running again", || async {
        let links = rennes.get_ok("/api/replication").await["links"]["links"].clone();
        links.as_array()?.iter().all(|l| l["state"] == "running").then_some(())
    })
    .await;

    // Unregistering while the WAN is down: the site is a stand-alone at
    // once and says the master has not heard; only the status link stays,
    // holding the departure, and once the WAN is back it delivers it and
    // deletes itself, and the master removes the slave and its broker user.
    let topo = Topology::new(&NameSegment::parse(&ns).unwrap());
    wan.cut();
    let (status, body) = rennes.post("/api/hierarchy/unregister", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "standalone", "{body}");
    assert_eq!(body["master_informed"], false, "{body}");
    let note = body["note"].as_str().expect("a note on what follows");
    assert!(note.contains("slaves remove rennes --force"), "{note}");
    assert_eq!(shovels(&rennes_broker).await, vec![topo.link_shovel("rennes", "status")], "only the status link stays");
    let slave = master.get_ok("/api/slaves/rennes").await;
    assert_ne!(slave["state"], "removed", "the master has not heard yet: {slave}");
    wan.restore();
    departure_crosses(&master, &hq_broker, &rennes_broker, "rennes").await;

    rennes.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_wait_on_the_sites_broker_while_its_server_is_down() {
    let _turn = take_turn().await;
    let (hq_broker, brest_broker) = tokio::join!(PrivateBroker::start_with_links(), PrivateBroker::start_with_links());
    let ns = namespace();
    let topo = Topology::new(&NameSegment::parse(&ns).unwrap());
    let master = master_on(&hq_broker, &ns, &format!("amqp://127.0.0.1:{}/%2f", hq_broker.port)).await;
    let brest = site_on(&brest_broker, &ns, "brest").await;
    register(&master, &brest).await;

    let options = brest.halt().await;
    let mut paths = Vec::new();
    for name in ["While down 1", "While down 2"] {
        let (status, policy) = master.post("/api/policies", json!({"name": name, "target": {"slaves": "all"}})).await;
        assert_eq!(status, 201, "{policy}");
        paths.push(format!("/api/policies/{}", policy["id"].as_str().unwrap()));
    }
    let queue = topo.slave_commands_queue("brest");
    let admin = brest_broker.management();
    wait_for("the commands crossed to the site's broker while its server is down", || async {
        (admin.queue_depth("/", &queue).await.ok()?? >= 2).then_some(())
    })
    .await;

    let brest = TestServer::spawn(options).await;
    for path in &paths {
        wait_for_receipts(&master, path, &["brest"], "a policy sent while the slave was down", |r| {
            r["state"] == "applied"
        })
        .await;
    }
    brest.stop(&[]).await;
    master.stop(&[]).await;
}

/// Flapping: the link is cut for 1 s every 3 s for 20 s (60 s under
/// `ops/chaos --long`).
fn flapping() -> Duration {
    Duration::from_secs(if long() { 60 } else { 20 })
}

/// How long a broker stays killed before it starts again: 5 s, 20 s under
/// `ops/chaos --long`.
fn killed() -> Duration {
    Duration::from_secs(if long() { 20 } else { 5 })
}

/// How long the link is slow or held: 10 s, 40 s under `ops/chaos --long`.
fn degraded() -> Duration {
    Duration::from_secs(if long() { 40 } else { 10 })
}

/// The latency the slow link adds to every chunk, each way.
const LATENCY: Duration = Duration::from_millis(200);

/// The private brokers of one scenario (the master's site's and the
/// slave site's) and the WAN stand-in between them.
struct Sites {
    hq_broker: PrivateBroker,
    site_broker: PrivateBroker,
    wan: Wan,
}

impl Sites {
    async fn start() -> Self {
        let (hq_broker, site_broker) =
            tokio::join!(PrivateBroker::start_with_links(), PrivateBroker::start_with_links());
        let wan = Wan::start(([127, 0, 0, 1], hq_broker.port).into()).await;
        Self { hq_broker, site_broker, wan }
    }

    /// A master on the master's broker, whose slaves reach it through the
    /// WAN, and the slave `name` with 200 computers on the site's broker
    /// (replication every second, links checked every second), with the
    /// checker installed before registration.
    async fn stack(&self, name: &str) -> Stack {
        let master = ServerOptions {
            amqp_url: self.hq_broker.url(),
            namespace: namespace(),
            broker_xml: self.hq_broker.management_xml(),
            extra_xml: format!(
                "<Hierarchy><BrokerForSlaves>amqp://127.0.0.1:{}/%2f</BrokerForSlaves></Hierarchy>",
                self.wan.address().port()
            ),
            ..ServerOptions::master()
        };
        let (site_url, site_xml) = (self.site_broker.url(), self.site_broker.management_xml());
        let stack = Stack::start(master, &[name], 200, |s| {
            s.amqp_url = site_url.clone();
            s.broker_xml = site_xml.clone();
            s.extra_xml = format!(
                "{FAST_REPLICATION}<Hierarchy><SiteBroker>true</SiteBroker><LinkCheckSeconds>1</LinkCheckSeconds></Hierarchy>"
            );
        })
        .await;
        stack.wait_for_copies(200).await;
        stack
    }
}

/// Traffic in full flow, for the fault to meet: writers on the slave,
/// replication moving, policies and a task on their way.
async fn traffic(stack: &Stack) -> (Vec<Writers>, FanOut) {
    let writers: Vec<Writers> = stack.slaves.iter().map(|s| Writers::start(s, 2, 2_000)).collect();
    stack.wait_for_copies_to_grow().await;
    let sent = fan_out(&stack.master, "Before", 2, 1).await;
    (writers, sent)
}

/// What the master sends while the fault holds: a new version of every
/// policy sent before it, a new policy and a task.
async fn during(stack: &Stack, sent: &FanOut) {
    edit_policies(&stack.master, sent, false).await;
    fan_out(&stack.master, "During", 1, 1).await;
}

/// Stops the writers, waits until replication moves again and the stack
/// has settled, and runs the checker: nothing lost, duplicated, stale or
/// reordered, no message refused, no new snapshot. Prints the scenario's
/// `CHAOS` line.
async fn check(stack: &Stack, writers: Vec<Writers>, scenario: &str, healed_at: chrono::DateTime<Utc>) {
    let mut committed = 0;
    for w in writers {
        committed += w.finish().await;
    }
    assert!(committed > 50, "the writers committed only {committed} transactions");
    stack.wait_for_copies_to_grow().await;
    let report = stack.settle_and_check(scenario, healed_at).await;
    // Both instants, to line a slow recovery up with the servers' logs.
    let last = report.slaves.iter().filter_map(|s| s.last_effect).max();
    println!("{scenario}: healed at {healed_at}, last effect at {last:?}");
    report.assert_clean();
    stack.assert_one_epoch().await;
    // Signatures verify across the links. A batch delivered again after a
    // crash (confirmed by the master's broker, its acknowledgement on the
    // site's side lost) is refused by the master, not applied twice (the
    // checker proves that); the count is shown, not required to be 0.
    for slave in &stack.slaves {
        let name = &slave.options.instance;
        let seen = stack.master.get_ok(&format!("/api/slaves/{name}")).await;
        assert_eq!(seen["refused_messages"], 0, "{seen}");
        println!("{scenario}: {name} refused_batches={}", seen["replication"]["refused_batches"]);
    }
}

/// Waits until the slave reports its three links running.
async fn wait_for_links_running(slave: &TestServer) {
    wait_for("the links running", || async {
        let links = slave.get_ok("/api/replication").await["links"]["links"].clone();
        let links = links.as_array()?;
        (links.len() == 3 && links.iter().all(|l| l["state"] == "running")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cut_link_under_writers_loses_and_duplicates_nothing() {
    let _turn = take_turn().await;
    let sites = Sites::start().await;
    let stack = sites.stack("quimper").await;
    let (writers, sent) = traffic(&stack).await;
    sites.wan.cut();
    during(&stack, &sent).await;
    tokio::time::sleep(cut()).await; // holds the fault, waits for nothing
    sites.wan.restore();
    check(&stack, writers, "multi-site-link-cut", Utc::now()).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flapping_link_under_writers_loses_and_duplicates_nothing() {
    let _turn = take_turn().await;
    let sites = Sites::start().await;
    let stack = sites.stack("caen").await;
    let (writers, sent) = traffic(&stack).await;
    // The master keeps sending while the link flaps: a policy edit and a
    // new policy every 3 s (the traffic's pace, not a wait).
    let sending = async {
        let rounds = flapping().as_secs() / 3;
        for round in 0..rounds {
            edit_policies(&stack.master, &sent, round % 2 == 0).await;
            fan_out(&stack.master, &format!("Flapping {round}"), 1, usize::from(round % 3 == 0)).await;
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    };
    tokio::join!(sites.wan.flap(Duration::from_secs(1), Duration::from_secs(3), flapping()), sending);
    assert!(sites.wan.refused() + sites.wan.connections() > 3, "the links reconnected through the flaps");
    check(&stack, writers, "multi-site-link-flapping", Utc::now()).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn either_broker_killed_under_writers_loses_and_duplicates_nothing() {
    let _turn = take_turn().await;
    let sites = Sites::start().await;
    let stack = sites.stack("lille").await;

    // The site's broker dies (kill -9) and starts again on its data: its
    // shovels are durable parameters and come back with it, and what waited
    // in its link queues (persistent, confirmed) crosses once.
    let (writers, sent) = traffic(&stack).await;
    sites.site_broker.kill().await;
    during(&stack, &sent).await;
    tokio::time::sleep(killed()).await; // holds the fault, waits for nothing
    sites.site_broker.restart().await;
    check(&stack, writers, "multi-site-site-broker-kill", Utc::now()).await;
    wait_for_links_running(&stack.slaves[0]).await;

    // The master's broker dies: the shovels on the site reconnect to it.
    let (writers, sent) = traffic(&stack).await;
    sites.hq_broker.kill().await;
    during(&stack, &sent).await;
    tokio::time::sleep(killed()).await; // holds the fault, waits for nothing
    sites.hq_broker.restart().await;
    check(&stack, writers, "multi-site-master-broker-kill", Utc::now()).await;
    wait_for_links_running(&stack.slaves[0]).await;
    assert_eq!(shovels(&sites.site_broker).await.len(), 3, "no link was added or lost");
    stack.stop().await;
}

/// The sum of the slave's `rampart_link_repairs_total` samples.
async fn link_repairs(slave: &TestServer) -> f64 {
    slave
        .metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("rampart_link_repairs_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_or_held_link_under_writers_loses_and_duplicates_nothing() {
    let _turn = take_turn().await;
    let sites = Sites::start().await;
    let stack = sites.stack("vannes").await;
    let slave = &stack.slaves[0];

    // Slow: every chunk waits 200 ms each way, for the fault's length and
    // until everything has settled across it.
    let (writers, sent) = traffic(&stack).await;
    sites.wan.slow(LATENCY);
    during(&stack, &sent).await;
    tokio::time::sleep(degraded()).await; // holds the fault, waits for nothing
    check(&stack, writers, "multi-site-link-slow", Utc::now()).await;
    sites.wan.restore();
    assert_eq!(link_repairs(slave).await, 0.0, "a slow link is not broken: nothing to repair");

    // Held: the connections stay open and no byte crosses (a route that
    // black-holes packets). The outbound links report running while the
    // messages waiting on the slave's side pile up; the link keeper restarts
    // them (and a restart cannot cross either until the hold ends).
    let (writers, sent) = traffic(&stack).await;
    sites.wan.hold();
    during(&stack, &sent).await;
    wait_for("the link keeper to restart a held link", || async { (link_repairs(slave).await > 0.0).then_some(()) })
        .await;
    let links = slave.get_ok("/api/replication").await["links"].clone();
    println!("links while held, after a repair: {links}");
    tokio::time::sleep(degraded()).await; // holds the fault, waits for nothing
    sites.wan.restore();
    check(&stack, writers, "multi-site-link-held", Utc::now()).await;
    wait_for_links_running(slave).await;
    println!(
        "link repairs: {}",
        slave.metrics().await.lines().filter(|l| l.starts_with("rampart_link_repairs")).collect::<Vec<_>>().join("; ")
    );
    stack.stop().await;
}
