//! `rampart-server check-config PATH`: exit 0 on a valid file, 2 with the
//! element at fault otherwise, before anything is connected.

use std::process::Command;

fn check(xml: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("rampart-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{:x}.xml", xml.len() * 7919 + xml.bytes().map(usize::from).sum::<usize>()));
    std::fs::write(&path, xml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart-server")).arg("check-config").arg(&path).output().unwrap();
    let _ = std::fs::remove_file(&path);
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

const GOOD: &str = "<Server><Instance><Name>paris</Name></Instance>
<Database><Url>postgres://root@127.0.0.1:1/unused</Url></Database>
<Broker><Url>amqp://guest:guest@127.0.0.1:1/%2f</Url></Broker>
<Api><Token>0123456789abcdef0123</Token></Api></Server>";

#[test]
fn a_valid_file_exits_zero_and_shows_the_defaults() {
    let (code, out) = check(GOOD);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("replication every 1800 s") && out.contains("7073"), "{out}");
}

#[test]
fn the_shipped_examples_are_valid() {
    for file in ["standalone.xml", "lyon.xml", "master.xml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/config").join(file);
        let out = Command::new(env!("CARGO_BIN_EXE_rampart-server")).arg("check-config").arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn each_kind_of_bad_file_exits_two_naming_the_problem() {
    let cases = [
        (
            GOOD.replace("</Api>", "</Api><ReplicationInterval>0</ReplicationInterval>"),
            "<ReplicationInterval>: must be at least 1",
        ),
        (GOOD.replace("</Api>", "</Api><ReplicationInterval>often</ReplicationInterval>"), "<ReplicationInterval>"),
        (GOOD.replace("</Api>", "</Api><Shiny>yes</Shiny>"), "Shiny"),
        (GOOD.replace("<Broker><Url>amqp://guest:guest@127.0.0.1:1/%2f</Url></Broker>", ""), "missing field `Broker`"),
        (GOOD.replace("</Database>", "</Databse>"), "malformed XML at line 2"),
        (format!("<!DOCTYPE Server [<!ENTITY x \"y\">]>{GOOD}"), "DOCTYPE"),
        (GOOD.replace("<Name>paris</Name>", "<Name>paris</Name><Role>emperor</Role>"), "<Role>"),
    ];
    for (xml, expected) in cases {
        let (code, out) = check(&xml);
        assert_eq!(code, 2, "{expected}: {out}");
        assert!(out.contains(expected), "expected '{expected}' in: {out}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rampart-server"))
        .args(["check-config", "/nonexistent/server.xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
