//! The hierarchy in the console: a stand-alone registers to a master and
//! leaves it from its own console, its views switching with its role; a
//! master's policy is read-only on the slave, and *replicate now* moves the
//! slave's last replication.

use fantoccini::key::Key;
use rampart_tests::{
    hierarchy::{self, Hierarchy},
    wait_for, ServerOptions, TestServer,
};
use serde_json::json;

use super::{browser::Browser, operator, password};

#[tokio::test]
async fn a_standalone_registers_and_unregisters_from_its_console_and_switches_views() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let site = TestServer::spawn(ServerOptions::site("lyon", &master.options.namespace)).await;
    operator(&site, "alice", "administrator").await;
    hierarchy::insert_endpoints(&site, "lab", 2).await;
    let (status, lab) = site.post("/api/virtual-groups", json!({"name": "Lab"})).await;
    assert_eq!(status, 201, "{lab}");
    let members = format!("/api/virtual-groups/{}/members", lab["id"]);
    let (status, body) = site.post(&members, json!({"endpoints": ["lab-00001"]})).await;
    assert!(status.is_success(), "{body}");
    operator(&master, "root", "administrator").await;
    let on_master = Browser::start(&master).await;
    on_master.sign_in("root", &password("root")).await;
    on_master.open("/console/hierarchy").await;
    on_master.click("#new-token-form button").await;
    let token = on_master.text("#new-token").await;
    assert!(token.len() > 20, "a registration token is shown once: {token}");
    on_master.shot("registration-token").await;
    on_master.stop().await;
    let browser = Browser::start(&site).await;
    browser.sign_in("alice", &password("alice")).await;

    browser.find("p.empty").await;
    assert!(browser.page_text().await.contains("Network view"));
    browser.click("[data-menu]").await;
    browser.click("#instance-menu button[role=menuitem]").await;
    browser.wait_for_text("Virtual view").await;
    let lab = browser.find("li[data-node^='virtual-group:']").await;
    lab.send_keys(&Key::Right.to_string()).await.expect("the virtual group takes keys");
    browser.find("li[data-node='computer:lab-00001']").await;
    assert_eq!(browser.count("li[data-node^='computer:']").await, 1, "only the virtual group's member");
    browser.open("/console/computers").await;
    assert!(browser.page_text().await.contains("Virtual view"), "the view is remembered");
    browser.shot("virtual-view").await;

    browser.open("/console").await;
    browser.click("[data-menu]").await;
    browser.click("#instance-menu a[href='/console/hierarchy#register']").await;
    let (host, port) = master.address().rsplit_once(':').map(|(h, p)| (h.to_owned(), p.to_owned())).unwrap();
    browser.fill("host", &host).await;
    browser.fill("port", "1").await;
    browser.fill("token", &token).await;
    browser.click("#register-form button[type=submit]").await;
    let error = browser.text("#register-error").await;
    assert!(!error.is_empty(), "an unreachable master is explained next to the form");
    browser.shot("register-error").await;
    browser.fill("port", &port).await;
    browser.fill("token", &token).await;
    browser.click("#register-form button[type=submit]").await;
    let notice = browser.text("#hierarchy-notice").await;
    assert_eq!(notice, format!("Registered to master hq at {host}:{port}; this server is now a slave."));
    assert_eq!(browser.text("#instance-role").await, "slave");

    // Unregistering asks first; the test accepts.
    browser.run("window.confirm = () => true; return true;").await;
    browser.click("#unregister-form button[type=submit]").await;
    browser.wait_for_text("Unregistered from the master").await;
    let notice = browser.text("#hierarchy-notice").await;
    assert!(notice.starts_with("Unregistered from the master") && notice.ends_with("now stand-alone."), "{notice}");
    let (_, hierarchy) = site.get("/api/hierarchy").await;
    assert_eq!(hierarchy["role"], "standalone");
    browser.stop().await;
    site.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test]
