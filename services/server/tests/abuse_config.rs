//! Bad `server.xml` files against the real `rampart-server` binary, both
//! `check-config PATH` and a normal start (`--config PATH`): each exits 2
//! with a message naming the element, within seconds and in bounded memory,
//! without creating a database or connecting anywhere, and without printing
//! a secret of the file.
//!
//! The database and broker URLs point at TCP listeners this test owns: a
//! refused file must leave both without a single connection.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Longest a refusal may take (the whole process, start to exit).
const QUICK: Duration = Duration::from_secs(5);
/// Address space the refusing process gets (`ulimit -v`, KiB): a file or an
/// entity expansion that needed more would fail differently than by exit 2.
const MEMORY_KIB: u32 = 256 * 1024;

const API_TOKEN: &str = "api-token-SECRET-4711-abcdef";
const DB_PASSWORD: &str = "db-pw-SECRET-0815";
const BROKER_PASSWORD: &str = "broker-pw-SECRET-2342";

/// Listeners standing in for PostgreSQL and RabbitMQ, and a scratch directory.
struct Fixture {
    database: TcpListener,
    broker: TcpListener,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("rampart-abuse-config-{}-{:x}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let listen = || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            l
        };
        Self { database: listen(), broker: listen(), dir }
    }

    /// A valid file whose every secret is one of the constants above.
    fn good(&self) -> String {
        format!(
            "<Server>
  <Instance><Name>paris</Name></Instance>
  <Database><Url>postgres://root:{DB_PASSWORD}@127.0.0.1:{}/rt_never</Url></Database>
  <Broker><Url>amqp://guest:{BROKER_PASSWORD}@127.0.0.1:{}/%2f</Url><Namespace>t_never</Namespace></Broker>
  <Api><Listen>127.0.0.1:0</Listen><Token>{API_TOKEN}</Token></Api>
</Server>",
            self.database.local_addr().unwrap().port(),
            self.broker.local_addr().unwrap().port()
        )
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Fails if anything connected to the stand-in database or broker.
    fn assert_untouched(&self, what: &str) {
        for (listener, service) in [(&self.database, "database"), (&self.broker, "broker")] {
            match listener.accept() {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Ok(_) => panic!("{what}: the server connected to the {service}"),
                Err(e) => panic!("{what}: {e}"),
            }
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    output: String,
    took: Duration,
}

/// Runs `rampart-server ARGS` under the memory limit, killed after `QUICK` * 4.
fn server(args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Run {
    let started = Instant::now();
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -v {MEMORY_KIB} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_rampart-server"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the server binary runs");
    let deadline = started + QUICK * 4;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Run { code: out.status.code(), output, took: started.elapsed() }
}

/// Both ways a file is read: `check-config PATH` and `--config PATH`.
fn both_ways(path: &Path, env: &[(&str, &str)]) -> [(&'static str, Run); 2] {
    [
        ("check-config", server(&["check-config".as_ref(), path.as_os_str()], env)),
        ("--config", server(&["--config".as_ref(), path.as_os_str()], env)),
    ]
}

/// Asserts a refusal: exit 2, quick, the expected words, no secret.
fn assert_refused(fixture: &Fixture, case: &str, run: &Run, mode: &str, expected: &[&str], secrets: &[&str]) {
    let what = format!("{case} ({mode})");
    assert_eq!(run.code, Some(2), "{what}: exit code {:?}, output:\n{}", run.code, run.output);
    assert!(run.took < QUICK, "{what}: took {:?}", run.took);
    for word in expected {
        assert!(run.output.contains(word), "{what}: expected '{word}' in:\n{}", run.output);
    }
    for secret in [API_TOKEN, DB_PASSWORD, BROKER_PASSWORD].iter().chain(secrets) {
        assert!(!run.output.contains(secret), "{what}: a secret was printed:\n{}", run.output);
    }
    fixture.assert_untouched(&what);
}

#[test]
fn every_kind_of_bad_file_exits_2_naming_the_element_and_touches_nothing() {
    let fixture = Fixture::new();
    let good = fixture.good();
    let replace = |from: &str, to: &str| {
        assert!(good.contains(from), "the case edits '{from}'");
        good.replace(from, to)
    };
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("malformed XML", replace("</Broker>", "</Brokr>"), vec!["malformed XML at line 4"]),
        (
            "not XML, with a password",
            "password = hunter2-SECRET\n".to_owned(),
            vec!["<Server>", "line 1", "outside the <Server> element"],
        ),
        ("no root element", "<!-- nothing -->".to_owned(), vec!["has no <Server> element"]),
        ("wrong root", good.replace("Server>", "Serveur>"), vec!["<Serveur>", "root element must be <Server>"]),
        ("unknown top element", replace("</Server>", "<Colour>red</Colour></Server>"), vec!["Colour"]),
        (
            "unknown nested element",
            replace("</Broker>", "<Exchange>x</Exchange></Broker>"),
            vec!["<Server>/<Broker>", "Exchange"],
        ),
        (
            "a duplicated element",
            replace("<Name>paris</Name>", "<Name>paris</Name><Name>lyon</Name>"),
            vec!["<Server>/<Instance>", "duplicate field `Name`"],
        ),
        ("an attribute", replace("<Server>", "<Server debug=\"yes\">"), vec!["<Server>", "unknown field `@debug`"]),
        (
            "a number that is text",
            replace("</Database>", "<PoolSize>many</PoolSize></Database>"),
            vec!["<Server>/<Database>/<PoolSize>"],
        ),
        (
            "a number out of range",
            replace("</Broker>", "<Prefetch>70000</Prefetch></Broker>"),
            vec!["<Server>/<Broker>/<Prefetch>"],
        ),
        (
            "a negative duration",
            replace("</Server>", "<Endpoints><HeartbeatSeconds>-5</HeartbeatSeconds></Endpoints></Server>"),
            vec!["<Server>/<Endpoints>/<HeartbeatSeconds>"],
        ),
        (
            "an address that is none",
            replace("<Listen>127.0.0.1:0</Listen>", "<Listen>nowhere</Listen>"),
            vec!["<Server>/<Api>/<Listen>"],
        ),
        (
            "an unknown role",
            replace("<Name>paris</Name>", "<Name>paris</Name><Role>emperor</Role>"),
            vec!["<Server>/<Instance>/<Role>"],
        ),
        (
            "a bad instance name",
            replace("<Name>paris</Name>", "<Name>Paris Site</Name>"),
            vec!["<Server>/<Instance>/<Name>"],
        ),
        ("no instance name", replace("<Name>paris</Name>", ""), vec!["<Server>/<Instance>", "missing field `Name`"]),
        (
            "no database URL",
            good.replace(&good[good.find("<Url>postgres").unwrap()..good.find("</Database>").unwrap()], ""),
            vec!["<Server>/<Database>", "missing field `Url`"],
        ),
        (
            "no broker",
            good.replace(&good[good.find("<Broker>").unwrap()..good.find("<Api>").unwrap()], ""),
            vec!["missing field `Broker`"],
        ),
        (
            "a database URL of another kind",
            replace("postgres://root", "mysql://root"),
            vec!["<Server>/<Database>/<Url>"],
        ),
        ("a broker URL of another kind", replace("amqp://guest", "http://guest"), vec!["<Server>/<Broker>/<Url>"]),
        (
            "a short API token",
            replace(API_TOKEN, "tiny-S3CRET"),
            vec!["<Server>/<Api>/<Token>", "at least 16 characters"],
        ),
        (
            "no API token",
            replace(&format!("<Token>{API_TOKEN}</Token>"), ""),
            vec!["<Server>/<Api>", "API token is required"],
        ),
        (
            "a token file that is missing",
            replace(&format!("<Token>{API_TOKEN}</Token>"), "<TokenFile>no-such.token</TokenFile>"),
            vec!["<Server>/<Api>/<TokenFile>", "no-such.token"],
        ),
        (
            "a token file that never ends",
            replace(&format!("<Token>{API_TOKEN}</Token>"), "<TokenFile>/dev/zero</TokenFile>"),
            vec!["<Server>/<Api>/<TokenFile>", "/dev/zero", "limit"],
        ),
        (
            "a forged license key",
            replace("</Server>", "<License><Key>RAMPART1.bGljZW5zZQ.U0VDUkVULWtleQ</Key></License></Server>"),
            vec!["<Server>/<License>/<Key>"],
        ),
        (
            "an external entity",
            format!("<!DOCTYPE Server [<!ENTITY pw SYSTEM \"file:///etc/passwd\">]>\n{}", replace("paris", "&pw;")),
            vec!["line 1", "DOCTYPE"],
        ),
        (
            "an undeclared entity",
            replace("<Name>paris</Name>", "<Name>&lol;</Name>"),
            vec!["<Server>/<Instance>/<Name>"],
        ),
    ];
    for (case, xml, expected) in &cases {
        let path = fixture.write("server.xml", xml);
        for (mode, run) in both_ways(&path, &[]) {
            assert_refused(
                &fixture,
                case,
                &run,
                mode,
                expected,
                &["tiny-S3CRET", "U0VDUkVULWtleQ", "root:x:0", "hunter2-SECRET"],
            );
        }
    }

    // A bad environment override is named like an element.
    let path = fixture.write("server.xml", &good);
    for (variable, value) in
        [("RAMPART_NAMESPACE", "Bad Namespace"), ("RAMPART_API_LISTEN", "7073"), ("RAMPART_AMQP_URL", "http://x")]
    {
        for (mode, run) in both_ways(&path, &[(variable, value)]) {
            let expected = if variable == "RAMPART_AMQP_URL" { "<Server>/<Broker>/<Url>" } else { variable };
            assert_refused(&fixture, variable, &run, mode, &[expected], &[]);
        }
    }
}

/// The "billion laughs": ten levels of ten references, 10^9 copies of "lol"
/// if a parser expanded them.
fn entity_bomb(good: &str) -> String {
    let mut doctype = String::from("<!DOCTYPE Server [\n  <!ENTITY lol0 \"lol\">\n");
    for level in 1..=9 {
        let refs: String = (0..10).map(|_| format!("&lol{};", level - 1)).collect();
        doctype.push_str(&format!("  <!ENTITY lol{level} \"{refs}\">\n"));
    }
    doctype.push_str("]>\n");
    format!("{doctype}{}", good.replace("<Name>paris</Name>", "<Name>&lol9;</Name>"))
}

#[test]
fn an_entity_bomb_and_a_huge_file_are_refused_at_once_in_little_memory() {
    let fixture = Fixture::new();
    let bomb = fixture.write("bomb.xml", &entity_bomb(&fixture.good()));
    for (mode, run) in both_ways(&bomb, &[]) {
        assert_refused(&fixture, "entity bomb", &run, mode, &["DOCTYPE", "not allowed"], &["lollol"]);
    }

    // 512 MiB on disk (sparse: no disk space used), twice the address space the process gets.
    let huge = fixture.dir.join("huge.xml");
    std::fs::File::create(&huge).unwrap().set_len(512 * 1024 * 1024).unwrap();
    for (mode, run) in both_ways(&huge, &[]) {
        assert_refused(&fixture, "huge file", &run, mode, &["huge.xml", "bytes", "limit"], &[]);
    }
    // A file just over the limit, made of what a real file holds: refused the same way.
    let padded = fixture.good().replace("</Server>", &format!("<!-- {} --></Server>", "x".repeat(1024 * 1024)));
    let path = fixture.write("padded.xml", &padded);
    for (mode, run) in both_ways(&path, &[]) {
        assert_refused(&fixture, "a file over the limit", &run, mode, &["padded.xml", "limit"], &[]);
    }
}

/// The same refusals against the real PostgreSQL and RabbitMQ: a fresh
/// database name and namespace, and afterwards neither exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_creates_no_database_and_declares_nothing_on_the_real_services() {
    let fixture = Fixture::new();
    let suffix = format!("{:x}", rand_suffix());
    let (database, namespace) = (format!("rt_{suffix}"), format!("t_{}", &suffix[suffix.len() - 12..]));
    let real = fixture
        .good()
        .replace(
            &format!("127.0.0.1:{}/rt_never", fixture.database.local_addr().unwrap().port()),
            &format!("127.0.0.1:5432/{database}"),
        )
        .replace(
            &format!("guest:{BROKER_PASSWORD}@127.0.0.1:{}", fixture.broker.local_addr().unwrap().port()),
            "guest:guest@127.0.0.1:5672",
        )
        .replace("t_never", &namespace);
    for (case, xml) in [
        (
            "a forged license key",
            real.replace("</Server>", "<License><Key>RAMPART1.bGljZW5zZQ.U0VDUkVU</Key></License></Server>"),
        ),
        ("an unknown element", real.replace("</Server>", "<Colour>red</Colour></Server>")),
        ("a bad namespace", real.replace(&namespace, "Not-A-Namespace")),
    ] {
        let path = fixture.write("real.xml", &xml);
        let run = server(&["--config".as_ref(), path.as_os_str()], &[]);
        assert_eq!(run.code, Some(2), "{case}: {}", run.output);
    }
    let (client, connection) =
        tokio_postgres::connect("postgres://root@127.0.0.1:5432/postgres", tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let created = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database]).await.unwrap();
    assert!(created.is_none(), "a refused file created the database {database}");
    let broker = rampart_shared::amqp::Broker::new(
        rampart_shared::Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f".into()),
        "abuse_config probe",
    );
    let channel = broker.channel().await.unwrap();
    let passive = lapin::options::ExchangeDeclareOptions { passive: true, ..Default::default() };
    let declared = channel
        .exchange_declare(
            format!("{namespace}.site").as_str().into(),
            lapin::ExchangeKind::Topic,
            passive,
            Default::default(),
        )
        .await;
    assert!(declared.is_err(), "a refused file declared {namespace}.site");
    broker.close().await;
}
