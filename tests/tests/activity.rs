//! The activity log written by the domain operations (issue 20, item 6):
//! each change made through the API appears with the operator who made it,
//! the object and a short before/after, in the transaction of the change
//! (a change the domain refuses records nothing); secrets (the license
//! key, the e-mail password, a registration token) never appear.

use rampart_shared::license::{License, VendorKey};
use rampart_tests::{
    hierarchy::register,
    operators::{call, signed_in},
    ServerOptions, TestAgent, TestServer,
};
use reqwest::Method;
use serde_json::{json, Value};

/// The entries of `operator`, oldest first.
async fn entries(server: &TestServer, operator: &str) -> Vec<Value> {
    let log = server.get_ok(&format!("/api/activity?operator={operator}")).await;
    let mut log = log.as_array().unwrap().clone();
    log.reverse();
    log.retain(|e| !e["action"].as_str().unwrap().starts_with("sign_in"));
    log
}

/// The one entry of `operator` with `action` on `object`.
fn find<'a>(log: &'a [Value], action: &str, object: &str) -> &'a Value {
    let found: Vec<&Value> = log.iter().filter(|e| e["action"] == action && e["object"] == object).collect();
    assert_eq!(found.len(), 1, "one {action} on {object} in {log:?}");
    found[0]
}

#[tokio::test]
async fn an_operators_changes_are_recorded_with_before_and_after() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let agent = TestAgent::spawn(&server, 2, |_| {});
    server.wait_for_endpoints(2).await;
    let erin = signed_in(&server, "erin", "operator").await;

    // Policies: create, edit, delete.
    let (status, policy) =
        call(&server, Some(&erin), Method::POST, "/api/policies", Some(json!({"name": "Strict"}))).await;
    assert_eq!(status, 201, "{policy}");
    let id = policy["id"].as_str().unwrap();
    let path = format!("/api/policies/{id}");
    let edit = json!({"settings": {"scan_schedule": "weekly sun 03:00"}});
    let (status, body) = call(&server, Some(&erin), Method::PATCH, &path, Some(edit)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&server, Some(&erin), Method::DELETE, &path, None).await;
    assert_eq!(status, 204);

    // Groups: create, rename.
    let (status, group) = call(&server, Some(&erin), Method::POST, "/api/groups", Some(json!({"name": "Lab"}))).await;
    assert_eq!(status, 201, "{group}");
    let group_path = format!("/api/groups/{}", group["id"]);
    let (status, body) = call(&server, Some(&erin), Method::PATCH, &group_path, Some(json!({"name": "Labs"}))).await;
    assert_eq!(status, 200, "{body}");

    // Tasks: create, cancel.
    let task = json!({"kind": "quick_scan", "target": {"all": true}});
    let (status, task) = call(&server, Some(&erin), Method::POST, "/api/tasks", Some(task)).await;
    assert_eq!(status, 201, "{task}");
    let task_id = task["id"].as_str().unwrap();
    let (status, body) = call(&server, Some(&erin), Method::POST, &format!("/api/tasks/{task_id}/cancel"), None).await;
    assert_eq!(status, 200, "{body}");

    let log = entries(&server, "erin").await;
    let object = format!("policy:{id}");
    let created = find(&log, "policy.create", &object);
    assert_eq!(created["after"]["name"], "Strict");
    assert_eq!(created["after"]["version"], 1);
    assert_eq!(created["before"], Value::Null);
    assert_eq!(created["address"], "127.0.0.1");
    assert_eq!(created["site"], server.options.instance);
    let edited = find(&log, "policy.edit", &object);
    assert_eq!(edited["before"], json!({"version": 1, "settings": {"scan_schedule": "daily 02:00"}}));
    assert_eq!(edited["after"], json!({"version": 2, "settings": {"scan_schedule": "weekly sun 03:00"}}));
    let deleted = find(&log, "policy.delete", &object);
    assert_eq!(deleted["before"]["version"], 2);
    assert_eq!(deleted["after"], Value::Null);
    let object = format!("group:{}", group["id"]);
    assert_eq!(find(&log, "group.create", &object)["after"]["name"], "Lab");
    let renamed = find(&log, "group.edit", &object);
    assert_eq!(
        (renamed["before"].clone(), renamed["after"].clone()),
        (json!({"name": "Lab"}), json!({"name": "Labs"}))
    );
    let object = format!("task:{task_id}");
    let started = find(&log, "task.create", &object);
    assert_eq!(started["after"]["kind"], "quick_scan");
    assert_eq!(started["after"]["target"]["all"], true);
    assert_eq!(started["after"]["endpoints"], 2);
    assert_eq!(find(&log, "task.cancel", &object)["after"]["state"], "cancelled");
    assert!(log.iter().all(|e| e["operator"] == "erin"));

    // Refused changes record nothing.
    let recorded = log.len();
    let unknown = format!("/api/policies/{}", uuid::Uuid::new_v4());
    let (status, _) = call(&server, Some(&erin), Method::PATCH, &unknown, Some(json!({"name": "x"}))).await;
    assert_eq!(status, 404);
    let bad = json!({"settings": {"scan_schedule": "whenever"}});
    let (status, policy) = call(&server, Some(&erin), Method::POST, "/api/policies", Some(json!({"name": "P"}))).await;
    assert_eq!(status, 201);
    let path = format!("/api/policies/{}", policy["id"].as_str().unwrap());
    let (status, _) = call(&server, Some(&erin), Method::PATCH, &path, Some(bad)).await;
    assert_eq!(status, 422);
    let (status, _) = call(&server, Some(&erin), Method::DELETE, "/api/groups/1", None).await;
    assert_eq!(status, 409);
    let (status, _) =
        call(&server, Some(&erin), Method::PATCH, &group_path, Some(json!({"subnet": "10.0.0.1/8"}))).await;
    assert_eq!(status, 422);
    let nothing = json!({"kind": "quick_scan", "target": {"endpoints": ["nowhere"]}});
    let (status, _) = call(&server, Some(&erin), Method::POST, "/api/tasks", Some(nothing)).await;
    assert_eq!(status, 422);
    let log = entries(&server, "erin").await;
    assert_eq!(log.len(), recorded + 1, "only the policy creation: {:?}", &log[recorded..]);
    agent.stop().await;
    server.stop(&[]).await;
}

