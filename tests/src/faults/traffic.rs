//! The traffic of the fault scenarios.
//!
//! A [`Stack`] is a master and its slaves on whatever broker and database
//! their options name, with the checker's history installed before the
//! first registration. [`fan_out`] sends policies and tasks to every slave,
//! [`Writers`] change each slave's rows from several connections at once
//! (updates, detections, deletions, new endpoints) until stopped, and
//! [`settle`] (in [`super::settle`]) waits for it to end.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::{task::JoinHandle, time::Instant};

pub use super::settle::{settle, SETTLE};
use crate::{checker, hierarchy, ServerOptions, TestServer};

/// Slaves that replicate every second in batches of 500 rows: the fault
/// always meets batches in flight.
pub const FAST_REPLICATION: &str =
    "<ReplicationInterval>1</ReplicationInterval><ReplicationBatchSize>500</ReplicationBatchSize>";

/// A master and its slaves.
pub struct Stack {
    pub master: TestServer,
    pub slaves: Vec<TestServer>,
}

impl Stack {
    /// Starts the master, then a stand-alone per name (`site` adjusts its
    /// options: database, extra XML) with `endpoints` computers, installs
    /// the checker, and registers each stand-alone.
    pub async fn start(
        master: ServerOptions,
        names: &[&str],
        endpoints: i64,
        site: impl Fn(&mut ServerOptions),
    ) -> Self {
        let master = TestServer::spawn(master).await;
        let mut slaves = Vec::new();
        for name in names {
            let mut options = ServerOptions::site(name, &master.options.namespace);
            options.amqp_url = master.options.amqp_url.clone();
            site(&mut options);
            let slave = TestServer::spawn(options).await;
            hierarchy::insert_endpoints(&slave, name, endpoints).await;
            slaves.push(slave);
        }
        let stack = Self { master, slaves };
        checker::install(&stack.master, &stack.slave_refs()).await;
        for slave in &stack.slaves {
            hierarchy::register(&stack.master, slave).await;
        }
        stack
    }

    pub fn slave_refs(&self) -> Vec<&TestServer> {
        self.slaves.iter().collect()
    }

    /// Every queue a consumer of this stack reads.
    pub fn consumed_queues(&self) -> Vec<String> {
        let t = self.master.topology();
        let mut queues = vec![t.master_status_queue(), t.master_replication_queue(), t.master_live_replication_queue()];
        for s in &self.slaves {
            queues.push(t.site_inbox(&s.options.instance));
            queues.push(t.slave_commands_queue(&s.options.instance));
        }
        queues
    }

    /// Waits until the stack has settled, then runs the checker.
    pub async fn settle_and_check(&self, scenario: &str, healed_at: DateTime<Utc>) -> checker::Report {
        settle(&self.master, &self.slave_refs()).await;
        checker::check(scenario, healed_at, &self.master, &self.slave_refs()).await
    }

    /// No slave needed a new snapshot: replication went on from its watermark.
    pub async fn assert_one_epoch(&self) {
        let slaves = self.master.get_ok("/api/slaves").await;
        for s in slaves.as_array().expect("a slave list") {
            assert_eq!(s["replication"]["epoch"], 1, "a slave started over with a full snapshot: {s}");
        }
    }

    /// Waits until every slave has answered for everything in `sent`
    /// (its receipts are no longer pending).
    pub async fn wait_for_receipts(&self, sent: &FanOut) {
        let names: Vec<&str> = self.slaves.iter().map(|s| s.options.instance.as_str()).collect();
        for path in sent.policies.iter().chain(&sent.tasks) {
            hierarchy::wait_for_receipts(
                &self.master,
                path,
                &names,
                &format!("every slave to answer for {path}"),
                |r| r["state"] != "pending",
            )
            .await;
        }
    }

