//! The console at 1280 and at 800 pixels wide: no main page of a site or a
//! master is wider than the window, and both the tree and the page's
//! content stay in view and wide enough to use. Screenshots of the main
//! pages at both widths (`<page>-1280.png`, `<page>-800.png`).

use fantoccini::key::Key;
use rampart_tests::{hierarchy::insert_endpoints, ServerOptions, TestServer};
use serde_json::Value;

use super::{browser::Browser, operator, password};

/// The main pages of a stand-alone (with the name of their screenshot, if one is taken).
const SITE_PAGES: [(&str, Option<&str>); 15] = [
    ("/console", Some("home")),
    ("/console/computers", Some("computers")),
    ("/console/computers/pc-00001", None),
    ("/console/policies", Some("policies")),
    ("/console/tasks", None),
    ("/console/dashboard", Some("dashboard")),
    ("/console/audit", None),
    ("/console/groups", Some("groups")),
    ("/console/deployments", None),
    ("/console/settings/email", Some("email-settings")),
    ("/console/license", None),
    ("/console/hierarchy", None),
    ("/console/reports", None),
    ("/console/refused-messages", None),
    ("/console/activity", None),
];

/// The main pages of a master.
const MASTER_PAGES: [(&str, Option<&str>); 5] = [
    ("/console", Some("master-home")),
    ("/console/slaves", Some("master-slaves")),
    ("/console/hierarchy", None),
    ("/console/computers", None),
    ("/console/policies", None),
];

/// What the page measures: the document's width and the window's, and the
/// box of the tree and of the main part (left, right, width, height), and
/// whether either needs a scroll bar of its own to be read across.
const MEASURE: &str = "
    const box = (e) => { const r = e.getBoundingClientRect(); return [r.left, r.right, r.width, r.height]; };
    const main = document.querySelector('main');
    const tree = document.querySelector('aside.tree');
    return {
        document: document.documentElement.scrollWidth, window: window.innerWidth,
        tree: box(tree), main: box(main),
        main_overflows: main.scrollWidth > main.clientWidth,
        tree_overflows: tree.scrollWidth > tree.clientWidth,
    };";

/// Opens each of `pages` in a window `width` wide and checks that it fits.
async fn check_pages(server: &TestServer, width: u32, pages: &[(&str, Option<&str>)]) {
    let browser = Browser::start_sized(server, width).await;
    browser.sign_in("alice", &password("alice")).await;
    for (page, shot) in pages {
        browser.open(page).await;
        browser.find("#main h1").await;
        if *page == "/console" && browser.count("li[data-node^='group:']").await > 0 {
            // The tree opened to its computers, the unbroken name among them.
            let group = browser.find("li[data-node^='group:']").await;
            group.send_keys(&Key::Right.to_string()).await.expect("the group takes keys");
            browser.find("li[data-node='computer:pc-00001']").await;
        }
        let m: Value = browser.run(MEASURE).await;
        let window = m["window"].as_f64().unwrap();
        assert_eq!(window, f64::from(width), "the window is {width} px wide: {m}");
        assert!(m["document"].as_f64().unwrap() <= window, "{page} at {width} px is wider than the window: {m}");
        assert_eq!(m["main_overflows"], false, "{page} at {width} px: the content needs a scroll bar of its own: {m}");
        assert_eq!(m["tree_overflows"], false, "{page} at {width} px: the tree needs a scroll bar across: {m}");
        for part in ["tree", "main"] {
            let [left, right, part_width, height] = [0, 1, 2, 3].map(|i| m[part][i].as_f64().unwrap());
            assert!(left >= 0.0 && right <= window + 0.5, "{page} at {width} px: the {part} leaves the window: {m}");
            assert!(part_width >= 240.0 && height > 40.0, "{page} at {width} px: the {part} is too small to use: {m}");
        }
        if let Some(shot) = shot {
            browser.shot(&format!("{shot}-{width}")).await;
        }
    }
    browser.stop().await;
}

#[tokio::test]
async fn the_main_pages_fit_in_1280_and_800_pixels() {
    let site = TestServer::spawn(ServerOptions::standalone()).await;
    operator(&site, "alice", "administrator").await;
    insert_endpoints(&site, "pc", 60).await;
    // A name with no place to break, as agents may report.
    let client = site.state.pool.get().await.unwrap();
    client
        .execute("UPDATE endpoints SET hostname = repeat('unbrokenhostname', 8) WHERE id = 'pc-00001'", &[])
        .await
        .unwrap();
    drop(client);
    let master = TestServer::spawn(ServerOptions::master()).await;
    operator(&master, "alice", "administrator").await;
    for width in [1280, 800] {
        check_pages(&site, width, &SITE_PAGES).await;
        check_pages(&master, width, &MASTER_PAGES).await;
    }
    site.stop(&[]).await;
    master.stop(&[]).await;
}
