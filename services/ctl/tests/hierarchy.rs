//! `rampartctl` against a real master and slave: building a hierarchy with
//! the commands an operator types, and the refusals they see.

use std::process::Output;

use rampart_tests::{wait_for, ServerOptions, TestServer, TOKEN};

/// Runs `rampartctl` against `server` (off the async runtime).
async fn ctl(server: &TestServer, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rampartctl"));
    command.args(args).env("RAMPART_SERVER", &server.base).env("RAMPART_TOKEN", TOKEN);
    tokio::task::spawn_blocking(move || command.output().expect("rampartctl runs")).await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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
    assert!(stdout(&ctl(&slave, &["status"]).await).contains("standalone"));

    slave.stop(&[]).await;
    master.stop(&[]).await;
}
