//! Agent memory: the real `rampart-agent` binary simulating many computers
//! for one slave, until the slave has enrolled them all and they have sent
//! heartbeats for a while; its peak resident memory.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{bail, Context};
use rampart_tests::TestServer;
use serde::Serialize;
use tokio::{process::Command, time::Instant};

use crate::master::peak_rss_of;

/// Longest the slave may take to enroll the whole fleet.
const ENROLL_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug, Serialize)]
pub struct AgentMemory {
    pub computers: u64,
    pub enroll_seconds: f64,
    pub peak_rss: u64,
}

/// Runs `computers` simulated computers against `slave`, then `linger` more.
pub async fn run(
    binary: &Path,
    amqp_url: &str,
    slave: &TestServer,
    computers: u64,
    linger: Duration,
    log: &Path,
) -> anyhow::Result<AgentMemory> {
    let log = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = Command::new(binary)
        .args(["--amqp", amqp_url, "--namespace", &slave.options.namespace, "--site", &slave.options.instance])
        .args(["--name", "agent", "--endpoints", &computers.to_string(), "--heartbeat-secs", "30", "--unmanaged", "0"])
        .args(["--site-key", &slave.state.site.command_key.public().to_hex()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let pid = child.id().context("the agent exited at once")?;
    let started = Instant::now();
    let client = slave.state.pool.get().await?;
    loop {
        let enrolled: i64 =
            client.query_one("SELECT count(*) FROM endpoints WHERE id LIKE 'agent-%'", &[]).await?.get(0);
        if enrolled as u64 >= computers {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!("the agent exited with {status} after enrolling {enrolled} computers");
        }
        if started.elapsed() > ENROLL_TIMEOUT {
            bail!("the slave enrolled {enrolled} of {computers} computers in {ENROLL_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let enroll_seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(linger).await;
    let peak_rss = peak_rss_of(pid)?;
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
    if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
        child.kill().await?;
    }
    Ok(AgentMemory { computers, enroll_seconds, peak_rss })
}
