//! A private PostgreSQL cluster for one fault test.
//!
//! `initdb` as the `postgres` user into a directory under
//! [`work_root`](super::work_root), trust authentication for `root`,
//! listening on 127.0.0.1 only at a free port (its socket in the same
//! directory), started and stopped with `pg_ctl`. Stopping it (`-m fast`,
//! as an operator would, or `-m immediate`, as a crash would) disturbs
//! nobody else. The guard stops it and removes its directory when dropped.

use std::{path::PathBuf, time::Duration};

use super::{free_port, give_to, run_as, work_root};

/// Bound of one `initdb` or `pg_ctl` call.
const CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// A private cluster (running or stopped).
pub struct PrivatePostgres {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
}

/// How to stop the cluster.
#[derive(Clone, Copy, Debug)]
pub enum StopMode {
    /// `-m fast`: sessions are terminated, a checkpoint is written.
    Fast,
    /// `-m immediate`: every process quits at once; the next start recovers
    /// from the WAL, as after a crash.
    Immediate,
}

impl PrivatePostgres {
    /// Creates and starts a fresh cluster.
    pub async fn start() -> Self {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..10];
        let dir = work_root().join(format!("pg-{id}"));
        std::fs::create_dir_all(&dir).expect("private cluster directory");
        give_to("postgres", &dir);
        let cluster = Self { port: free_port(), bin: server_binaries(), dir };
        let data = cluster.data();
        run_as(
            "postgres",
            &[],
            &cluster.bin.join("initdb"),
            &["-D", &data, "-A", "trust", "-U", "root", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
            CTL_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("initdb of the private cluster: {e:#}"));
        let settings = format!(
            "\n# The fault suite's private cluster.\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nmax_connections = 100\nshared_buffers = 32MB\nfsync = off\n",
            cluster.port,
            cluster.dir.display()
        );
        let conf = cluster.dir.join("data").join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf written by initdb");
        text.push_str(&settings);
        std::fs::write(&conf, text).expect("postgresql.conf updated");
        cluster.start_again().await;
        cluster
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `postgres://root@127.0.0.1:<port>`: a [`ServerOptions::pg_base`](crate::ServerOptions).
    pub fn base_url(&self) -> String {
        format!("postgres://root@127.0.0.1:{}", self.port)
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub async fn start_again(&self) {
        let log = self.dir.join("postgres.log").display().to_string();
        run_as(
            "postgres",
            &[],
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-l", &log, "-w", "-t", "60", "start"],
            CTL_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("starting the private cluster: {e:#}; see {log}"));
    }

    /// Stops the cluster and waits until it is down.
    pub async fn stop(&self, mode: StopMode) {
        let mode = match mode {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        };
        run_as(
            "postgres",
            &[],
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", mode, "-w", "-t", "60", "stop"],
            CTL_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("stopping the private cluster ({mode}): {e:#}"));
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::process::Command::new("setpriv")
            .args(["--reuid=postgres", "--regid=postgres", "--init-groups", "timeout", "60"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest installed server's `bin` directory (Debian keeps each major
/// version under `/usr/lib/postgresql/<major>/bin`).
fn server_binaries() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no PostgreSQL server in /usr/lib/postgresql/<major>/bin (initdb, pg_ctl)")
}