    /// Waits until the master's copy of every slave holds at least `rows` rows.
    pub async fn wait_for_copies(&self, rows: i64) {
        for slave in &self.slaves {
            let name = slave.options.instance.clone();
            crate::wait_for(&format!("{rows} rows of {name} copied to the master"), || async {
                (copied_rows(&self.master, &name).await >= rows).then_some(())
            })
            .await;
        }
    }

    /// Waits until the master has applied a batch of every slave since this
    /// call (replication is moving). Each pass ends with a caught-up batch,
    /// rows or not, every `ReplicationInterval`; a row count would stop
    /// growing once a slave had caught up while another was waited for.
    pub async fn wait_for_copies_to_grow(&self) {
        let client = self.master.state.pool.get().await.expect("a master connection");
        let since: DateTime<Utc> = client.query_one("SELECT now()", &[]).await.expect("the master's clock").get(0);
        for slave in &self.slaves {
            let name = slave.options.instance.clone();
            crate::wait_for(&format!("{name}'s replication to move"), || async {
                let row = client
                    .query_one("SELECT replicated_at FROM slaves WHERE id = $1", &[&name])
                    .await
                    .expect("the slave's replication state");
                let applied: Option<DateTime<Utc>> = row.get(0);
                applied.is_some_and(|at| at > since).then_some(())
            })
            .await;
        }
    }

    pub async fn stop(self) {
        checker::uninstall(&self.slave_refs()).await;
        for slave in self.slaves {
            slave.stop(&[]).await;
        }
        self.master.stop(&[]).await;
    }
}

/// What [`fan_out`] created: the API paths of the policies and tasks.
#[derive(Clone, Debug, Default)]
pub struct FanOut {
    pub policies: Vec<String>,
    pub tasks: Vec<String>,
}

/// Creates `policies` policies and `tasks` quick scans for every slave.
pub async fn fan_out(master: &TestServer, label: &str, policies: usize, tasks: usize) -> FanOut {
    let mut sent = FanOut::default();
    for n in 0..policies {
        let body = json!({"name": format!("{label} {n}"), "settings": {"scan_schedule": "daily 02:00"}, "target": {"slaves": "all"}});
        let (status, policy) = master.post("/api/policies", body).await;
        assert_eq!(status, 201, "{policy}");
        sent.policies.push(format!("/api/policies/{}", policy["id"].as_str().expect("a policy id")));
    }
    for _ in 0..tasks {
        let (status, task) =
            master.post("/api/tasks", json!({"kind": "quick_scan", "target": {"slaves": "all"}})).await;
        assert_eq!(status, 201, "{task}");
        sent.tasks.push(format!("/api/tasks/{}", task["id"].as_str().expect("a task id")));
    }
    sent
}

/// Edits every policy of `sent` once (a new version for every slave).
pub async fn edit_policies(master: &TestServer, sent: &FanOut, realtime: bool) {
    for path in &sent.policies {
        let (status, body) = master
            .call(reqwest::Method::PATCH, path, Some(json!({"settings": {"realtime_protection": realtime}})))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Writers changing one slave's rows from several connections at once.
pub struct Writers {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<u64>>,
}

impl Writers {
    /// `connections` writers on `slave`'s database, each running small
    /// transactions (at most `max_each`, and for at most two minutes) until
    /// [`Writers::finish`].
    pub fn start(slave: &TestServer, connections: u64, max_each: u64) -> Self {
        Self::spawn(slave.options.database_url(), &slave.options.instance, connections, max_each, true)
    }

    /// Like [`Writers::start`], with updates and detections only: no row is
    /// deleted, so the slave prunes no tombstone (for scenarios that move
    /// the master's watermark back).
    pub fn updates_only(slave: &TestServer, connections: u64, max_each: u64) -> Self {
        Self::spawn(slave.options.database_url(), &slave.options.instance, connections, max_each, false)
    }

    /// Writers straight on a database (its server may be offline).
    pub fn spawn(url: String, site: &str, connections: u64, max_each: u64, deletions: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..connections)
            .map(|w| tokio::spawn(write(url.clone(), site.to_owned(), w, max_each, deletions, stop.clone())))
            .collect();
        Self { stop, handles }
    }

    /// Stops the writers; returns how many transactions they committed.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.complete().await
    }

    /// Waits until every writer has committed all its transactions (at most
    /// two minutes); returns how many they committed.
    pub async fn complete(self) -> u64 {
        let mut total = 0;
        for handle in self.handles {
            total += tokio::time::timeout(Duration::from_secs(150), handle)
                .await
                .expect("a writer stops in time")
                .expect("a writer failed");
        }
        total
    }
}