#[tokio::test]
async fn administrators_changes_are_recorded_without_their_secrets() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let root = signed_in(&server, "root", "administrator").await;

    let vendor = VendorKey::from_hex(include_str!("../../ops/license/vendor-dev.key")).unwrap();
    let today = chrono::Utc::now().date_naive();
    let license_id = uuid::Uuid::new_v4();
    let expires_on = today + chrono::Days::new(30);
    let key = License { license_id, customer: "Test".into(), seats: 25, issued_on: today, expires_on }.issue(&vendor);
    let (status, body) = call(&server, Some(&root), Method::PUT, "/api/license", Some(json!({"key": key}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) =
        call(&server, Some(&root), Method::PUT, "/api/license", Some(json!({"key": "RAMPART1.e30.c2ln"}))).await;
    assert_eq!(status, 422);

    let email = json!({"smtp_host": "mail.example.com", "smtp_port": 25, "username": "u", "password": "hunter2-secret",
                       "from": "a@example.com", "to": ["b@example.com"]});
    let (status, body) = call(&server, Some(&root), Method::PUT, "/api/settings/email", Some(email.clone())).await;
    assert_eq!(status, 200, "{body}");
    let mut second = email.clone();
    second["smtp_host"] = json!("smtp.example.com");
    second.as_object_mut().unwrap().remove("password");
    let (status, body) = call(&server, Some(&root), Method::PUT, "/api/settings/email", Some(second)).await;
    assert_eq!(status, 200, "{body}");

    let (status, _) =
        call(&server, Some(&root), Method::PUT, "/api/settings/auto-deploy", Some(json!({"enabled": true}))).await;
    assert_eq!(status, 200);

    let log = entries(&server, "root").await;
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(&key) && !text.contains("hunter2"), "a secret in the log: {text}");
    let installed = find(&log, "license.install", "license");
    assert_eq!(installed["after"]["license_id"], license_id.to_string());
    assert_eq!(installed["after"]["seats"], 25);
    assert_eq!(installed["before"], Value::Null);
    let saves: Vec<&Value> = log.iter().filter(|e| e["action"] == "email_settings.save").collect();
    assert_eq!(saves.len(), 2, "{log:?}");
    assert_eq!(saves[0]["after"]["smtp_host"], "mail.example.com");
    assert_eq!(saves[0]["after"]["password_changed"], true);
    assert_eq!(saves[1]["before"], json!({"smtp_host": "mail.example.com"}));
    assert_eq!(saves[1]["after"], json!({"smtp_host": "smtp.example.com"}));
    let switched = find(&log, "auto_deploy.set", "auto_deploy");
    assert_eq!(
        (switched["before"].clone(), switched["after"].clone()),
        (json!({"enabled": false}), json!({"enabled": true}))
    );
    assert_eq!(log.len(), 4, "the refused license records nothing: {log:?}");
    server.stop(&[]).await;
}

#[tokio::test]
async fn hierarchy_changes_on_a_master_are_recorded() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let site = TestServer::spawn(ServerOptions::site("nantes", &master.options.namespace)).await;
    let root = signed_in(&master, "root", "administrator").await;

    let (status, issued) =
        call(&master, Some(&root), Method::POST, "/api/registration-tokens", Some(json!({"expires_in_seconds": 600})))
            .await;
    assert_eq!(status, 201, "{issued}");
    register(&master, &site).await;
    let (status, body) = call(&master, Some(&root), Method::POST, "/api/replication/now", Some(json!({}))).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = call(&master, Some(&root), Method::POST, "/api/verifications", Some(json!({}))).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = call(&master, Some(&root), Method::DELETE, "/api/slaves/nantes?purge=true", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&master, Some(&root), Method::DELETE, "/api/slaves/nowhere", None).await;
    assert_eq!(status, 404);

    let log = entries(&master, "root").await;
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(issued["token"].as_str().unwrap()), "the token in the log: {text}");
    let token =
        find(&log, "registration_token.create", &format!("registration_token:{}", issued["id"].as_str().unwrap()));
    assert_eq!(token["after"]["expires_at"], issued["expires_at"]);
    assert_eq!(find(&log, "replication.now", "replication")["after"]["slaves"], json!(["nantes"]));
    let verification = log.iter().find(|e| e["action"] == "verification.request").expect("a verification entry");
    assert_eq!(verification["after"]["slave"], "nantes");
    let removed = find(&log, "slave.remove", "slave:nantes");
    assert_eq!(removed["before"]["state"], "active");
    assert_eq!(removed["after"]["state"], "removing");
    assert_eq!(removed["after"]["purge"], true);
    assert_eq!(log.len(), 4, "{log:?}");
    site.stop(&[]).await;
    master.stop(&[]).await;
}
