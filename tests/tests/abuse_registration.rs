//! Registration abuse on the master's `POST /api/slaves/register` (port
//! 7073, no bearer token: the registration token is the credential),
//! called raw: garbage and oversized bodies, missing or mistyped fields,
//! unknown, foreign, expired and reused tokens, a slave id that is invalid
//! or the master's own, another namespace, and one token raced by five
//! callers. Each refusal is a JSON 4xx that says why, and nothing is
//! issued: no slave row, no key, no command queue, and a token a refused
//! attempt presented is still unused. (The stand-alone's side of refusals
//! is in `hierarchy_trust.rs`.)

use rampart_shared::hierarchy::REGISTER_PATH;
use rampart_tests::{
    abuse::{changed, request, snapshot, Answer, Auth},
    hierarchy::token,
    queue_exists, wait_for, ServerOptions, TestServer,
};
use reqwest::Method;
use serde_json::{json, Value};

fn registration(token: &str, slave: &str, namespace: &str) -> Value {
    json!({"token": token, "slave_id": slave, "namespace": namespace, "version": "0.1.0",
           "heartbeat": {"version": "0.1.0", "endpoints": 0, "license": null}})
}

async fn register_raw(master: &TestServer, content_type: Option<&str>, body: Vec<u8>) -> Answer {
    request(master, Method::POST, REGISTER_PATH, Auth::None, content_type, Some(body)).await
}

async fn register_json(master: &TestServer, body: &Value) -> Answer {
    register_raw(master, Some("application/json"), serde_json::to_vec(body).unwrap()).await
}

/// Asserts a refusal that issued nothing: status, words, no key in the answer.
fn refused(what: &str, answer: &Answer, status: u16, words: &str) {
    assert_eq!(answer.status.as_u16(), status, "{what}: {}", answer.body);
    assert!(answer.message().contains(words), "{what}: expected '{words}' in {}", answer.body);
    assert!(
        answer.body.get("slave_key").is_none() && answer.body.get("command_key").is_none(),
        "{what}: {}",
        answer.body
    );
}