async fn a_master_policy_is_read_only_on_the_slave_and_replicate_now_moves_the_last_replication() {
    let sites = Hierarchy::start(&["paris"]).await;
    let (master, slave) = (&sites.master, &sites.slaves[0]);
    operator(master, "alice", "administrator").await;
    operator(slave, "bob", "administrator").await;
    let last = || async { hierarchy::replication_of(master, "paris").await["last_replication"].clone() };
    let before =
        wait_for("the first replication of paris", || async { Some(last().await).filter(|v| !v.is_null()) }).await;

    let on_master = Browser::start(master).await;
    on_master.sign_in("alice", &password("alice")).await;
    on_master.open("/console/policies").await;
    on_master.fill("name", "from-hq").await;
    on_master.click("#new-policy button[type=submit]").await;
    on_master.find("tr[data-policy='from-hq']").await;
    // Where the policy stands on each slave, kept current on its page.
    on_master.click("tr[data-policy='from-hq'] a").await;
    on_master.find("#receipts tr[data-slave='paris']").await;
    wait_for("paris's receipt of from-hq", || async {
        let state = on_master.try_text("#receipts tr[data-slave='paris'] td.state").await?;
        (state != "pending").then_some(())
    })
    .await;
    on_master.shot("master-policy").await;
    on_master.open("/console/tasks").await;
    on_master.fill("name", "hq-scan").await;
    on_master.click("#new-task button[type=submit]").await;
    on_master.find("tr[data-task='hq-scan']").await;
    on_master.shot("master-tasks").await;

    wait_for("the master's policy on paris", || async {
        let (_, policies) = slave.get("/api/policies").await;
        policies.as_array().and_then(|p| p.iter().any(|p| p["name"] == "from-hq").then_some(()))
    })
    .await;
    let on_slave = Browser::start(slave).await;
    on_slave.sign_in("bob", &password("bob")).await;
    on_slave.open("/console/policies").await;
    assert_eq!(on_slave.text("tr[data-policy='from-hq'] td.owner").await, "master");
    assert_eq!(on_slave.count("tr[data-policy='from-hq'] form").await, 0, "no action on a master's policy");
    assert!(on_slave.text("tr[data-policy='from-hq']").await.contains("read-only"));
    on_slave.shot("slave-policies").await;
    wait_for("the master's task on paris", || async {
        let (_, tasks) = slave.get("/api/tasks").await;
        tasks.as_array().and_then(|t| t.iter().any(|t| t["name"] == "hq-scan").then_some(()))
    })
    .await;
    on_slave.open("/console/tasks").await;
    assert_eq!(on_slave.text("tr[data-task='hq-scan'] td.owner").await, "master");
    assert_eq!(on_slave.count("tr[data-task='hq-scan'] form").await, 0, "no cancel of a master's task");
    on_slave.click("tr[data-task='hq-scan'] a").await;
    on_slave.wait_for_text("Task hq-scan").await;

    // A change on paris (51 computers, all in a new virtual group), then
    // replicate now from the master's console.
    hierarchy::insert_endpoints(slave, "late", 51).await;
    let (status, lab) = slave.post("/api/virtual-groups", json!({"name": "Lab"})).await;
    assert_eq!(status, 201, "{lab}");
    let members = format!("/api/virtual-groups/{}/members", lab["id"]);
    let late: Vec<String> = (0..51).map(|n| format!("late-{n:05}")).collect();
    let (status, body) = slave.post(&members, json!({"endpoints": late})).await;
    assert!(status.is_success(), "{body}");
    on_master.open("/console/slaves").await;
    on_master.shot("slaves").await;
    on_master.click("tr[data-slave='paris'] form button").await;
    on_master.wait_for_text("Asked slave 'paris' to replicate now.").await;
    // The table keeps itself current: no reload (the page's own flag stays).
    on_master.run("window.__same_page = true; return true;").await;
    let shown = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_default();
    wait_for("the last replication of paris to move", || async {
        let cell = on_master.find("tr[data-slave='paris'] td.last-replication time").await;
        let at = cell.attr("datetime").await.ok().flatten()?;
        let moved = chrono::DateTime::parse_from_rfc3339(&at).ok()?
            > chrono::DateTime::parse_from_rfc3339(&shown(&before)).ok()?;
        moved.then_some(())
    })
    .await;
    assert_eq!(on_master.run("return window.__same_page === true;").await, json!(true), "the page was not reloaded");

    // The master's tree: paris opens to its groups, a group to its computers.
    on_master.open("/console").await;
    let paris = on_master.find("li[data-node='slave:paris']").await;
    paris.send_keys(&Key::Right.to_string()).await.expect("the slave takes keys");
    let group = on_master.find("li[data-node='slave:paris'] li[data-node^='group:']").await;
    group.send_keys(&Key::Right.to_string()).await.expect("the group takes keys");
    on_master.find("li[data-node='computer:late-00001']").await;
    on_master.shot("master-tree").await;
    // Its virtual view: paris opens to its virtual groups, one to its members.
    on_master.click("[data-menu]").await;
    on_master.click("#instance-menu button[role=menuitem]").await;
    on_master.wait_for_text("Virtual view").await;
    let paris = on_master.find("li[data-node='slave:paris']").await;
    paris.send_keys(&Key::Right.to_string()).await.expect("the slave takes keys");
    let lab = on_master.find("li[data-node='slave:paris'] li[data-node^='virtual-group:']").await;
    assert!(lab.text().await.unwrap().starts_with("Lab"), "the slave's virtual group by its name");
    lab.send_keys(&Key::Right.to_string()).await.expect("the virtual group takes keys");
    on_master.find("li[data-node^='virtual-group:'] li[data-node='computer:late-00001']").await;
    assert_eq!(on_master.count("li[data-node^='computer:']").await, 50, "a page of its members");
    on_master.click("li[data-node^='virtual-group:'] a[data-more]").await;
    on_master.find("li[data-node^='virtual-group:'] li[data-node='computer:late-00050']").await;
    assert_eq!(on_master.count("li[data-node^='computer:']").await, 51, "then the next");
    on_master.shot("master-virtual-tree").await;
    on_master.open("/console/slaves").await;

    on_master.click("tr[data-slave='paris'] form.verify button").await;
    on_master.wait_for_text("In sync: the master's copy matches the slave.").await;
    on_master.shot("verification").await;

    on_master.open("/console/slaves").await;
    on_master.run("window.confirm = () => true; return true;").await;
    on_master.click("tr[data-slave='paris'] form.remove button").await;
    on_master.wait_for_text("Slave 'paris' is being removed.").await;
    let (_, removed) = master.get("/api/slaves/paris").await;
    assert!(matches!(removed["state"].as_str(), Some("removing" | "removed")), "{removed}");
    on_master.stop().await;
    on_slave.stop().await;
    sites.stop().await;
}
