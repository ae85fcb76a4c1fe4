//! The site features' forms in a real browser: the network builder
//! (create, rename, move computers typed or ticked in the list, delete), a deployment whose state moves
//! without a reload, the e-mail settings (the password never shown back,
//! kept when left empty) and a license with its seats; each refusal shown
//! next to its form. A role that may not is offered none of them, and its
//! forged form is refused naming the role needed.

use rampart_shared::license::{License, VendorKey};
use rampart_tests::{wait_for, ServerOptions, TestAgent, TestServer};
use serde_json::{json, Value};

use super::{browser::Browser, operator, password};

/// A license of `seats` seats for 30 days, signed with the development vendor key.
fn license(seats: u32) -> String {
    let vendor = VendorKey::from_hex(include_str!("../../../ops/license/vendor-dev.key")).unwrap();
    let today = chrono::Utc::now().date_naive();
    let expires_on = today + chrono::Days::new(30);
    License { license_id: uuid::Uuid::new_v4(), customer: "Console".into(), seats, issued_on: today, expires_on }
        .issue(&vendor)
}

/// `POST path` from the page with its own session's CSRF token, as a page
/// left open or a forged form would: [status, text].
async fn forged(browser: &Browser, path: &str, fields: &str) -> Value {
    let script = format!(
        "const csrf = document.querySelector('input[name=csrf]').value;
         return fetch('{path}', {{method: 'POST',
             headers: {{'content-type': 'application/x-www-form-urlencoded'}},
             body: 'csrf=' + encodeURIComponent(csrf) + '&{fields}'}})
           .then(async r => [r.status, await r.text()]);"
    );
    browser.run(&script).await
}