async fn token_state(master: &TestServer, id: &str) -> Value {
    let list = master.get_ok("/api/registration-tokens").await;
    list.as_array().unwrap().iter().find(|t| t["id"] == id).cloned().expect("the token is listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_registrations_issue_nothing_and_leave_the_token_unused() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let ns = master.options.namespace.clone();
    let other = TestServer::spawn(ServerOptions::master()).await; // another master, another namespace
    let (status, good) = master.post("/api/registration-tokens", json!({})).await;
    assert_eq!(status, 201, "{good}");
    let good_token = good["token"].as_str().unwrap().to_owned();
    let (_, expiring) = master.post("/api/registration-tokens", json!({"expires_in_seconds": 1})).await;
    let expiring_id = expiring["id"].as_str().unwrap().to_owned();
    wait_for("the short token to expire", || async {
        (token_state(&master, &expiring_id).await["state"] == "expired").then_some(())
    })
    .await;
    let foreign = token(&other).await;
    let before = snapshot(&master.state.pool).await;

    let valid = serde_json::to_vec(&registration(&good_token, "paris", &ns)).unwrap();
    let with = |field: &str, value: Value| {
        let mut body = registration(&good_token, "paris", &ns);
        body[field] = value;
        body
    };
    let cases: Vec<(&str, Answer, u16, &str)> = vec![
        ("garbage", register_raw(&master, Some("application/json"), b"\x00\xffnot json".to_vec()).await, 400, "not valid JSON"),
        ("an empty body", register_raw(&master, Some("application/json"), Vec::new()).await, 400, "not valid JSON"),
        ("no content type", register_raw(&master, None, valid.clone()).await, 415, "application/json"),
        ("form encoded", register_raw(&master, Some("application/x-www-form-urlencoded"), b"token=x".to_vec()).await, 415, "application/json"),
        ("3 MiB", register_raw(&master, Some("application/json"), vec![b' '; 3 * 1024 * 1024]).await, 413, "limit"),
        ("an array", register_raw(&master, Some("application/json"), b"[\"token\"]".to_vec()).await, 422, "JSON object"),
        ("no slave_id", register_json(&master, &json!({"token": good_token, "namespace": ns, "version": "1", "heartbeat": {"version": "1", "endpoints": 0, "license": null}})).await, 422, "slave_id"),
        ("a numeric token", register_json(&master, &with("token", json!(42))).await, 422, "token"),
        ("an unknown field", register_json(&master, &with("admin", json!(true))).await, 422, "admin"),
        ("a heartbeat of the wrong shape", register_json(&master, &with("heartbeat", json!({"endpoints": "many"}))).await, 422, "heartbeat"),
        ("a negative endpoint count", register_json(&master, &with("heartbeat", json!({"version": "0.1.0", "endpoints": -5, "license": null}))).await, 422, "heartbeat.endpoints"),
        ("negative seats", register_json(&master, &with("heartbeat", json!({"version": "0.1.0", "endpoints": 1,
            "license": {"seats": -1, "used": 0, "expires_on": "2030-01-01"}}))).await, 422, "heartbeat.license"),
        ("a 10 KB version", register_json(&master, &with("version", json!("9".repeat(10_000)))).await, 422, "version"),
        ("a NUL in the slave id", register_json(&master, &with("slave_id", json!("par\u{0}is"))).await, 422, "NUL"),
        ("an unknown token", register_json(&master, &registration("rrt_0123456789abcdef", "paris", &ns)).await, 403, "not valid"),
        ("an empty token", register_json(&master, &registration("", "paris", &ns)).await, 403, "not valid"),
        ("another master's token", register_json(&master, &registration(&foreign, "paris", &ns)).await, 403, "not valid"),
        ("an expired token", register_json(&master, &registration(expiring["token"].as_str().unwrap(), "paris", &ns)).await, 403, "expired"),
        ("another namespace", register_json(&master, &registration(&good_token, "paris", "t_elsewhere")).await, 409, "namespace"),
        ("a bad slave id", register_json(&master, &registration(&good_token, "Paris Site", &ns)).await, 422, "slave_id"),
        ("the master's own name", register_json(&master, &registration(&good_token, "hq", &ns)).await, 409, "own name"),
    ];
    for (what, answer, status, words) in &cases {
        refused(what, answer, *status, words);
    }
    let after = snapshot(&master.state.pool).await;
    assert!(changed(&before, &after).is_empty(), "refused registrations changed {:?}", changed(&before, &after));
    assert_eq!(token_state(&master, good["id"].as_str().unwrap()).await["state"], "unused");
    for id in ["paris", "hq"] {
        assert!(!queue_exists(&master.topology().slave_commands_queue(id)).await, "a command queue for {id}");
    }

    // The token the refused attempts presented still works, once: a real stand-alone joins with it.
    let paris = TestServer::spawn(ServerOptions::site("paris", &ns)).await;
    let (status, joined) =
        paris.post("/api/hierarchy/register", json!({"master": master.address(), "token": good_token})).await;
    assert_eq!(status, 200, "{joined}");
    let again = register_json(&master, &registration(&good_token, "lyon", &ns)).await;
    refused("a used token", &again, 403, "already used (by 'paris'");
    let twice = register_json(&master, &registration(&token(&master).await, "paris", &ns)).await;
    refused("paris again", &twice, 409, "already registered");
    let slaves = master.get_ok("/api/slaves").await;
    assert_eq!(slaves.as_array().unwrap().iter().map(|s| s["id"].clone()).collect::<Vec<_>>(), vec![json!("paris")]);
    assert!(!queue_exists(&master.topology().slave_commands_queue("lyon")).await);

    paris.stop(&[]).await;
    other.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_token_raced_by_five_callers_registers_one_slave() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let ns = master.options.namespace.clone();
    let raced = token(&master).await;
    let ids: Vec<String> = (1..=5).map(|i| format!("racer-{i}")).collect();
    let bodies: Vec<Value> = ids.iter().map(|id| registration(&raced, id, &ns)).collect();
    let calls = bodies.iter().map(|body| register_json(&master, body));
    let answers = futures_util::future::join_all(calls).await;
    let winners: Vec<&String> = ids.iter().zip(&answers).filter(|(_, a)| a.status == 200).map(|(id, _)| id).collect();
    assert_eq!(winners.len(), 1, "exactly one registration: {answers:#?}");
    for (id, answer) in ids.iter().zip(&answers).filter(|(_, a)| a.status != 200) {
        refused(id, answer, 403, "already used");
    }
    assert!(answers.iter().find(|a| a.status == 200).unwrap().body["slave_key"].is_string());
    let slaves = master.get_ok("/api/slaves").await;
    assert_eq!(slaves.as_array().unwrap().len(), 1, "{slaves}");
    for id in &ids {
        assert_eq!(
            queue_exists(&master.topology().slave_commands_queue(id)).await,
            Some(id) == winners.first().copied(),
            "queue of {id}"
        );
    }
    let queue = master.topology().slave_commands_queue(winners[0]);
    master.stop(&[queue]).await;
}
