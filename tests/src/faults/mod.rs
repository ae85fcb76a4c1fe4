//! Fault injection for the fault suite: private instances of the broker and
//! of PostgreSQL that a test may stop, kill or freeze without disturbing
//! anyone else on the machine, the turns that keep two of them from running
//! at once, and the traffic and settling helpers the scenarios share.
//!
//! * [`broker`]: a private RabbitMQ node (stop_app/start_app, kill -9,
//!   SIGSTOP/SIGCONT, start again on the same data).
//! * [`postgres`]: a private PostgreSQL cluster (`pg_ctl stop -m fast` or
//!   `-m immediate`, start again).
//! * [`traffic`]: fan-out and replication traffic.
//! * [`settle`]: waiting for that traffic to settle once a fault has healed.
//! * [`tap`]: copies of the real messages on an exchange, to count
//!   deliveries or replay them.
//! * [`wan`]: a TCP proxy standing in for the WAN between two sites'
//!   brokers, cut, held, slowed or flapped by the test.
//!
//! Everything listens on 127.0.0.1 only, every wait is bounded, and every
//! instance is torn down (its directory removed) when its guard drops, even
//! when the test fails.

pub mod broker;
pub mod postgres;
pub mod settle;
pub mod tap;
pub mod traffic;
pub mod wan;

use std::{path::Path, process::Output, time::Duration};

use anyhow::{bail, Context};
use tokio::sync::{Semaphore, SemaphorePermit};

/// One fault scenario at a time in a test binary: each starts real servers,
/// and some a broker or a database cluster of their own, which is heavy on
/// a machine of two cores.
static TURNS: Semaphore = Semaphore::const_new(1);

/// Waits for this scenario's turn; the turn ends when the permit drops.
pub async fn take_turn() -> SemaphorePermit<'static> {
    TURNS.acquire().await.expect("the turns semaphore is never closed")
}

/// Where private instances keep their data (removed with each instance).
pub fn work_root() -> std::path::PathBuf {
    std::env::temp_dir().join("rampart-faults")
}

/// A free TCP port on 127.0.0.1, below the ephemeral range so the system
/// does not hand it to a client connection before the instance binds it,
/// and never the same twice in this process (a node takes three or four
/// before it binds any). Another process may still take it first: the
/// private broker's start tries other ports then.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..200 {
        let port = 20_000 + (uuid::Uuid::new_v4().as_u128() % 10_000) as u16;
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port between 20000 and 30000 on 127.0.0.1");
}

/// Runs `program args` as the system user `user` (the owner of the private
/// instance's files), bounded by `limit`; fails with the command's output.
pub async fn run_as(
    user: &str,
    env: &[(&str, String)],
    program: &Path,
    args: &[&str],
    limit: Duration,
) -> anyhow::Result<Output> {
    let mut command = tokio::process::Command::new("setpriv");
    command.args([&format!("--reuid={user}"), &format!("--regid={user}"), "--init-groups"]);
    command.arg("env");
    for (name, value) in env {
        command.arg(format!("{name}={value}"));
    }
    command.arg(program).args(args).kill_on_drop(true);
    command.stdin(std::process::Stdio::null());
    let what = format!("{} {}", program.display(), args.join(" "));
    let output = tokio::time::timeout(limit, command.output())
        .await
        .with_context(|| format!("`{what}` did not finish within {limit:?}"))?
        .with_context(|| format!("running `{what}` as {user} (setpriv is in util-linux)"))?;
    if !output.status.success() {
        bail!(
            "`{what}` as {user} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// Gives `dir` (recursively) to the system user `user`.
pub fn give_to(user: &str, dir: &Path) {
    let status = std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:{user}"))
        .arg(dir)
        .status()
        .expect("chown runs");
    assert!(status.success(), "chown -R {user} {} failed: the fault suite runs as root", dir.display());
}

/// Sends `signal` (e.g. `-KILL`, `-STOP`) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// True while a process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

/// Resident memory of this test process, in bytes (`VmRSS`).
pub fn resident_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Prints when each phase of a scenario ends (seen with `--nocapture`), so
/// a slow recovery shows where the time went.
pub struct Timeline {
    scenario: String,
    start: tokio::time::Instant,
}

impl Timeline {
    pub fn new(scenario: &str) -> Self {
        Self { scenario: scenario.to_owned(), start: tokio::time::Instant::now() }
    }

    /// Seconds since the scenario started.
    pub fn mark(&self, phase: &str) {
        println!("{}: {phase} at {:.1} s", self.scenario, self.start.elapsed().as_secs_f64());
    }
}

/// A master's replication consumers' counters, both lanes (bulk and live)
/// summed: batches applied, and retries after a transient failure.
pub fn replication_counts(master: &crate::TestServer) -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    let lanes = [&master.state.replication_metrics, &master.state.live_replication_metrics];
    (lanes.iter().map(|m| m.applied.load(Relaxed)).sum(), lanes.iter().map(|m| m.retries.load(Relaxed)).sum())
}
