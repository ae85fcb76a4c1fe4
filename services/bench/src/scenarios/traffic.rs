//! Live traffic and its replication lag.
//!
//! Writers update random computers of some slaves at a steady rate (the
//! `last_seen` and threat count a heartbeat would change), each tick in one
//! transaction. The first computer of each tick is a sample: its slave
//! commit time is taken when the commit returns, and an observer polls the
//! master's copy for that row's version; the lag is the time between. The
//! observer's poll period bounds how much a lag can be overstated.

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context;
use rampart_shared::Shutdown;
use rand::{rngs::SmallRng, Rng, SeedableRng};
use tokio::{
    sync::mpsc::error::TryRecvError,
    task::JoinSet,
    time::{Instant, MissedTickBehavior},
};

use crate::fleet::Fleet;

/// How often each writer commits.
const TICK: Duration = Duration::from_millis(100);
/// How often the observer looks at the master's copy.
pub const POLL: Duration = Duration::from_millis(50);

/// The traffic to run.
#[derive(Clone, Debug)]
pub struct Traffic {
    /// Slaves `0..slaves` of the fleet take the updates.
    pub slaves: usize,
    /// Computers per slave that change (ids `<slave>-000000`...).
    pub computers: u64,
    /// Updates per second of each computer.
    pub rate: f64,
}

impl Traffic {
    pub fn updates_per_second(&self) -> f64 {
        self.slaves as f64 * self.computers as f64 * self.rate
    }
}

/// One update whose arrival at the master is timed.
struct Sample {
    slave: String,
    id: String,
    change_seq: i64,
    committed: Instant,
}

/// Traffic running in the background; [`Running::finish`] stops it.
pub struct Running {
    stop: Shutdown,
    writers: JoinSet<anyhow::Result<u64>>,
    observer: tokio::task::JoinHandle<anyhow::Result<Vec<Duration>>>,
    started: Instant,
}

/// What the traffic did.
#[derive(Debug)]
pub struct Outcome {
    pub updates: u64,
    pub elapsed: Duration,
    /// Slave commit -> seen in the master's copy, for each sample.
    pub lags: Vec<Duration>,
}

/// Starts the writers and the observer.
pub fn start(fleet: &Fleet, traffic: &Traffic, master_db: Arc<tokio_postgres::Client>) -> Running {
    let stop = Shutdown::new();
    let (samples_tx, samples_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut writers = JoinSet::new();
    let per_tick = traffic.computers as f64 * traffic.rate * TICK.as_secs_f64();
    for (i, slave) in fleet.slaves.iter().take(traffic.slaves).enumerate() {
        let pool = slave.state.pool.clone();
        let name = slave.options.instance.clone();
        let (stop, samples, computers) = (stop.clone(), samples_tx.clone(), traffic.computers);
        writers.spawn(async move { write(pool, name, computers, per_tick, i as u64, samples, stop).await });
    }
    drop(samples_tx);
    let observer = tokio::spawn(observe(master_db, samples_rx));
    Running { stop, writers, observer, started: Instant::now() }
}

impl Running {
    /// Stops the writers, then waits (at most `drain`) for the master to
    /// show every sample.
    pub async fn finish(mut self, drain: Duration) -> anyhow::Result<Outcome> {
        self.stop.trigger();
        let mut updates = 0;
        while let Some(result) = self.writers.join_next().await {
            updates += result.context("a writer panicked")??;
        }
        let elapsed = self.started.elapsed();
        let lags = tokio::time::timeout(drain, self.observer)
            .await
            .context("the master did not show every timed update in time")?
            .context("the observer panicked")??;
        Ok(Outcome { updates, elapsed, lags })
    }
}

async fn write(
    pool: deadpool_postgres::Pool,
    slave: String,
    computers: u64,
    per_tick: f64,
    seed: u64,
    samples: tokio::sync::mpsc::UnboundedSender<Sample>,
    stop: Shutdown,
) -> anyhow::Result<u64> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut owed, mut updates) = (0.0, 0u64);
    loop {
        tokio::select! {
            _ = stop.wait() => return Ok(updates),
            _ = ticker.tick() => {}
        }
        owed += per_tick;
        let count = owed.floor() as usize;
        if count == 0 {
            continue;
        }
        owed -= count as f64;
        let mut ids: Vec<String> = (0..count).map(|_| format!("{slave}-{:06}", rng.gen_range(0..computers))).collect();
        ids.sort();
        ids.dedup();
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "UPDATE endpoints SET last_seen = clock_timestamp(), active_threats = (active_threats + 1) % 3
                  WHERE id = ANY($1) RETURNING id, change_seq",
                &[&ids],
            )
            .await?;
        tx.commit().await?;
        let committed = Instant::now();
        updates += rows.len() as u64;
        if let Some(row) = rows.first() {
            let _ = samples.send(Sample { slave: slave.clone(), id: row.get(0), change_seq: row.get(1), committed });
        }
    }
}

/// Polls the master's copy for the pending samples until the writers are
/// gone and none is left; the lag of each.
async fn observe(
    master_db: Arc<tokio_postgres::Client>,
    mut incoming: tokio::sync::mpsc::UnboundedReceiver<Sample>,
) -> anyhow::Result<Vec<Duration>> {
    let mut pending: HashMap<usize, Sample> = HashMap::new();
    let mut next = 0usize;
    let mut lags = Vec::new();
    let mut writing = true;
    loop {
        loop {
            match incoming.try_recv() {
                Ok(sample) => {
                    pending.insert(next, sample);
                    next += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    writing = false;
                    break;
                }
            }
        }
        if !pending.is_empty() {
            let (mut keys, mut slaves, mut ids, mut seqs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (k, s) in &pending {
                keys.push(*k as i64);
                slaves.push(s.slave.as_str());
                ids.push(s.id.as_str());
                seqs.push(s.change_seq);
            }
            let seen = master_db
                .query(
                    "SELECT s.k FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS s(k, slave, id, seq)
                       JOIN replica_rows r ON r.slave_id = s.slave AND r.table_name = 'endpoints'
                                          AND r.row_key = jsonb_build_object('id', s.id)
                      WHERE r.change_seq >= s.seq",
                    &[&keys, &slaves, &ids, &seqs],
                )
                .await?;
            let now = Instant::now();
            for row in seen {
                let k: i64 = row.get(0);
                if let Some(sample) = pending.remove(&(k as usize)) {
                    lags.push(now - sample.committed);
                }
            }
        }
        if !writing && pending.is_empty() {
            return Ok(lags);
        }
        tokio::time::sleep(POLL).await;
    }
}
