//! `rampartctl login`, `whoami`, `operators`, `activity` and `logout`
//! against a real server: an operator signs in with a password from stdin,
//! the stored token carries the following commands, an auditor is refused
//! with the role named, a revoked token stops working, and the activity log
//! shows all of it.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Output, Stdio},
};

use rampart_tests::{ServerOptions, TestServer, TOKEN};
use serde_json::Value;

use crate::common::{ctl, stderr, stdout};

const ALICE_PASSWORD: &str = "alice correct horse";
const CAROL_PASSWORD: &str = "carol battery staple";

/// Runs `rampartctl` against `server` with `config_dir` as its configuration
/// directory, no token in the environment, and `input` on stdin.
async fn signed_in(server: &TestServer, config_dir: &Path, input: &str, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rampartctl"));
    command
        .args(args)
        .env("RAMPART_SERVER", &server.base)
        .env("RAMPARTCTL_CONFIG_DIR", config_dir)
        .env_remove("RAMPART_TOKEN")
        .env_remove("RAMPART_CA_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = input.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("rampartctl runs");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampartctl-{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "stdout: {}\nstderr: {}", stdout(output), stderr(output));
    stdout(output)
}

fn refused(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "stdout: {}\nstderr: {}", stdout(output), stderr(output));
    stderr(output)
}

