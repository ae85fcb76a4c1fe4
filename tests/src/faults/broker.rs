//! A private RabbitMQ node for one fault test.
//!
//! The node runs as the `rabbitmq` user (it needs the Erlang cookie in
//! `/var/lib/rabbitmq`) with its own name, ports, data and logs under
//! [`work_root`](super::work_root), listening on 127.0.0.1 only. Its
//! heartbeat is [`HEARTBEAT`], so a frozen node is noticed by its clients
//! within seconds rather than the default minute and a half. Stopping,
//! killing or freezing it disturbs nobody else. The guard kills the node
//! and removes its directory when dropped.

use std::{path::PathBuf, time::Duration};

use rampart_shared::{amqp::Broker, Secret};
use tokio::time::Instant;

use super::{alive, free_port, give_to, run_as, signal, work_root};

/// The AMQP heartbeat the node proposes to its clients, in seconds; lapin
/// takes the lower of the node's and its own (none), and closes a
/// connection that has heard nothing for two heartbeats.
pub const HEARTBEAT: u64 = 4;
/// Longest a start (or a start after a kill) may take.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Fresh starts tried before a test fails: a port found free may be taken
/// by another process before the node binds it, and the node then stops.
const START_ATTEMPTS: u32 = 3;
/// Bound of one `rabbitmqctl` call.
const CTL_TIMEOUT: Duration = Duration::from_secs(60);

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const CTL: &str = "/usr/lib/rabbitmq/bin/rabbitmqctl";

/// A running private node.
pub struct PrivateBroker {
    /// `rt<id>@localhost`.
    pub node: String,
    /// The AMQP port on 127.0.0.1.
    pub port: u16,
    /// Erlang distribution port (rabbitmqctl talks to the node there).
    dist_port: u16,
    /// The management API's port on 127.0.0.1, when the node runs the plugin.
    pub management_port: Option<u16>,
    /// The AMQPS port on 127.0.0.1, when the node has a TLS listener.
    pub tls_port: Option<u16>,
    dir: PathBuf,
}

/// A TLS listener for a private node: PEM texts of its certificate chain's
/// CA, its certificate and its key.
pub struct TlsListener {
    pub ca_pem: String,
    pub certificate_pem: String,
    pub key_pem: String,
}

impl PrivateBroker {
    /// Starts a fresh node and waits until it accepts AMQP connections.
    pub async fn start() -> Self {
        Self::start_node(false, &[], None).await
    }

    /// Starts a fresh node running the management plugin on a spare port
    /// (statistics every second, so a new connection is listed quickly),
    /// and waits until both AMQP and the management API serve. Its
    /// `guest` user has the administrator tag.
    pub async fn start_with_management() -> Self {
        let broker = Self::start_node(true, &[], None).await;
        broker.wait_management().await;
        broker
    }

    /// [`Self::start_with_management`] with the shovel and federation
    /// plugins too, as a site's broker linked to its master's.
    pub async fn start_with_links() -> Self {
        let links =
            ["rabbitmq_shovel", "rabbitmq_shovel_management", "rabbitmq_federation", "rabbitmq_federation_management"];
        let broker = Self::start_node(true, &links, None).await;
        broker.wait_management().await;
        broker
    }

    /// [`Self::start_with_management`] with an AMQPS listener too (on
    /// [`Self::tls_port`]), serving `tls`'s certificate.
    pub async fn start_with_tls(tls: TlsListener) -> Self {
        let broker = Self::start_node(true, &[], Some(tls)).await;
        broker.wait_management().await;
        broker
    }

