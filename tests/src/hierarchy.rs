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
    let (status, body) = slave
        .post("/api/hierarchy/register", json!({"master": master.address(), "token": token}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["role"], "slave");
    assert_eq!(body["master"]["id"], master.options.instance.as_str());
}

/// The receipt of `slave` in a policy or task shown by the master.
pub fn receipt<'a>(object: &'a Value, slave: &str) -> Option<&'a Value> {
    object["slaves"].as_array()?.iter().find(|r| r["slave"] == slave)
}

/// Waits until the master's `path` (a policy or task) satisfies `done` for every slave named.
pub async fn wait_for_receipts(master: &TestServer, path: &str, slaves: &[&str], what: &str, done: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, || async {
        let object = master.get_ok(path).await;
        slaves
            .iter()
            .all(|s| receipt(&object, s).is_some_and(&done))
            .then_some(object)
    })
    .await
}
