//! Runs the built `rampartctl` binary: `license issue` end to end (it needs
//! no server), and the exit codes an operator's scripts rely on. Commands
//! against a real server are tested with the end-to-end suite.

use std::process::{Command, Output};

use chrono::{Days, Local};
use rampart_shared::license::License;

use crate::common::{stderr, stdout};

const DEV_VENDOR_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ops/license/vendor-dev.key");

/// Runs the binary with the given arguments, ignoring any RAMPART_* settings
/// of the machine running the tests.
fn rampartctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampartctl"))
        .args(args)
        .env_remove("RAMPART_SERVER")
        .env_remove("RAMPART_TOKEN")
        .output()
        .expect("rampartctl runs")
}

#[test]
fn issued_keys_verify_with_the_vendor_key_this_build_trusts() {
    let output = rampartctl(&[
        "license",
        "issue",
        "--vendor-key",
        DEV_VENDOR_KEY,
        "--seats",
        "25",
        "--days",
        "30",
        "--customer",
        "ACME",
    ]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let key = stdout(&output);
    assert_eq!(key.lines().count(), 1, "only the key goes to stdout: {key}");

    let today = Local::now().date_naive();
    let license = License::verify(key.trim(), today).expect("the issued key verifies");
    assert_eq!(license.seats, 25);
    assert_eq!(license.customer, "ACME");
    assert_eq!(license.issued_on, today);
    assert_eq!(license.expires_on, today.checked_add_days(Days::new(30)).unwrap());
    assert!(stderr(&output).contains(&license.license_id.to_string()), "{}", stderr(&output));
}

#[test]
fn issue_with_json_prints_the_key_and_the_license() {
    let output = rampartctl(&[
        "license",
        "issue",
        "--json",
        "--vendor-key",
        DEV_VENDOR_KEY,
        "--seats",
        "3",
        "--expires",
        "2099-12-31",
    ]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("stdout is JSON");
    let key = answer["key"].as_str().unwrap();
    let license = License::verify(key, Local::now().date_naive()).unwrap();
    assert_eq!(answer["license"]["license_id"], license.license_id.to_string());
    assert_eq!(answer["license"]["expires_on"], "2099-12-31");
    assert_eq!(answer["license"]["seats"], 3);
}

#[test]
fn issue_refuses_a_bad_vendor_key_or_a_past_expiry() {
    let missing =
        rampartctl(&["license", "issue", "--vendor-key", "/nonexistent/vendor.key", "--seats", "1", "--days", "1"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).starts_with("error: Failed to read the vendor key file /nonexistent/vendor.key"),
        "{}",
        stderr(&missing)
    );

    let not_hex = env!("CARGO_MANIFEST_DIR").to_owned() + "/Cargo.toml";
    let garbage = rampartctl(&["license", "issue", "--vendor-key", &not_hex, "--seats", "1", "--days", "1"]);
    assert_eq!(garbage.status.code(), Some(1));
    assert!(stderr(&garbage).contains("vendor key is invalid"), "{}", stderr(&garbage));

    let past =
        rampartctl(&["license", "issue", "--vendor-key", DEV_VENDOR_KEY, "--seats", "1", "--expires", "2000-01-01"]);
    assert_eq!(past.status.code(), Some(1));
    assert!(stderr(&past).contains("in the past"), "{}", stderr(&past));
    assert!(stdout(&past).is_empty());
}

#[test]
fn an_unreachable_server_exits_1_naming_the_url() {
    let output = rampartctl(&["--server", "http://127.0.0.1:1", "status"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.starts_with("error: "), "{message}");
    assert!(message.contains("http://127.0.0.1:1"), "{message}");
    assert!(stdout(&output).is_empty());

    // Also from the environment, and with --json.
    let output = Command::new(env!("CARGO_BIN_EXE_rampartctl"))
        .args(["--json", "endpoints", "list"])
        .env("RAMPART_SERVER", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("http://127.0.0.1:1"), "{}", stderr(&output));
}

#[test]
fn verify_exits_2_when_it_cannot_ask_and_other_commands_still_exit_1() {
    let verify = rampartctl(&["--server", "http://127.0.0.1:1", "verify", "--slave", "paris"]);
    assert_eq!(verify.status.code(), Some(2), "{}", stderr(&verify));
    assert!(stderr(&verify).contains("http://127.0.0.1:1"), "{}", stderr(&verify));
    assert!(stdout(&verify).is_empty());
    for args in [&["replication"][..], &["replicate-now", "--full"]] {
        let output = rampartctl(&[&["--server", "http://127.0.0.1:1"], args].concat());
        assert_eq!(output.status.code(), Some(1), "{args:?}");
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["tasks", "create", "--kind", "quick_scan"][..],
        &["tasks", "create", "--kind", "quick_scan", "--all", "--group", "1"],
        &["policies", "assign", "p1", "--all", "--endpoint", "sim1-00001"],
        &["license", "issue", "--vendor-key", DEV_VENDOR_KEY, "--seats", "0", "--days", "1"],
        &["--server", "ftp://paris.example", "status"],
        &["deploy"],
        &["register", "--master", "bad host:x", "--token", "t"],
        &["register", "--master", "hq.example"],
        &["token", "create", "--expires", "0"],
        &["token", "create", "--expires", "2w"],
        &["slaves", "show"],
        &["slaves", "replicate"],
        &["verify", "--timeout", "0"],
        &["policies", "create", "Office", "--group", "Paris"],
        &["policies", "create", "Office", "--target", "all", "lyon"],
        &["tasks", "create", "--kind", "quick_scan", "--target", "all", "--endpoint", "sim1-00001"],
        &["tasks", "create", "--kind", "quick_scan", "--group", "Paris"],
    ] {
        let output = rampartctl(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
    }
}

#[test]
fn hierarchy_usage_errors_say_what_is_wrong_before_calling_the_server() {
    // An unreachable server: had any of these been sent, the exit would be 1.
    for (args, message) in [
        (
            &["register", "--master", "bad host:x", "--registration-token", "t"][..],
            "`bad host` is not a host name or IP address; expected HOST[:PORT]",
        ),
        (&["register", "--master", "hq:x", "--registration-token", "t"], "port `x` is not a number from 1 to 65535"),
        (&["token", "create", "--expires", "0"], "must be longer than 0 seconds"),
        (
            &["tasks", "create", "--kind", "update", "--group", "Paris"],
            "--group takes group ids here, and `Paris` is not one",
        ),
    ] {
        let output = rampartctl(&[&["--server", "http://127.0.0.1:1"], args].concat());
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(stderr(&output).contains(message), "{}", stderr(&output));
        assert!(stdout(&output).is_empty());
    }
}

#[test]
fn valid_hierarchy_commands_reach_for_the_server() {
    for args in [
        &["register", "--master", "hq.example", "--registration-token", "t"][..],
        &["token", "create", "--expires", "2h"],
        &["unregister"],
        &["slaves", "remove", "lyon"],
        &["slaves", "remove", "lyon", "--purge"],
        &["slaves", "replicate", "lyon", "--full"],
        &["policies", "create", "Office", "--target", "all", "--group", "Paris"],
        &["tasks", "create", "--kind", "update", "--target", "lyon", "--virtual-group", "Laptops"],
    ] {
        let output = rampartctl(&[&["--server", "http://127.0.0.1:1"], args].concat());
        assert_eq!(output.status.code(), Some(1), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("http://127.0.0.1:1"), "{}", stderr(&output));
        // Nothing on stdout, so `T=$(rampartctl token create)` captures no junk.
        assert!(stdout(&output).is_empty());
    }
}