    /// Writes `contents` to `name` in the node's directory (readable by
    /// the node, e.g. a CA file a shovel's URI names); returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, contents).expect("a file in the private broker's directory");
        path
    }

    /// `<Management>` of a server whose broker is this node, with the
    /// node's `guest` administrator written to a credentials file.
    pub fn management_xml(&self) -> String {
        let file = self.dir.join("admin.credentials");
        std::fs::write(&file, "guest:guest\n").expect("credentials file");
        format!(
            "<Management><Url>{}</Url><CredentialsFile>{}</CredentialsFile></Management>",
            self.management_url(),
            file.display()
        )
    }

    /// Starts a fresh node on ports found free; when one was taken before
    /// the node bound it (the node stops with `eaddrinuse`), starts it
    /// again on other ports, up to [`START_ATTEMPTS`] times.
    async fn start_node(management: bool, extra_plugins: &[&str], tls: Option<TlsListener>) -> Self {
        for attempt in 1..=START_ATTEMPTS {
            let broker = Self::configure(management, extra_plugins, tls.as_ref());
            match broker.try_launch().await {
                Ok(()) => return broker,
                Err(why) if attempt < START_ATTEMPTS && broker.log_tail(200).contains("eaddrinuse") => {
                    eprintln!(
                        "the private broker {} found a port taken ({why}); starting it on other ports",
                        broker.node
                    );
                }
                Err(why) => broker.failed(&why),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// A fresh node's directory, configuration and ports (not started).
    fn configure(management: bool, extra_plugins: &[&str], tls: Option<&TlsListener>) -> Self {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let dir = work_root().join(format!("rabbit-{id}"));
        std::fs::create_dir_all(dir.join("mnesia")).expect("private broker directory");
        std::fs::create_dir_all(dir.join("log")).expect("private broker log directory");
        let mut conf = format!("heartbeat = {HEARTBEAT}\n");
        let management_port = management.then(free_port);
        let plugins = match management_port {
            Some(port) => {
                conf.push_str(&format!(
                    "management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {port}\ncollect_statistics_interval = 1000\n"
                ));
                let mut all = vec!["rabbitmq_management"];
                all.extend_from_slice(extra_plugins);
                format!("[{}].\n", all.join(","))
            }
            None => "[].\n".to_owned(),
        };
        let tls_port = tls.map(|tls| {
            let port = free_port();
            for (name, pem) in [("ca.pem", &tls.ca_pem), ("cert.pem", &tls.certificate_pem), ("key.pem", &tls.key_pem)]
            {
                std::fs::write(dir.join(name), pem).expect("a TLS file");
            }
            let d = dir.display();
            conf.push_str(&format!(
                "listeners.ssl.default = 127.0.0.1:{port}\nssl_options.cacertfile = {d}/ca.pem\n\
                 ssl_options.certfile = {d}/cert.pem\nssl_options.keyfile = {d}/key.pem\n\
                 ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n"
            ));
            port
        });
        std::fs::write(dir.join("enabled_plugins"), plugins).expect("plugins file");
        std::fs::write(dir.join("rabbitmq.conf"), conf).expect("broker configuration");
        give_to("rabbitmq", &dir);
        Self {
            node: format!("rt{id}@localhost"),
            port: free_port(),
            dist_port: free_port(),
            management_port,
            tls_port,
            dir,
        }
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let d = self.dir.display();
        vec![
            ("HOME", "/var/lib/rabbitmq".into()),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
            ("RABBITMQ_NODENAME", self.node.clone()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT", self.port.to_string()),
            ("RABBITMQ_DIST_PORT", self.dist_port.to_string()),
            ("RABBITMQ_MNESIA_BASE", format!("{d}/mnesia")),
            ("RABBITMQ_LOG_BASE", format!("{d}/log")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", format!("{d}/enabled_plugins")),
            ("RABBITMQ_CONFIG_FILE", format!("{d}/rabbitmq.conf")),
            ("RABBITMQ_PID_FILE", format!("{d}/pid")),
            // No busy-waiting schedulers: several nodes share two cores.
            ("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "+sbwt none +sbwtdcpu none +sbwtdio none".into()),
        ]
    }

    /// Starts the node again on the data of a killed one and waits until
    /// it serves.
    async fn launch(&self) {
        if let Err(why) = self.try_launch().await {
            self.failed(&why);
        }
    }

    /// Fails the test: the node `why`, with the end of its log.
    fn failed(&self, why: &str) -> ! {
        panic!("the private broker {} {why}; its log ({}) ends:\n{}", self.node, self.dir.display(), self.log_tail(40))
    }

    /// Starts the node and waits until it serves, or says why it does not.
    async fn try_launch(&self) -> Result<(), String> {
        let _ = std::fs::remove_file(self.dir.join("pid"));
        run_as("rabbitmq", &self.env(), SERVER.as_ref(), &["-detached"], CTL_TIMEOUT)
            .await
            .map_err(|e| format!("could not be started: {e:#}"))?;
        self.serving().await
    }

    /// Waits until a client can connect and open a channel.
    pub async fn wait_serving(&self) {
        if let Err(why) = self.serving().await {
            self.failed(&why);
        }
    }

    /// Waits until a client can connect and open a channel; fails when the
    /// node's process is gone (a boot that failed) or after [`START_TIMEOUT`].
    async fn serving(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let probe = Broker::new(Secret::new(self.url()), "rampart-tests broker probe");
            let served = probe.channel().await.is_ok();
            probe.close().await;
            if served {
                return Ok(());
            }
            let pid = std::fs::read_to_string(self.dir.join("pid")).ok().and_then(|t| t.trim().parse::<u32>().ok());
            if pid.is_some_and(|pid| !alive(pid)) {
                return Err("stopped before it served".into());
            }
            if Instant::now() >= deadline {
                return Err(format!("did not serve within {START_TIMEOUT:?}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The last `lines` lines of the node's logs (what it said before a
    /// failed start), for a failing test's message.
    fn log_tail(&self, lines: usize) -> String {
        let Ok(entries) = std::fs::read_dir(self.dir.join("log")) else {
            return "(no log directory)".into();
        };
        let mut tail = String::new();
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            tail.push_str(&format!("--- {}\n", entry.file_name().to_string_lossy()));
            for line in &all[all.len().saturating_sub(lines)..] {
                tail.push_str(line);
                tail.push('\n');
            }
        }
        tail
    }

    /// `http://127.0.0.1:<port>` of the management API.
    pub fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.management_port.expect("the node runs the management plugin"))
    }

    /// A management client authenticated as the node's `guest` administrator.
    pub fn management(&self) -> rampart_shared::broker_admin::ManagementClient {
        let password = Secret::new("guest".to_owned());
        rampart_shared::broker_admin::ManagementClient::new(&self.management_url(), "guest", password)
            .expect("a valid management URL")
    }

    async fn wait_management(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while let Err(error) = self.management().overview().await {
            assert!(Instant::now() < deadline, "the management API of {} does not serve: {error}", self.node);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `rabbitmqctl -n <node> ARGS`.
    pub async fn ctl(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.node.as_str()];
        all.extend_from_slice(args);
        let output = run_as("rabbitmq", &self.env(), CTL.as_ref(), &all, CTL_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("rabbitmqctl on {}: {e:#}", self.node));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Stops the RabbitMQ application (every connection is closed; the
    /// Erlang node stays up), as an operator's `rabbitmqctl stop_app`.
    pub async fn stop_app(&self) {
        self.ctl(&["stop_app"]).await;
    }

    /// Starts the application again and waits until it serves.
    pub async fn start_app(&self) {
        self.ctl(&["start_app"]).await;
        self.wait_serving().await;
    }

    /// The beam process of the node.
    pub fn pid(&self) -> u32 {
        let text = std::fs::read_to_string(self.dir.join("pid")).unwrap_or_default();
        text.trim().parse().unwrap_or_else(|_| panic!("no pid file for the private broker {}", self.node))
    }

    /// `kill -9` of the node: nothing is flushed or closed. Returns once the
    /// process is gone.
    pub async fn kill(&self) {
        let pid = self.pid();
        signal(pid, "-KILL");
        let deadline = Instant::now() + Duration::from_secs(30);
        while alive(pid) {
            assert!(Instant::now() < deadline, "the private broker {pid} survived kill -9 for 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a killed node again on the same data, and waits until it serves.
    pub async fn restart(&self) {
        self.launch().await;
    }

    /// SIGSTOP: the node keeps its sockets open but answers nothing.
    pub fn freeze(&self) {
        assert!(signal(self.pid(), "-STOP"), "SIGSTOP to the private broker failed");
    }

    /// SIGCONT after [`freeze`](Self::freeze).
    pub fn thaw(&self) {
        assert!(signal(self.pid(), "-CONT"), "SIGCONT to the private broker failed");
    }

    /// `(ready, unacknowledged, consumers)` of every queue, by name.
    pub async fn queues(&self) -> Vec<(String, u64, u64, u64)> {
        let listing = self
            .ctl(&[
                "list_queues",
                "-q",
                "--no-table-headers",
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "consumers",
            ])
            .await;
        listing
            .lines()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                let name = f.next()?.to_owned();
                let n = |x: Option<&str>| x.and_then(|v| v.parse().ok());
                Some((name, n(f.next())?, n(f.next())?, n(f.next())?))
            })
            .collect()
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(self.dir.join("pid")) {
            if let Ok(pid) = text.trim().parse::<u32>() {
                signal(pid, "-CONT");
                signal(pid, "-KILL");
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while alive(pid) && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        // A failing test keeps the node's data and logs to be read.
        if std::thread::panicking() {
            eprintln!("the private broker {} kept its data and logs in {}", self.node, self.dir.display());
        } else if std::env::var_os("RAMPART_FAULTS_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
