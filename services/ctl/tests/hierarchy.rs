//! `rampartctl` against a real master and slave: building a hierarchy with
//! the commands an operator types, and the refusals they see.

use rampart_tests::{wait_for, ServerOptions, TestServer};

use crate::common::{ctl, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_builds_a_hierarchy_with_rampartctl() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let slave = TestServer::spawn(ServerOptions::site("paris", &master.options.namespace)).await;

    let created = ctl(&master, &["token", "create", "--expires", "10m"]).await;
    assert!(created.status.success(), "{}", stderr(&created));
    let token = stdout(&created).trim().to_owned();
    assert!(token.starts_with("rrt_"), "{token}");

    let registered = ctl(&slave, &["register", "--master", &master.address(), "--token", &token]).await;
    assert!(registered.status.success(), "{}", stderr(&registered));
    assert!(stdout(&registered).contains("now a slave"), "{}", stdout(&registered));
    let again = ctl(&slave, &["register", "--master", &master.address(), "--token", &token]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already a slave"), "{}", stderr(&again));

    let status = stdout(&ctl(&master, &["status"]).await);
    assert!(status.contains("1 online"), "{status}");
    let listed = ctl(&master, &["slaves", "list"]).await;
    assert!(stdout(&listed).contains("paris") && stdout(&listed).contains("online"), "{}", stdout(&listed));

    // Features a master does not have: refused by name, exit code != 0.
    for args in [&["dashboard"][..], &["audit"], &["email", "show"], &["deploy", "status"]] {
        let refused = ctl(&master, args).await;
        assert_ne!(refused.status.code(), Some(0), "{args:?}");
        assert!(stderr(&refused).contains("master"), "{args:?}: {}", stderr(&refused));
    }

    let pushed = ctl(&master, &["policies", "create", "HQ baseline", "--target", "all"]).await;
    assert!(pushed.status.success(), "{}", stderr(&pushed));
    wait_for("the master policy on the slave", || async {
        let out = stdout(&ctl(&slave, &["policies", "list"]).await);
        (out.contains("HQ baseline") && out.contains("master")).then_some(())
    })
    .await;

    let left = ctl(&slave, &["unregister"]).await;
    assert!(left.status.success(), "{}", stderr(&left));
    let status = stdout(&ctl(&slave, &["status"]).await);
    assert!(status.contains("standalone"), "{status}");
    // A site shows the fingerprint of the key its agents verify commands with, and prints the key.
    let key = slave.state.site.command_key.public();
    assert!(status.contains(&format!("Site key:   ed25519 {}\n", key.fingerprint())), "{status}");
    assert_eq!(stdout(&ctl(&slave, &["site-key"]).await), format!("{}\n", key.to_hex()));

    slave.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_replicates_verifies_and_reads_the_consolidated_view() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let slave = TestServer::spawn(ServerOptions::site("lyon", &master.options.namespace)).await;
    rampart_tests::hierarchy::insert_endpoints(&slave, "lyon", 40).await;

    let standalone = ctl(&slave, &["replicate-now"]).await;
    assert_eq!(standalone.status.code(), Some(1));
    assert!(stderr(&standalone).contains("stand-alone"), "{}", stderr(&standalone));

    rampart_tests::hierarchy::register(&master, &slave).await;
    rampart_tests::hierarchy::wait_for_replicated_endpoints(&master, "lyon", 40).await;
    let verified = ctl(&master, &["verify", "--slave", "lyon", "--timeout", "60"]).await;
    assert_eq!(verified.status.code(), Some(0), "{}{}", stdout(&verified), stderr(&verified));
    assert!(stdout(&verified).contains("lyon: in sync"), "{}", stdout(&verified));

    // A change on the slave, shipped on demand from the master's side.
    slave
        .state
        .pool
        .get()
        .await
        .unwrap()
        .execute("UPDATE endpoints SET hostname = 'renamed-pc' WHERE id = 'lyon-00003'", &[])
        .await
        .unwrap();
    let asked = ctl(&master, &["slaves", "replicate", "lyon"]).await;
    assert!(asked.status.success(), "{}", stderr(&asked));
    wait_for("the rename on the master", || async {
        let out = stdout(&ctl(&master, &["endpoints", "list", "--slave", "lyon", "--search", "renamed"]).await);
        (out.contains("renamed-pc") && out.contains("SLAVE")).then_some(())
    })
    .await;
    let listed = stdout(&ctl(&master, &["slaves", "list"]).await);
    assert!(listed.contains("WATERMARK") && listed.contains("LAG"), "{listed}");
    let tree = stdout(&ctl(&master, &["tree"]).await);
    assert!(tree.starts_with("hq (master)") && tree.contains("lyon (slave"), "{tree}");

    // A row the master's copy lost is named, with exit code 1.
    master
        .state
        .pool
        .get()
        .await
        .unwrap()
        .execute("DELETE FROM replica_rows WHERE slave_id = 'lyon' AND row_key = '{\"id\": \"lyon-00007\"}'", &[])
        .await
        .unwrap();
    let differs = ctl(&master, &["verify", "--timeout", "60"]).await;
    assert_eq!(differs.status.code(), Some(1), "{}{}", stdout(&differs), stderr(&differs));
    assert!(
        stdout(&differs).contains("OUT OF SYNC") && stdout(&differs).contains("lyon-00007"),
        "{}",
        stdout(&differs)
    );

    let removed = ctl(&master, &["slaves", "remove", "lyon", "--purge"]).await;
    assert!(removed.status.success() && stdout(&removed).contains("purged"), "{}", stdout(&removed));

    slave.stop(&[]).await;
    master.stop(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_pages_the_consolidated_list_after_an_endpoint() {
    let mut options = ServerOptions::master();
    options.extra_xml = "<Endpoints><ExactTotalUpTo>10</ExactTotalUpTo></Endpoints>".into();
    let master = TestServer::spawn(options).await;
    let slave = TestServer::spawn(ServerOptions::site("lyon", &master.options.namespace)).await;
    rampart_tests::hierarchy::insert_endpoints(&slave, "lyon", 25).await;
    rampart_tests::hierarchy::register(&master, &slave).await;
    rampart_tests::hierarchy::wait_for_replicated_endpoints(&master, "lyon", 25).await;

    // Past the master's count the total is marked as an estimate, and the
    // page says where the next one starts.
    let first = stdout(&ctl(&master, &["endpoints", "list", "--limit", "10"]).await);
    assert!(first.contains("Showing 10 of about "), "{first}");
    assert!(first.ends_with("the next page: --after lyon/lyon-00009\n"), "{first}");
    let second = stdout(&ctl(&master, &["endpoints", "list", "--limit", "10", "--after", "lyon/lyon-00009"]).await);
    assert!(second.contains("lyon-00010") && second.contains("lyon-00019"), "{second}");
    assert!(!second.contains("lyon-00009 "), "{second}");
    let last = stdout(&ctl(&master, &["endpoints", "list", "--limit", "10", "--after", "lyon/lyon-00019"]).await);
    assert!(last.contains("lyon-00024") && !last.contains("--after"), "the last page names no next: {last}");
    // Within the count, it is exact.
    let searched = stdout(&ctl(&master, &["endpoints", "list", "--search", "pc-2", "--limit", "2"]).await);
    assert!(searched.contains("Showing 2 of 6 endpoints;"), "pc-2, pc-20..pc-24: {searched}");

    let refused = ctl(&master, &["endpoints", "list", "--after", "lyon"]).await;
    assert_ne!(refused.status.code(), Some(0));
    assert!(stderr(&refused).contains("after 'lyon' must be <slave>/<endpoint id>"), "{}", stderr(&refused));

    slave.stop(&[]).await;
    master.stop(&[]).await;
}
