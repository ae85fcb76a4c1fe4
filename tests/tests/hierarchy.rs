//! A master and its slaves: fan-out of policies and tasks with receipts,
//! a slave that was offline catching up, and read-only master objects.

use rampart_shared::{
    amqp::publisher::Outgoing,
    hierarchy::{SlaveHeartbeat, SlaveReport},
    topology::Topology,
};
use rampart_tests::{
    hierarchy::{receipt, register, wait_for_receipts, Hierarchy},
    inject, queue_exists, wait_for, ServerOptions, TestAgent, TestServer,
};
use reqwest::Method;
use serde_json::json;

const SLAVES: [&str; 3] = ["paris", "lyon", "nice"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_fans_out_a_policy_and_a_scan_to_three_slaves() {
    let h = Hierarchy::start(&SLAVES).await;
    let agents: Vec<TestAgent> = h.slaves.iter().map(|s| TestAgent::spawn(s, 20, |_| {})).collect();
    for slave in &h.slaves {
        slave.wait_for_endpoints(20).await;
    }
    let listed = h.master.get_ok("/api/slaves").await;
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["lyon", "nice", "paris"]);
    assert!(listed.as_array().unwrap().iter().all(|s| s["state"] == "online" && s["version"].is_string()), "{listed}");

    // A policy for every slave reaches every endpoint, owned by the master.
    let (status, policy) = h
        .master
        .post("/api/policies", json!({"name": "HQ baseline", "settings": {"scan_schedule": "weekly sun 03:00"}, "target": {"slaves": "all"}}))
        .await;
    assert_eq!(status, 201, "{policy}");
    let path = format!("/api/policies/{}", policy["id"].as_str().unwrap());
    wait_for_receipts(&h.master, &path, &SLAVES, "the policy applied on all 60 endpoints", |r| {
        r["state"] == "applied" && r["version"] == 1 && r["endpoints"]["applied"] == 20
    })
    .await;
    for slave in &h.slaves {
        let seen = slave.get_ok(&path).await;
        assert_eq!(seen["owner"], "master", "{seen}");
        assert_eq!(seen["endpoints"]["applied"], 20, "{seen}");
        // Read-only on the slave.
        let (status, body) = slave.call(Method::PATCH, &path, Some(json!({"name": "mine"}))).await;
        assert_eq!(status, 409, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("owned by the master"), "{body}");
        assert_eq!(slave.delete(&path).await.0, 409);
    }

    // A new version replaces the old one everywhere.
    let (status, edited) =
        h.master.call(Method::PATCH, &path, Some(json!({"settings": {"realtime_protection": false}}))).await;
    assert_eq!((status.as_u16(), edited["version"].as_i64()), (200, Some(2)), "{edited}");
    wait_for_receipts(&h.master, &path, &SLAVES, "version 2 applied everywhere", |r| {
        r["state"] == "applied" && r["version"] == 2 && r["endpoints"]["applied"] == 20
    })
    .await;
    for slave in &h.slaves {
        let seen = slave.get_ok(&path).await;
        assert_eq!(
            (seen["version"].as_i64(), seen["settings"]["realtime_protection"].as_bool()),
            (Some(2), Some(false)),
            "{seen}"
        );
    }

    // A scan on every slave: progress reaches 100 %.
    let (status, task) = h.master.post("/api/tasks", json!({"kind": "quick_scan", "target": {"slaves": "all"}})).await;
    assert_eq!(status, 201, "{task}");
    let task_path = format!("/api/tasks/{}", task["id"].as_str().unwrap());
    wait_for_receipts(&h.master, &task_path, &SLAVES, "the scan finished on every slave", |r| {
        r["state"] == "applied" && r["progress"]["succeeded"] == 20
    })
    .await;
    let done = h.master.wait_for_field(&task_path, "state", "completed").await;
    assert_eq!(done["progress"]["total"], 60, "{done}");
    assert_eq!(done["progress"]["percent"], 100, "{done}");
    for slave in &h.slaves {
        let seen = slave.get_ok(&task_path).await;
        assert_eq!(
            (seen["owner"].as_str(), seen["progress"]["succeeded"].as_i64()),
            (Some("master"), Some(20)),
            "{seen}"
        );
        assert_eq!(slave.post(&format!("{task_path}/cancel"), json!({})).await.0, 409);
    }

    for agent in agents {
        agent.stop().await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slave_offline_during_fan_out_gets_everything_on_restart() {
    let mut h = Hierarchy::start(&["paris"]).await;
    let offline = h.slaves.pop().unwrap().halt().await;

    // Three versions of a policy and a task, all while the slave is down.
    let (_, policy) = h.master.post("/api/policies", json!({"name": "Remote", "target": {"slaves": ["paris"]}})).await;
    let path = format!("/api/policies/{}", policy["id"].as_str().unwrap());
    for n in 2..=3 {
        let (status, body) = h.master.call(Method::PATCH, &path, Some(json!({"name": format!("Remote v{n}")}))).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, task) = h.master.post("/api/tasks", json!({"kind": "update", "target": {"slaves": "all"}})).await;
    let task_path = format!("/api/tasks/{}", task["id"].as_str().unwrap());
    let pending = h.master.get_ok(&path).await;
    assert_eq!(receipt(&pending, "paris").unwrap()["state"], "pending", "{pending}");

    let slave = TestServer::spawn(offline).await;
    wait_for_receipts(&h.master, &path, &["paris"], "version 3 applied after the restart", |r| {
        r["state"] == "applied" && r["version"] == 3
    })
    .await;
    wait_for_receipts(&h.master, &task_path, &["paris"], "the task delivered after the restart", |r| {
        r["state"] == "applied"
    })
    .await;
    let seen = slave.get_ok(&path).await;
    assert_eq!((seen["version"].as_i64(), seen["name"].as_str()), (Some(3), Some("Remote v3")), "{seen}");
    let tasks = slave.get_ok("/api/tasks").await;
    assert_eq!(tasks.as_array().unwrap().iter().filter(|t| t["owner"] == "master").count(), 1, "{tasks}");

    // Removed by the master while offline: it leaves when it is back.
    let offline = slave.halt().await;
    let (status, body) = h.master.delete("/api/slaves/paris").await;
    assert_eq!((status.as_u16(), body["state"].as_str()), (200, Some("removing")), "{body}");
    let slave = TestServer::spawn(offline).await;
    slave.wait_for_field("/api/hierarchy", "role", "standalone").await;
    h.master.wait_for_field("/api/slaves/paris", "state", "removed").await;
    assert!(!queue_exists(&slave.topology().slave_commands_queue("paris")).await);
    let policies = slave.get_ok("/api/policies").await;
    assert!(policies.as_array().unwrap().iter().all(|p| p["owner"] == "local"), "{policies}");
    let gone = h.master.get_ok(&path).await;
    assert_eq!(receipt(&gone, "paris").unwrap()["state"], "cancelled", "{gone}");

    // A new Paris (fresh database, same name) registers and gets new work.
    slave.stop(&[]).await;
    let fresh = TestServer::spawn(ServerOptions::site("paris", &h.master.options.namespace)).await;
    register(&h.master, &fresh).await;
    let (_, again) = h.master.post("/api/policies", json!({"name": "Again", "target": {"slaves": "all"}})).await;
    let again_path = format!("/api/policies/{}", again["id"].as_str().unwrap());
    wait_for_receipts(&h.master, &again_path, &["paris"], "the new Paris to apply a new policy", |r| {
        r["state"] == "applied"
    })
    .await;

    h.slaves.push(fresh);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unregistering_from_either_side_leaves_both_consistent() {
    let h = Hierarchy::start(&["paris", "lyon"]).await;
    let agents: Vec<TestAgent> = h
        .slaves
        .iter()
        .map(|s| TestAgent::spawn(s, 10, |a| a.scan_duration = std::time::Duration::from_secs(300)))
        .collect();
    for slave in &h.slaves {
        slave.wait_for_endpoints(10).await;
    }
    let (paris, lyon) = (&h.slaves[0], &h.slaves[1]);
    let lyon_key = lyon.state.keyring.link().unwrap().slave_key;

    // Paris has its own policy for everything; the master's wins while it is a slave.
    let (_, local) = paris.post("/api/policies", json!({"name": "Paris own"})).await;
    let local_path = format!("/api/policies/{}", local["id"].as_str().unwrap());
    assert_eq!(paris.post(&format!("{local_path}/assignments"), json!({"target": "all"})).await.0, 200);
    let (_, policy) = h.master.post("/api/policies", json!({"name": "HQ", "target": {"slaves": "all"}})).await;
    let path = format!("/api/policies/{}", policy["id"].as_str().unwrap());
    wait_for_receipts(&h.master, &path, &["paris", "lyon"], "the master policy applied", |r| {
        r["state"] == "applied" && r["endpoints"]["assigned"] == 10
    })
    .await;
    assert_eq!(paris.get_ok(&local_path).await["endpoints"]["assigned"], 0);

    // A long scan in flight on both.
    let (_, task) = h.master.post("/api/tasks", json!({"kind": "full_scan", "target": {"slaves": "all"}})).await;
    let task_path = format!("/api/tasks/{}", task["id"].as_str().unwrap());
    wait_for_receipts(&h.master, &task_path, &["paris", "lyon"], "the scan running", |r| {
        r["state"] == "delivered" && r["progress"]["total"] == 10
    })
    .await;

    // Paris leaves on its own.
    let (status, left) = paris.post("/api/hierarchy/unregister", json!({})).await;
    assert_eq!(status, 200, "{left}");
    assert_eq!(
        (left["role"].as_str(), left["removed_policies"].as_i64(), left["cancelled_tasks"].as_i64()),
        (Some("standalone"), Some(1), Some(1)),
        "{left}"
    );
    assert_eq!(paris.get(&path).await.0, 404);
    assert_eq!(paris.get(&task_path).await.0, 404);
    wait_for("the local policy to govern Paris again", || async {
        (paris.get_ok(&local_path).await["endpoints"]["assigned"] == 10).then_some(())
    })
    .await;
    wait_for_receipts(&h.master, &task_path, &["paris"], "Paris's scan reported cancelled", |r| {
        r["state"] == "cancelled"
    })
    .await;
    h.master.wait_for_field("/api/slaves/paris", "state", "removed").await;
    let queue = paris.topology().slave_commands_queue("paris");
    wait_for("Paris's command queue gone", || async { (!queue_exists(&queue).await).then_some(()) }).await;
    assert_eq!(paris.post("/api/hierarchy/unregister", json!({})).await.0, 409);

    // The master drops Lyon.
    let (status, body) = h.master.delete("/api/slaves/lyon").await;
    assert_eq!(status, 200, "{body}");
    lyon.wait_for_field("/api/hierarchy", "role", "standalone").await;
    h.master.wait_for_field("/api/slaves/lyon", "state", "removed").await;
    let task_now = h.master.get_ok(&task_path).await;
    assert_eq!(receipt(&task_now, "lyon").unwrap()["state"], "cancelled", "{task_now}");
    assert_eq!(lyon.get(&path).await.0, 404);
    let cancelled = wait_for("Lyon's endpoints to drop the scan", || async {
        let tasks = lyon.get_ok("/api/tasks").await;
        tasks.as_array().unwrap().is_empty().then_some(tasks)
    })
    .await;
    assert_eq!(cancelled, json!([]));

    // Whatever Lyon still sends with its old key is refused and recorded.
    let heartbeat = SlaveReport::Heartbeat(SlaveHeartbeat {
        version: "late".into(),
        endpoints: 1,
        license: None,
        replication: None,
        links: None,
    });
    let late = Outgoing::envelope(
        lyon.topology().status_exchange(),
        Topology::status_key("lyon", heartbeat.kind()),
        &heartbeat.to_envelope("lyon"),
        Some(&lyon_key),
    );
    // Lyon's own last messages (a heartbeat, a replication batch sent as it
    // was removed) may be refused too: the count grows by at least this one.
    let before = h.master.get_ok("/api/slaves/lyon").await["refused_messages"].as_i64().unwrap();
    inject(vec![late]).await;
    wait_for("the late heartbeat refused and recorded", || async {
        let refused = h.master.get_ok("/api/slaves/lyon").await["refused_messages"].as_i64()?;
        (refused > before).then_some(())
    })
    .await;

    for agent in agents {
        agent.stop().await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slave_leaving_while_the_master_is_down_is_recorded_when_it_is_back() {
    let mut h = Hierarchy::start(&["paris"]).await;
    let master_options = h.master.halt().await;
    let paris = &h.slaves[0];
    let (status, left) = paris.post("/api/hierarchy/unregister", json!({})).await;
    assert_eq!(status, 200, "{left}");
    assert_eq!(paris.get_ok("/api/hierarchy").await["role"], "standalone");

    h.master = TestServer::spawn(master_options).await;
    h.master.wait_for_field("/api/slaves/paris", "state", "removed").await;
    let queue = paris.topology().slave_commands_queue("paris");
    wait_for("Paris's command queue gone", || async { (!queue_exists(&queue).await).then_some(()) }).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_can_narrow_to_a_named_group_inside_each_slave() {
    let h = Hierarchy::start(&["paris", "lyon"]).await;
    let paris = &h.slaves[0];
    let agent = TestAgent::spawn(paris, 10, |_| {});
    paris.wait_for_endpoints(10).await;
    let (status, group) = paris.post("/api/virtual-groups", json!({"name": "Finance"})).await;
    assert_eq!(status, 201, "{group}");
    let members: Vec<String> = (1..=4).map(|n| format!("sim1-{n:05}")).collect();
    let (status, added) =
        paris.post(&format!("/api/virtual-groups/{}/members", group["id"]), json!({"endpoints": members})).await;
    assert_eq!(status, 200, "{added}");

    let (_, policy) = h
        .master
        .post(
            "/api/policies",
            json!({"name": "Finance lock-down", "target": {"slaves": "all", "virtual_group": "Finance"}}),
        )
        .await;
    let path = format!("/api/policies/{}", policy["id"].as_str().unwrap());
    let shown = wait_for_receipts(&h.master, &path, &["paris", "lyon"], "both slaves to answer", |r| {
        r["state"] == "applied" || r["state"] == "failed"
    })
    .await;
    let on_paris = receipt(&shown, "paris").unwrap();
    assert_eq!(
        (on_paris["state"].as_str(), on_paris["endpoints"]["assigned"].as_i64()),
        (Some("applied"), Some(4)),
        "{shown}"
    );
    let on_lyon = receipt(&shown, "lyon").unwrap();
    assert_eq!(on_lyon["state"], "failed", "{shown}");
    assert!(on_lyon["reason"].as_str().unwrap().contains("no virtual group named 'Finance'"), "{shown}");

    agent.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_can_narrow_to_a_named_network_group_inside_each_slave() {
    let h = Hierarchy::start(&["paris", "lyon"]).await;
    let (paris, lyon) = (&h.slaves[0], &h.slaves[1]);
    let agent = TestAgent::spawn(paris, 10, |_| {});
    paris.wait_for_endpoints(10).await;
    let (status, servers) = paris.post("/api/groups", json!({"name": "Servers", "parent_id": 1})).await;
    assert_eq!(status, 201, "{servers}");
    let moved: Vec<String> = (1..=3).map(|n| format!("sim1-{n:05}")).collect();
    for id in &moved {
        let (status, body) = paris.post(&format!("/api/endpoints/{id}/move"), json!({"group_id": servers["id"]})).await;
        assert_eq!(status, 200, "{body}");
    }
    // Two groups of that name on lyon (under different parents): the slave
    // cannot tell which is meant.
    let (status, branch) = lyon.post("/api/groups", json!({"name": "Branch", "parent_id": 1})).await;
    assert_eq!(status, 201, "{branch}");
    for parent in [json!(1), branch["id"].clone()] {
        let (status, body) = lyon.post("/api/groups", json!({"name": "Servers", "parent_id": parent})).await;
        assert_eq!(status, 201, "{body}");
    }

    let (status, policy) = h
        .master
        .post("/api/policies", json!({"name": "Servers baseline", "target": {"slaves": "all", "group": "Servers"}}))
        .await;
    assert_eq!(status, 201, "{policy}");
    let policy_id = policy["id"].as_str().unwrap().to_owned();
    let path = format!("/api/policies/{policy_id}");
    let shown = wait_for_receipts(&h.master, &path, &["paris", "lyon"], "both slaves to answer", |r| {
        (r["state"] == "applied" && r["endpoints"]["applied"] == 3) || r["state"] == "failed"
    })
    .await;
    let on_paris = receipt(&shown, "paris").unwrap();
    assert_eq!(
        (on_paris["state"].as_str(), on_paris["endpoints"]["assigned"].as_i64()),
        (Some("applied"), Some(3)),
        "{shown}"
    );
    let on_lyon = receipt(&shown, "lyon").unwrap();
    assert_eq!(on_lyon["state"], "failed", "{shown}");
    assert!(on_lyon["reason"].as_str().unwrap().contains("2 network groups are named 'Servers'"), "{shown}");

    // On paris only the computers of that group take the master's policy.
    for n in 1..=5 {
        let id = format!("sim1-{n:05}");
        let endpoint = paris.get_ok(&format!("/api/endpoints/{id}")).await;
        let has_it = endpoint["policy"]["id"] == policy_id.as_str();
        assert_eq!(has_it, moved.contains(&id), "{endpoint}");
    }

    agent.stop().await;
    h.stop().await;
}
