//! The master under test: the real `rampart-server` binary as a child
//! process, so its peak memory is its own, stopped and started again on the
//! same database and port (slaves keep its address).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{bail, Context};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::process::{Child, Command};

/// How long the master gets to start or stop.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts tried before giving up.
const START_ATTEMPTS: u32 = 3;

/// What the master is started with.
pub struct MasterConfig {
    /// The `rampart-server` binary.
    pub binary: PathBuf,
    /// Where its server.xml and log go.
    pub work_dir: PathBuf,
    pub database_url: String,
    pub amqp_url: String,
    pub namespace: String,
    /// `HOST:PORT` of its API (fixed, so a restart keeps it).
    pub listen: String,
    pub token: String,
    pub pool_size: usize,
    /// The `<Reports>` element (report service and event key), if any.
    pub reports_xml: String,
}

impl MasterConfig {
    fn xml(&self) -> String {
        format!(
            "<Server><Instance><Name>bench-hq</Name><Role>master</Role></Instance>
               <Database><Url>{}</Url><PoolSize>{}</PoolSize></Database>
               <Broker><Url>{}</Url><Namespace>{}</Namespace></Broker>
               <Api><Listen>{}</Listen><Token>{}</Token><Plain>true</Plain><PlainRegistration>true</PlainRegistration></Api>
               {}
               <Log><Format>json</Format><Level>warn</Level></Log></Server>",
            self.database_url, self.pool_size, self.amqp_url, self.namespace, self.listen, self.token, self.reports_xml
        )
    }

    fn config_path(&self) -> PathBuf {
        self.work_dir.join("master.xml")
    }

    fn log_path(&self) -> PathBuf {
        self.work_dir.join("master.log")
    }
}

/// A running master.
pub struct Master {
    child: Child,
    pub base: String,
    /// Its API with the bootstrap token.
    pub api: Api,
}

impl Master {
    /// Writes the configuration, starts the binary and waits for `/health`.
    /// A master that exits while starting (its broker or database did not
    /// answer in time, as happens under heavy disk load) is started again,
    /// at most [`START_ATTEMPTS`] times.
    pub async fn start(config: &MasterConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.work_dir).with_context(|| format!("creating {}", config.work_dir.display()))?;
        std::fs::write(config.config_path(), config.xml()).context("writing the master's server.xml")?;
        let mut attempt = 1;
        loop {
            let mut master = Self::spawn(config)?;
            match master.wait_healthy(config).await {
                Ok(()) => return Ok(master),
                Err(e) if attempt < START_ATTEMPTS && master.child.try_wait()?.is_some() => {
                    tracing::warn!(attempt, error = %format!("{e:#}"), "The master exited while starting; starting it again.");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn spawn(config: &MasterConfig) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.log_path())
            .context("opening the master's log")?;
        let child = Command::new(&config.binary)
            .arg("--config")
            .arg(config.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} (build it with the benchmark)", config.binary.display()))?;
        let base = format!("http://{}", config.listen);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { child, api: Api::new(&base, &config.token, http), base })
    }

    async fn wait_healthy(&mut self, config: &MasterConfig) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(r) = self.api.http.get(format!("{}/health", self.base)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the master exited with {status} while starting; see {}", config.log_path().display());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the master did not answer /health within {START_TIMEOUT:?}; see {}",
                    config.log_path().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Peak resident memory of the process so far, in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let pid = self.pid().context("the master has exited")?;
        peak_rss_of(pid)
    }

    /// Calls the API; the status and the JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<(StatusCode, Value)> {
        self.api.call(method, path, body).await
    }

    /// A call that must succeed.
    pub async fn call_ok(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.api.call_ok(method, path, body).await
    }

    /// Stops the master as an operator would (SIGTERM, then waits).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
        }
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                tracing::warn!("The master did not stop within {STOP_TIMEOUT:?}; killing it.");
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}

/// A master's HTTP API called with its bootstrap token: the child
/// process's, or that of a master running in this process.
#[derive(Clone)]
pub struct Api {
    /// `http://HOST:PORT`.
    pub base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, token: &str, http: reqwest::Client) -> Self {
        Self { base: base.to_owned(), token: token.to_owned(), http }
    }

    /// `HOST:PORT`, as a slave registering is told.
    pub fn address(&self) -> &str {
        self.base.trim_start_matches("https://").trim_start_matches("http://")
    }

    /// Calls the API; the status and the JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("calling the master's {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// A call that must succeed.
    pub async fn call_ok(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, body) = self.call(method, path, body).await?;
        if !status.is_success() {
            bail!("the master answered {status} to {path}: {body}");
        }
        Ok(body)
    }
}

/// `VmHWM` (peak resident set) of a process, in bytes.
pub fn peak_rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_kib(&status, "VmHWM:").context("no VmHWM in /proc status")
}

/// A `kB` field of a `/proc` text (`/proc/PID/status`, `/proc/meminfo`), in bytes.
pub fn parse_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// The binary `name` next to the running benchmark (same build profile).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the benchmark binary")?;
    let path = exe.parent().map(|d| d.join(name)).unwrap_or_else(|| Path::new(name).to_path_buf());
    if !path.exists() {
        bail!("{} is missing: build it in the same profile (ops/bench does)", path.display());
    }
    Ok(path)
}

/// A free TCP port on loopback for a listener that must keep its address,
/// below the ephemeral range: a port the system hands out for port 0 could
/// be given to another listener (a slave) before the master binds it.
pub fn free_port() -> anyhow::Result<u16> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..100 {
        let port = rng.gen_range(20_000..30_000);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port between 20000 and 30000 on 127.0.0.1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_memory_comes_from_vmhwm() {
        let status = "Name:\trampart-server\nVmPeak:\t  900000 kB\nVmHWM:\t   123456 kB\nVmRSS:\t  100000 kB\n";
        assert_eq!(parse_kib(status, "VmHWM:"), Some(123456 * 1024));
        assert_eq!(parse_kib("Name: x\n", "VmHWM:"), None);
    }
}