/// One writer: updates two endpoints per transaction; every 10th adds a
/// detection, every 25th deletes an endpoint and enrolls a new one. Like
/// the agent inbox it takes the fleet lock shared first.
async fn write(url: String, site: String, writer: u64, max: u64, deletions: bool, stop: Arc<AtomicBool>) -> u64 {
    let pool = rampart_shared::db::pool(&url, 2).expect("a writer's pool");
    let mut client = pool.get().await.expect("a writer connects");
    let ids: Vec<String> = client
        .query("SELECT id FROM endpoints ORDER BY id", &[])
        .await
        .expect("endpoint ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let mut done = 0;
    while done < max && !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let n = done * 7 + writer * 31;
        let mut pair = [ids[(n as usize) % ids.len()].clone(), ids[(n as usize * 13 + 5) % ids.len()].clone()];
        pair.sort();
        let tx = client.transaction().await.expect("a writer transaction");
        // Endpoint writers queue behind fleet-wide updates (a policy for
        // every endpoint) as the agent inbox does, rather than deadlock.
        rampart_server::policies::lock_fleet_shared(&tx).await.expect("the fleet lock");
        for id in &pair {
            tx.execute("UPDATE endpoints SET active_threats = active_threats + 1 WHERE id = $1", &[id])
                .await
                .expect("an update");
        }
        if done % 10 == 0 {
            tx.execute(
                "INSERT INTO detections (detection_id, endpoint_id, malware, path, action, detected_at)
                 VALUES (gen_random_uuid(), $1, 'EICAR-Test', 'C:\\Users\\x\\eicar.com', 'quarantined', now())",
                &[&pair[0]],
            )
            .await
            .expect("a detection");
        }
        if deletions && done % 25 == 0 {
            tx.execute("DELETE FROM endpoints WHERE id = $1", &[&pair[1]]).await.expect("a deletion");
            let new_id = format!("{site}-w{writer}-{run}-{done}");
            tx.execute(
                "INSERT INTO endpoints (id, hostname, ip, os, agent_version, signatures_version, signatures_date,
                                        realtime_protection, status, last_seen)
                 VALUES ($1, $1, '10.0.0.2', 'Windows 11', '1.0', '2026.11.1', current_date, true, 'protected', now())",
                &[&new_id],
            )
            .await
            .expect("a new endpoint");
        }
        tx.commit().await.expect("a writer commit");
        done += 1;
        // Pacing, not synchronisation: the writers must still be writing
        // when the fault comes, without taking both cores.
        tokio::time::sleep(Duration::from_millis(4)).await;
    }
    done
}

/// How much of a slave's data the master's copy holds (rows, live or deleted).
pub async fn copied_rows(master: &TestServer, slave: &str) -> i64 {
    let client = master.state.pool.get().await.expect("a master connection");
    client
        .query_one("SELECT count(*) FROM replica_rows WHERE slave_id = $1", &[&slave])
        .await
        .expect("copy size")
        .get(0)
}

/// Rows waiting in `server`'s outbox (written, not yet confirmed by the broker).
pub async fn outbox_depth(server: &TestServer) -> i64 {
    let client = server.state.pool.get().await.expect("a database connection");
    rampart_server::outbox::depth(&client).await.expect("the outbox depth")
}