#[tokio::test]
async fn an_operator_signs_in_manages_accounts_and_reads_the_activity_log() {
    let server = TestServer::spawn(ServerOptions::standalone()).await;
    let (alice_dir, carol_dir) = (temp_dir("alice"), temp_dir("carol"));

    // The server's own token creates the first administrator.
    let created = signed_in(
        &server,
        &alice_dir,
        &format!("{ALICE_PASSWORD}\n"),
        &["--api-token", TOKEN, "operators", "create", "alice", "--role", "administrator", "--password-stdin"],
    )
    .await;
    assert_eq!(ok(&created), "Created operator alice (administrator).\n");

    // alice signs in; the token is stored, never printed.
    let wrong =
        signed_in(&server, &alice_dir, "not her password\n", &["login", "--operator", "alice", "--password-stdin"])
            .await;
    let message = refused(&wrong);
    assert!(!message.contains("no token given"), "{message}");
    let login = signed_in(
        &server,
        &alice_dir,
        &format!("{ALICE_PASSWORD}\n"),
        &["login", "--operator", "alice", "--password-stdin", "--ttl-hours", "2"],
    )
    .await;
    let text = ok(&login);
    assert!(text.starts_with(&format!("Signed in to {} as alice (administrator) until ", server.base)), "{text}");
    assert!(!text.contains("rpt_"), "the token is not printed: {text}");
    let stored: Vec<PathBuf> =
        std::fs::read_dir(alice_dir.join("tokens")).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(stored.len(), 1, "one token file for one server");
    assert!(std::fs::read_to_string(&stored[0]).unwrap().starts_with("rpt_"));
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&stored[0]).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // The stored token carries the next commands.
    let whoami = ok(&signed_in(&server, &alice_dir, "", &["whoami"]).await);
    assert!(whoami.contains("Operator:  alice") && whoami.contains("Role:      administrator"), "{whoami}");
    let me: Value =
        serde_json::from_str(&ok(&signed_in(&server, &alice_dir, "", &["whoami", "--json"]).await)).unwrap();
    let alice_token = me["token"].as_str().unwrap().to_owned();
    let carol = signed_in(
        &server,
        &alice_dir,
        &format!("{CAROL_PASSWORD}\n"),
        &["operators", "create", "carol", "--role", "auditor", "--password-stdin"],
    )
    .await;
    assert_eq!(ok(&carol), "Created operator carol (auditor).\n");
    let accounts = ok(&signed_in(&server, &alice_dir, "", &["operators", "list"]).await);
    assert!(accounts.starts_with("NAME   ROLE           STATE   CREATED\n"), "{accounts}");
    assert!(accounts.lines().any(|l| l.starts_with("alice  administrator  active")), "{accounts}");
    assert!(accounts.lines().any(|l| l.starts_with("carol  auditor        active")), "{accounts}");

    // carol, an auditor, reads but may not change a policy.
    let login = signed_in(
        &server,
        &carol_dir,
        &format!("{CAROL_PASSWORD}\n"),
        &["login", "--operator", "carol", "--password-stdin"],
    )
    .await;
    ok(&login);
    ok(&signed_in(&server, &carol_dir, "", &["policies", "list"]).await);
    let denied = refused(&signed_in(&server, &carol_dir, "", &["policies", "create", "Office"]).await);
    assert!(denied.contains("needs the operator role") && denied.contains("carol"), "{denied}");
    let denied = refused(&signed_in(&server, &carol_dir, "", &["operators", "list"]).await);
    assert!(denied.contains("needs the administrator role"), "{denied}");

    // alice sees every token and revokes carol's; carol's stored token stops working.
    let tokens = ok(&signed_in(&server, &alice_dir, "", &["operators", "tokens", "list"]).await);
    assert!(tokens.lines().any(|l| l.starts_with(&alice_token) && l.contains("active")), "{tokens}");
    let listed =
        ok(&signed_in(&server, &alice_dir, "", &["--json", "operators", "tokens", "list", "--operator", "carol"])
            .await);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let carol_token = listed[0]["id"].as_str().unwrap().to_owned();
    let revoked = ok(&signed_in(&server, &alice_dir, "", &["operators", "tokens", "revoke", &carol_token]).await);
    assert_eq!(revoked, format!("Revoked token {carol_token} of carol.\n"));
    let gone = refused(&signed_in(&server, &carol_dir, "", &["whoami"]).await);
    assert!(gone.contains("sign in again"), "{gone}");
    let tokens = ok(&signed_in(&server, &alice_dir, "", &["operators", "tokens", "list", "--operator", "carol"]).await);
    assert!(tokens.lines().any(|l| l.starts_with(&carol_token) && l.contains("revoked")), "{tokens}");
    ok(&signed_in(&server, &alice_dir, "", &["operators", "set-role", "carol", "operator"]).await);
    ok(&signed_in(&server, &alice_dir, "", &["operators", "disable", "carol"]).await);

    // The activity log tells all of it, newest first.
    let activity = ok(&signed_in(&server, &alice_dir, "", &["activity"]).await);
    assert!(activity.starts_with("AT "), "{activity}");
    assert!(!activity.lines().next().unwrap().contains("SITE"), "no SITE column off a master: {activity}");
    for action in ["sign_in.failed", "sign_in", "operator.create", "token.revoke", "operator.set_role"] {
        assert!(activity.contains(action), "{action} in {activity}");
    }
    assert!(activity.contains("role: auditor -> operator"), "{activity}");
    let mine =
        ok(&signed_in(&server, &alice_dir, "", &["--json", "activity", "--operator", "alice", "--since", "1h"]).await);
    let mine: Value = serde_json::from_str(&mine).unwrap();
    let mine = mine.as_array().unwrap();
    assert!(!mine.is_empty() && mine.iter().all(|e| e["operator"] == "alice"), "{mine:?}");
    let about_carol =
        ok(&signed_in(&server, &alice_dir, "", &["activity", "--object", "operator:carol", "--limit", "1"]).await);
    assert_eq!(about_carol.lines().count(), 3, "a header, one entry, and a note: {about_carol}");
    assert!(about_carol.contains("operator.disable"), "the newest: {about_carol}");

    // logout revokes and forgets; a revoked stored token is forgotten all the same.
    let out = ok(&signed_in(&server, &alice_dir, "", &["logout"]).await);
    assert_eq!(out, format!("Signed out of {}: token {alice_token} is revoked.\n", server.base));
    assert!(!stored[0].exists());
    let anonymous = refused(&signed_in(&server, &alice_dir, "", &["whoami"]).await);
    assert!(anonymous.contains("no token given: run `rampartctl login`"), "{anonymous}");
    refused(&signed_in(&server, &alice_dir, "", &["logout"]).await);
    let carol_out = signed_in(&server, &carol_dir, "", &["logout"]).await;
    ok(&carol_out);
    assert!(stderr(&carol_out).contains("no longer valid"), "{}", stderr(&carol_out));
    assert_eq!(std::fs::read_dir(carol_dir.join("tokens")).unwrap().count(), 0);
    let admin = ok(&ctl(&server, &["whoami"]).await);
    assert!(admin.contains("Token:     the server's own token"), "the server.xml token still works: {admin}");

    let _ = std::fs::remove_dir_all(alice_dir);
    let _ = std::fs::remove_dir_all(carol_dir);
    server.stop(&[]).await;
}

#[tokio::test]
async fn a_masters_activity_names_the_site() {
    let master = TestServer::spawn(ServerOptions::master()).await;
    let created = ctl(&master, &["operators", "create", "dave", "--role", "operator", "--password-stdin"]).await;
    // `ctl` gives no stdin: the password cannot be read, and nothing is created.
    refused(&created);
    let (status, _) = master
        .post(
            "/api/operators",
            serde_json::json!({"name": "dave", "role": "operator", "password": "dave long password"}),
        )
        .await;
    assert_eq!(status, 201);
    let activity = ok(&ctl(&master, &["activity"]).await);
    let header: Vec<&str> = activity.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["AT", "SITE", "OPERATOR", "ACTION", "OBJECT", "ADDRESS", "CHANGE"], "{activity}");
    assert!(activity.lines().any(|l| l.contains(" hq ") && l.contains("operator.create")), "{activity}");
    master.stop(&[]).await;
}