#[tokio::test]
async fn the_site_features_are_changed_from_the_console_and_refused_to_who_may_not() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    operator(&server, "alice", "administrator").await;
    operator(&server, "carol", "auditor").await;
    let agent = TestAgent::spawn(&server, 3, |s| s.unmanaged = 2);
    server.wait_for_endpoints(3).await;
    let listed = server.get_ok("/api/endpoints").await;
    let ids: Vec<String> =
        listed["endpoints"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    let group_of = |id: String| {
        let server = &server;
        async move { server.get_ok(&format!("/api/endpoints/{id}")).await["group"].clone() }
    };
    let browser = Browser::start(&server).await;
    browser.sign_in("alice", &password("alice")).await;

    // The network builder: a refused subnet is explained next to the form.
    browser.open("/console/groups").await;
    browser.fill_in("#new-group", "name", "Servers").await;
    browser.fill_in("#new-group", "subnet", "10.7.0.0/40").await;
    browser.click("#new-group button[type=submit]").await;
    let error = browser.text("#new-group-error").await;
    assert_eq!(error, "subnet '10.7.0.0/40': prefix length must be 0..32");
    browser.fill_in("#new-group", "subnet", "10.7.0.0/16").await;
    browser.click("#new-group button[type=submit]").await;
    assert_eq!(browser.text("#notice").await, "Created the group.");
    let groups = server.get_ok("/api/groups").await;
    let servers = groups.as_array().unwrap().iter().find(|g| g["name"] == "Servers").expect("the group is made");
    assert_eq!(servers["subnet"], "10.7.0.0/16");
    let id = servers["id"].as_i64().unwrap();
    browser.fill_in(&format!("#rename-{id}"), "name", "Web servers").await;
    browser.click(&format!("#rename-{id} button")).await;
    browser.find("#groups tr[data-group='Web servers']").await;
    // Moving: all of them or none.
    browser.fill_in("#move-computers", "computers", &format!("{}, no-such-pc", ids[0])).await;
    browser.choose("#move-computers select[name=group_id]", &id.to_string()).await;
    browser.click("#move-computers button[type=submit]").await;
    assert_eq!(browser.text("#move-computers-error").await, "no endpoint 'no-such-pc'");
    assert_eq!(group_of(ids[0].clone()).await, "Default", "nothing was moved");
    browser.fill_in("#move-computers", "computers", &format!("{}\n{}", ids[0], ids[1])).await;
    browser.choose("#move-computers select[name=group_id]", &id.to_string()).await;
    browser.click("#move-computers button[type=submit]").await;
    assert_eq!(browser.text("#notice").await, "Moved 2 computer(s).");
    assert_eq!(group_of(ids[1].clone()).await, "Web servers");
    assert_eq!(browser.text("#groups tr[data-group='Web servers'] td:nth-child(4)").await, "2");
    browser.shot("groups").await;
    // Or ticked in the computers list.
    browser.open("/console/computers").await;
    browser.click(&format!("input[form='move-selected'][value='{}']", ids[2])).await;
    browser.choose("#move-selected select[name=group_id]", &id.to_string()).await;
    browser.click("#move-selected button[type=submit]").await;
    assert_eq!(browser.text("#notice").await, "Moved 1 computer(s).");
    assert_eq!(group_of(ids[2].clone()).await, "Web servers");
    browser.run("window.confirm = () => true; return true;").await;
    browser.click("#groups tr[data-group='Web servers'] form.delete button").await;
    browser.wait_for_text("Deleted the group").await;
    assert_eq!(group_of(ids[1].clone()).await, "Default", "its computers went to its parent");
    // Deleted again (from a page left open): the refusal is shown, though its row is gone.
    let again = forged(&browser, &format!("/console/groups/{id}/delete"), "").await;
    assert_eq!(again[0], 422, "{again}");
    assert!(again[1].as_str().unwrap().contains(&format!("no group {id}")), "{again}");

    // A deployment, its state kept current without a reload.
    let audit = wait_for("the unmanaged computers to be discovered", || async {
        let audit = server.get_ok("/api/audit").await;
        (audit["summary"]["unmanaged"] == 2).then_some(audit)
    })
    .await;
    let target = audit["computers"].as_array().unwrap().iter().find(|c| c["managed"] == false).unwrap()["computer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.open("/console/deployments").await;
    browser.click("#new-deployment button[type=submit]").await;
    assert_eq!(browser.text("#new-deployment-error").await, "choose at least one computer");
    browser.click(&format!("#new-deployment input[name=computers][value='{target}']")).await;
    browser.click("#new-deployment button[type=submit]").await;
    assert_eq!(browser.text("#notice").await, "Requested 1 deployment(s); their state follows below.");
    browser.run("window.__same_page = true; return true;").await;
    wait_for("the deployment to succeed on the page", || async {
        let state = browser.try_text(&format!("#deployments tr[data-computer='{target}'] td.state")).await?;
        (state == "succeeded").then_some(())
    })
    .await;
    assert_eq!(browser.run("return window.__same_page === true;").await, json!(true), "the page was not reloaded");
    browser.shot("deployments").await;

    // E-mail settings: the password is never shown back, and kept when left empty.
    browser.open("/console/settings/email").await;
    browser.fill_in("#email-settings", "smtp_host", "smtp.example.org").await;
    browser.fill_in("#email-settings", "username", "mailer").await;
    browser.fill_in("#email-settings", "password", "s3cret-relay-pass").await;
    browser.fill_in("#email-settings", "from", "rampart@example.org").await;
    browser.fill_in("#email-settings", "to", "secops").await;
    browser.click("#email-settings button[type=submit]").await;
    assert_eq!(browser.text("#email-settings-error").await, "to: 'secops' is not an e-mail address");
    let shown = "return document.documentElement.outerHTML.includes('s3cret-relay-pass');";
    assert_eq!(browser.run(shown).await, json!(false), "a refused form does not send the password back");
    browser.fill_in("#email-settings", "password", "s3cret-relay-pass").await;
    browser.fill_in("#email-settings", "to", "secops@example.org, ciso@example.org").await;
    browser.click("#email-settings button[type=submit]").await;
    assert_eq!(browser.text("#notice").await, "Saved the e-mail settings.");
    assert_eq!(browser.text("#email-summary td.password").await, "set");
    assert_eq!(browser.run(shown).await, json!(false), "the password is never shown");
    // Saved again with the password field left empty (a page without the notice first).
    browser.open("/console/settings/email").await;
    browser.fill_in("#email-settings", "smtp_host", "relay.example.org").await;
    browser.click("#email-settings button[type=submit]").await;
    assert_eq!(browser.text("#notice").await, "Saved the e-mail settings.");
    let email = server.get_ok("/api/settings/email").await;
    assert_eq!((email["smtp_host"].as_str(), email["password_set"].as_bool()), (Some("relay.example.org"), Some(true)));
    assert_eq!(email["to"], json!(["secops@example.org", "ciso@example.org"]));
    let client = server.state.pool.get().await.unwrap();
    let stored: Value = client.query_one("SELECT value FROM settings WHERE key = 'email'", &[]).await.unwrap().get(0);
    assert_eq!(stored["password"], "s3cret-relay-pass", "an empty password field keeps the stored one");
    drop(client);
    browser.shot("email-settings").await;

    // A license: a forged key is refused next to the form; a genuine one gives its seats.
    browser.open("/console/license").await;
    browser.fill_in("#apply-license", "key", "not-a-license").await;
    browser.click("#apply-license button[type=submit]").await;
    assert!(browser.text("#apply-license-error").await.starts_with("license key refused"));
    browser.fill_in("#apply-license", "key", &license(10)).await;
    browser.click("#apply-license button[type=submit]").await;
    browser.find("#notice").await;
    assert_eq!(browser.text("#license-state").await, "valid");
    assert_eq!(browser.text("#license-seats").await, "10");
    let used = server.get_ok("/api/license").await["used"].to_string();
    assert_eq!(browser.text("#license-used").await, used);
    browser.shot("license").await;
    browser.click("header.top form button").await;

    // An auditor is offered none of these forms, and its forged ones are refused by role.
    browser.sign_in("carol", &password("carol")).await;
    for (page, form) in [
        ("/console/groups", "#new-group"),
        ("/console/groups", "form.rename"),
        ("/console/groups", "#move-computers"),
        ("/console/computers", "#move-selected"),
        ("/console/deployments", "#new-deployment"),
        ("/console/settings/email", "#email-settings"),
        ("/console/license", "#apply-license"),
    ] {
        browser.open(page).await;
        browser.find("#main h1").await;
        assert_eq!(browser.count(form).await, 0, "an auditor is not offered {form} on {page}");
    }
    for (path, fields, role) in [
        ("/console/groups", "name=forged", "operator"),
        ("/console/deployments", &format!("computers={target}") as &str, "operator"),
        ("/console/settings/email", "smtp_host=evil.example&from=a@evil.example&to=b@evil.example", "administrator"),
        ("/console/license", "key=forged", "administrator"),
    ] {
        let answer = forged(&browser, path, fields).await;
        assert_eq!(answer[0], 403, "{path}: {answer}");
        let text = answer[1].as_str().unwrap();
        assert!(text.contains(&format!("needs the {role} role")) && text.contains("'carol' is an auditor"), "{text}");
    }
    let groups = server.get_ok("/api/groups").await;
    assert_eq!(groups.as_array().unwrap().len(), 1, "nothing forged was made: {groups}");
    assert_eq!(server.get_ok("/api/settings/email").await["smtp_host"], "relay.example.org");
    browser.stop().await;
    let queue = agent.stop().await;
    server.stop(&[queue]).await;
}
