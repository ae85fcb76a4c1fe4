//! Helpers for tests of a master and its slaves: one namespace, a master,
//! and stand-alones registered to it through the real :7073 API.

use serde_json::{json, Value};

use crate::{wait_for, ServerOptions, TestServer};

/// A master and its slaves, all in one fresh namespace.
pub struct Hierarchy {
    pub master: TestServer,
    pub slaves: Vec<TestServer>,
}

impl Hierarchy {
    /// Starts a master and `names.len()` stand-alones, and registers each.
    pub async fn start(names: &[&str]) -> Self {
        let master = TestServer::spawn(ServerOptions::master()).await;
        let mut slaves = Vec::new();
        for name in names {
            let slave = TestServer::spawn(ServerOptions::site(name, &master.options.namespace)).await;
            register(&master, &slave).await;
            slaves.push(slave);
        }
        Self { master, slaves }
    }

    pub async fn stop(self) {
        for slave in self.slaves {
            slave.stop(&[]).await;
        }
        self.master.stop(&[]).await;
    }
}

/// A fresh registration token from `master`.
pub async fn token(master: &TestServer) -> String {
    let (status, body) = master.post("/api/registration-tokens", json!({})).await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("a token").to_owned()
}

/// Registers `slave` to `master`, which must succeed.
pub async fn register(master: &TestServer, slave: &TestServer) {
    let token = token(master).await;
    let (status, body) =
        slave.post("/api/hierarchy/register", json!({"master": master.address(), "token": token})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "slave");
    assert_eq!(body["master"]["id"], master.options.instance.as_str());
}

/// The receipt of `slave` in a policy or task shown by the master.
pub fn receipt<'a>(object: &'a Value, slave: &str) -> Option<&'a Value> {
    object["slaves"].as_array()?.iter().find(|r| r["slave"] == slave)
}

/// Waits until the master's `path` (a policy or task) satisfies `done` for every slave named.
pub async fn wait_for_receipts(
    master: &TestServer,
    path: &str,
    slaves: &[&str],
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, || async {
        let object = master.get_ok(path).await;
        slaves.iter().all(|s| receipt(&object, s).is_some_and(&done)).then_some(object)
    })
    .await
}

/// The master's record of `slave`'s replication (`replication` of `GET /api/slaves/{id}`).
pub async fn replication_of(master: &TestServer, slave: &str) -> Value {
    master.get_ok(&format!("/api/slaves/{slave}")).await["replication"].clone()
}

/// Waits until the master's copy of `slave` holds `count` endpoints.
pub async fn wait_for_replicated_endpoints(master: &TestServer, slave: &str, count: i64) -> Value {
    wait_for(&format!("{count} endpoints of {slave} replicated to the master"), || async {
        let replication = replication_of(master, slave).await;
        (replication["replicated_endpoints"] == count).then_some(replication)
    })
    .await
}

/// Asks the master to verify `slave` and waits for the finished verification.
pub async fn verify(master: &TestServer, slave: &str) -> Value {
    let (status, body) = master.post("/api/verifications", json!({"slave": slave})).await;
    assert_eq!(status, 202, "{body}");
    let id = body["verifications"][0]["id"].as_str().expect("a verification id").to_owned();
    wait_for(&format!("the verification of {slave}"), || async {
        let v = master.get_ok(&format!("/api/verifications/{id}")).await;
        (v["state"] == "finished").then_some(v)
    })
    .await
}

/// Inserts `count` endpoints straight into a site's database (as enrolled
/// computers), ids `<prefix>-00000`...
pub async fn insert_endpoints(site: &TestServer, prefix: &str, count: i64) {
    let client = site.state.pool.get().await.expect("a database connection");
    client
        .execute(
            "INSERT INTO endpoints (id, hostname, ip, os, agent_version, signatures_version, signatures_date,
                                    realtime_protection, status, last_seen)
             SELECT format('%s-%s', $1::text, lpad(n::text, 5, '0')), format('pc-%s', n), '10.0.0.1', 'Windows 11', '1.0',
                    '2026.11.1', current_date, true, 'protected', now()
               FROM generate_series(0, $2::bigint - 1) AS n",
            &[&prefix, &count],
        )
        .await
        .expect("endpoints inserted");
}

/// One writer connection to a site's database, for tests of change capture
/// under concurrent writes. Each transaction adds a threat to the endpoints
/// it names, in the order given (sorted, so writers never deadlock), and when
/// its flag is set lingers 5 ms before commit so sequence numbers commit out
/// of order. Returns the rows updated.
pub async fn add_threats(url: String, transactions: impl IntoIterator<Item = (Vec<String>, bool)>) -> u64 {
    let mut client = crate::connect_database(&url).await;
    let mut updates = 0;
    for (ids, linger) in transactions {
        let tx = client.transaction().await.unwrap();
        for id in &ids {
            updates += tx
                .execute("UPDATE endpoints SET active_threats = active_threats + 1 WHERE id = $1", &[id])
                .await
                .unwrap();
        }
        if linger {
            tx.execute("SELECT pg_sleep(0.005)", &[]).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    updates
}
