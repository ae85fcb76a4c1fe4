//! A master's consolidated computer list past its exact count: the total
//! is then an estimate and says so, pages follow the cursor each page gives
//! (every computer once, in the list's order), a cursor that is not one is
//! refused with a 400, and the console shows both. `rampartctl` is tested
//! against the same in `services/ctl/tests/hierarchy.rs`.

use rampart_tests::{
    hierarchy::{insert_endpoints, register, wait_for_replicated_endpoints},
    ServerOptions, TestServer,
};
use reqwest::StatusCode;

use crate::console::{http::HttpSession, operator};

/// Slaves and how many computers each holds, in the list's order.
const SLAVES: [(&str, i64); 2] = [("lyon", 30), ("paris", 60)];
/// The master counts this many matches exactly.
const CAP: i64 = 40;

/// A master counting up to [`CAP`], with [`SLAVES`] registered and replicated.
async fn master_of_ninety() -> (TestServer, Vec<TestServer>) {
    let mut options = ServerOptions::master();
    options.extra_xml = format!("<Endpoints><ExactTotalUpTo>{CAP}</ExactTotalUpTo></Endpoints>");
    let master = TestServer::spawn(options).await;
    let mut slaves = Vec::new();
    for (name, count) in SLAVES {
        let site = TestServer::spawn(ServerOptions::site(name, &master.options.namespace)).await;
        insert_endpoints(&site, name, count).await;
        register(&master, &site).await;
        slaves.push(site);
    }
    for (name, count) in SLAVES {
        wait_for_replicated_endpoints(&master, name, count).await;
    }
    (master, slaves)
}

/// `(slave, id)` of each endpoint of a list answer.
fn keys(page: &serde_json::Value) -> Vec<(String, String)> {
    let endpoints = page["endpoints"].as_array().expect("a list of endpoints");
    endpoints.iter().map(|e| (e["slave"].as_str().unwrap().to_owned(), e["id"].as_str().unwrap().to_owned())).collect()
}

/// The value of the first `attribute="..."` before `marker` in `html`, unescaped.
fn attribute_before(html: &str, marker: &str, attribute: &str) -> String {
    let at = html.find(marker).unwrap_or_else(|| panic!("no {marker} in {html}"));
    let start = html[..at].rfind(&format!("{attribute}=\"")).unwrap() + attribute.len() + 2;
    html[start..].split('"').next().unwrap().replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_cap_the_total_is_an_estimate_and_cursors_page_every_computer_once() {
    let (master, slaves) = master_of_ninety().await;

    // Past the cap the total is the planner's estimate, and says so.
    let all = master.get_ok("/api/endpoints?limit=1000").await;
    assert_eq!(all["total_exact"], false, "{all}");
    assert!(all["total"].as_i64().unwrap() > CAP, "an estimate is never below the cap: {all}");
    assert_eq!(all["endpoints"].as_array().unwrap().len(), 90);
    assert_eq!(all["next"], serde_json::Value::Null, "one page held them all: {}", all["next"]);
    // Within it, counted.
    let lyon = master.get_ok("/api/endpoints?slave=lyon&limit=5").await;
    assert_eq!((lyon["total"].as_i64(), lyon["total_exact"].as_bool()), (Some(30), Some(true)));
    let paris = master.get_ok("/api/endpoints?slave=paris&limit=5").await;
    assert_eq!(paris["total_exact"], false, "60 are more than the cap: {paris}");
    let searched = master.get_ok("/api/endpoints?search=pc-2&limit=5").await;
    assert_eq!(searched["total"], 22, "pc-2 and pc-20..pc-29 on each slave: {searched}");
    assert_eq!(searched["total_exact"], true);

    // Following `next` returns every computer once, in the list's order.
    let expected: Vec<(String, String)> = SLAVES
        .iter()
        .flat_map(|(slave, count)| (0..*count).map(move |n| (slave.to_string(), format!("{slave}-{n:05}"))))
        .collect();
    assert_eq!(keys(&all), expected, "the list's order is slave, then id");
    let mut seen = Vec::new();
    let mut path = "/api/endpoints?limit=7".to_owned();
    for pages in 1.. {
        assert!(pages <= 13, "90 computers in pages of 7 take 13 pages");
        let page = master.get_ok(&path).await;
        seen.extend(keys(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/endpoints?limit=7&after={}", next.replace('/', "%2F")),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    // With a filter: the rest of one slave's computers.
    let first = master.get_ok("/api/endpoints?slave=paris&limit=50").await;
    assert_eq!(first["next"], "paris/paris-00049");
    let rest = master.get_ok("/api/endpoints?slave=paris&limit=50&after=paris/paris-00049").await;
    assert_eq!(keys(&rest), expected[80..].to_vec());
    assert_eq!(rest["next"], serde_json::Value::Null);

    // A cursor that is not one is refused and says why.
    for (query, status, says) in [
        ("after=paris", StatusCode::BAD_REQUEST, "after 'paris' must be <slave>/<endpoint id>"),
        ("after=Paris%21/pc-1", StatusCode::BAD_REQUEST, "names no slave"),
        ("after=paris/", StatusCode::BAD_REQUEST, "names no endpoint"),
        ("after=paris/x&offset=5", StatusCode::UNPROCESSABLE_ENTITY, "give offset or after, not both"),
    ] {
        let (got, body) = master.get(&format!("/api/endpoints?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(body.to_string().contains(says), "{query}: {body}");
    }
    let (got, body) = slaves[0].get("/api/endpoints?after=lyon/lyon-00001").await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "a site pages with offset: {body}");

    for slave in slaves {
        slave.stop(&[]).await;
    }
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_says_the_total_is_an_estimate_and_pages_by_cursor() {
    let (master, slaves) = master_of_ninety().await;
    operator(&master, "alice", "auditor").await;
    let session = HttpSession::sign_in(&master, "alice").await;

    let first = session.get("/console/computers").await.text().await.unwrap();
    assert!(first.contains(&format!("More than {CAP} computers")), "{first}");
    assert!(first.contains("paris-00019") && !first.contains("paris-00020"), "the first 50: {first}");
    let next = attribute_before(&first, ">Next page<", "href");
    assert_eq!(next, "?after=paris%2Fparis-00019");
    let second = session.get(&format!("/console/computers{next}")).await.text().await.unwrap();
    assert!(second.contains("showing 40 after paris/paris-00019"), "{second}");
    assert!(second.contains("computers/paris-00059?") && !second.contains("computers/paris-00019?"), "{second}");
    assert!(second.contains(">First page<") && !second.contains(">Next page<"), "{second}");
    let refused = session.get("/console/computers?after=nowhere").await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("after 'nowhere' must be"));

    // The tree: a slave's group opens 50 at a time, the next 50 by cursor.
    let group = session.get("/console/tree/children?slave=paris&group=1").await.text().await.unwrap();
    assert_eq!(group.matches("data-node=\"computer:").count(), 50, "{group}");
    // 60 are more than the master counts: "of more than 40" or an estimate.
    assert!(group.contains(">Next 50 of ") && group.contains(" in the group<"), "{group}");
    let more = attribute_before(&group, ">Next 50 of ", "data-more");
    assert_eq!(more, "/console/tree/children?slave=paris&group=1&after=paris%2Fparis-00049");
    let rest = session.get(&more).await.text().await.unwrap();
    assert_eq!(rest.matches("data-node=\"computer:").count(), 10, "{rest}");
    assert!(rest.contains("computer:paris-00059") && !rest.contains("data-more"), "{rest}");

    for slave in slaves {
        slave.stop(&[]).await;
    }
    master.stop(&[]).await;
}
