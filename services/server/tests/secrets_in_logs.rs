//! A valid start logs no secret, even at debug level: a master and a
//! stand-alone run as real `rampart-server` processes on the real
//! PostgreSQL and RabbitMQ, the stand-alone installs its license, registers
//! to the master and stores an SMTP password, and neither process's output
//! holds an API token, a database password, the broker's credentials, the
//! license key, the event key, the registration token, the SMTP password or
//! any hierarchy key.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rampart_shared::{
    license::{License, VendorKey},
    topology::{self, NameSegment, Topology},
    Secret,
};
use serde_json::{json, Value};

const PG: &str = "127.0.0.1:5432";
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const WAIT: Duration = Duration::from_secs(60);

/// One `rampart-server --config` process and everything it printed.
struct Server {
    child: Child,
    output: Arc<Mutex<Vec<String>>>,
    /// The threads reading stdout and stderr; they end when the pipes close.
    readers: Vec<std::thread::JoinHandle<()>>,
    database_url: String,
}

impl Server {
    fn start(dir: &std::path::Path, name: &str, xml: &str, database_url: String) -> Self {
        let path = dir.join(format!("{name}.xml"));
        std::fs::write(&path, xml).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_rampart-server"))
            .arg("--config")
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary runs");
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap().push(line);
                }
            }));
        }
        Self { child, output, readers, database_url }
    }

    /// Everything printed so far, without terminal colour codes.
    fn text(&self) -> String {
        let raw = self.output.lock().unwrap().join("\n");
        let mut text = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                chars.by_ref().take_while(|c| *c != 'm').for_each(drop);
            } else {
                text.push(c);
            }
        }
        text
    }

    /// The API address from the start line (`api=HOST:PORT`, text or JSON).
    async fn api(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text();
            if let Some(line) = text.lines().find(|l| l.contains("Rampart server started.")) {
                let at = line
                    .find("api=")
                    .map(|i| i + 4)
                    .or_else(|| line.find("\"api\":\"").map(|i| i + 7))
                    .expect("the start line names the API");
                let rest = &line[at..];
                return format!("http://{}", &rest[..rest.find(['"', ' ']).unwrap_or(rest.len())]);
            }
            assert!(self.child.try_wait().unwrap().is_none(), "the server exited:\n{text}");
            assert!(Instant::now() < deadline, "the server did not start:\n{text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for a clean exit; returns everything printed.
    fn stop(&mut self) -> String {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Everything printed is read once both pipes are closed.
        let read_all = Instant::now() + Duration::from_secs(5);
        while !self.readers.iter().all(|r| r.is_finished()) && Instant::now() < read_all {
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = self.text();
        assert!(status.is_some_and(|s| s.success()), "the server did not stop cleanly ({status:?}):\n{text}");
        text
    }
}

impl Drop for Server {
    /// A failed assertion must not leave the process running.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn license_key() -> String {
    let vendor =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../ops/license/vendor-dev.key")).unwrap();
    let today = chrono::Utc::now().date_naive();
    License {
        license_id: uuid::Uuid::new_v4(),
        customer: "Paris Ltd".into(),
        seats: 100,
        issued_on: today,
        expires_on: today + chrono::Duration::days(30),
    }
    .issue(&VendorKey::from_hex(&vendor).unwrap())
}

async fn call(http: &reqwest::Client, method: reqwest::Method, url: String, token: &str, body: Value) -> Value {
    let response = http
        .request(method, &url)
        .bearer_auth(token)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

async fn one_text(database_url: &str, sql: &str) -> Vec<String> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let row = client.query_one(sql, &[]).await.unwrap();
    (0..row.len()).map(|i| row.get::<_, String>(i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_and_a_slave_at_debug_level_log_no_secret() {
    let namespace = format!("t_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let dir = std::env::temp_dir().join(format!("rampart-secrets-{namespace}"));
    std::fs::create_dir_all(&dir).unwrap();
    let (master_token, site_token) = ("master-api-SECRET-0123456789", "site-api-SECRET-9876543210");
    let (db_password, event_key, smtp_password) =
        ("db-pw-SECRET-1234", "event-key-SECRET-abcdef012345", "smtp-pw-SECRET-5678");
    let license = license_key();
    let database = |db: &str| format!("postgres://root:{db_password}@{PG}/{db}");
    let (master_db, site_db) =
        (format!("rt_{}", uuid::Uuid::new_v4().simple()), format!("rt_{}", uuid::Uuid::new_v4().simple()));
    let xml = |name: &str, role: &str, db: &str, token: &str, extra: &str, format: &str| {
        format!(
            "<Server><Instance><Name>{name}</Name><Role>{role}</Role></Instance>
               <Database><Url>{}</Url><PoolSize>4</PoolSize></Database>
               <Broker><Url>{AMQP_URL}</Url><Namespace>{namespace}</Namespace></Broker>
               <Api><Listen>127.0.0.1:0</Listen><Token>{token}</Token><Plain>true</Plain><PlainRegistration>true</PlainRegistration></Api>{extra}
               <Log><Format>{format}</Format><Level>debug</Level></Log></Server>",
            database(db)
        )
    };
    let mut master = Server::start(
        &dir,
        "hq",
        &xml(
            "hq",
            "master",
            &master_db,
            master_token,
            &format!("<Reports><EventKey>{event_key}</EventKey></Reports>"),
            "json",
        ),
        database(&master_db),
    );
    let mut site = Server::start(
        &dir,
        "paris",
        &xml("paris", "standalone", &site_db, site_token, &format!("<License><Key>{license}</Key></License>"), "text"),
        database(&site_db),
    );
    let (master_api, site_api) = (master.api().await, site.api().await);

    // Registration, and an SMTP password stored on the site.
    let http = reqwest::Client::new();
    let issued =
        call(&http, reqwest::Method::POST, format!("{master_api}/api/registration-tokens"), master_token, json!({}))
            .await;
    let registration_token = issued["token"].as_str().unwrap().to_owned();
    let master_address = master_api.trim_start_matches("http://");
    let joined = call(
        &http,
        reqwest::Method::POST,
        format!("{site_api}/api/hierarchy/register"),
        site_token,
        json!({"master": master_address, "token": registration_token}),
    )
    .await;
    assert_eq!(joined["role"], "slave", "{joined}");
    let email = json!({"smtp_host": "mail.example.com", "username": "rampart", "password": smtp_password,
                       "from": "rampart@example.com", "to": ["soc@example.com"]});
    call(&http, reqwest::Method::PUT, format!("{site_api}/api/settings/email"), site_token, email).await;
    call(
        &http,
        reqwest::Method::POST,
        format!("{master_api}/api/policies"),
        master_token,
        json!({"name": "Signed", "target": {"slaves": "all"}}),
    )
    .await;

    // The keys the hierarchy now holds.
    let master_key = one_text(&master.database_url, "SELECT master_key FROM instance").await;
    let slave_keys = one_text(&site.database_url, "SELECT slave_key, command_key FROM master_link").await;

    let databases = [master.database_url.clone(), site.database_url.clone()];
    let outputs = [("hq", master.stop()), ("paris", site.stop())];
    drop((master, site));
    let secrets: Vec<(&str, &str)> = [
        ("the master's API token", master_token),
        ("the site's API token", site_token),
        ("the database password", db_password),
        ("the broker credentials", "guest:guest"),
        ("the event key", event_key),
        ("the license key", license.as_str()),
        ("the registration token", registration_token.as_str()),
        ("the SMTP password", smtp_password),
        ("the master key", master_key[0].as_str()),
        ("the slave key", slave_keys[0].as_str()),
        ("the command key", slave_keys[1].as_str()),
    ]
    .into_iter()
    .collect();
    for (server, output) in &outputs {
        assert!(
            output.contains("DEBUG") || output.contains("\"level\":\"DEBUG\""),
            "{server} logged at debug level:\n{output}"
        );
        for (what, secret) in &secrets {
            if let Some(line) = output.lines().find(|l| l.contains(secret)) {
                panic!("{server} logged {what}: {line}");
            }
        }
    }
    assert!(outputs[0].1.contains("Registered a slave."), "{}", outputs[0].1);

    for url in &databases {
        let _ = rampart_shared::db::drop_database(url).await;
    }
    let topo = Topology::new(&NameSegment::parse(&namespace).unwrap());
    let broker = rampart_shared::amqp::Broker::new(Secret::new(AMQP_URL.to_owned()), "rampart-server tests teardown");
    if let Ok(channel) = broker.channel().await {
        for q in [
            topo.master_status_queue(),
            topo.master_replication_queue(),
            topo.report_events_queue(),
            topo.site_inbox("paris"),
            topo.slave_commands_queue("paris"),
        ] {
            let _ = topology::delete_queue(&channel, &q).await;
        }
        let _ = topology::delete_exchanges(&channel, &topo).await;
    }
    broker.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
