//! Master side: slave summaries owed to the report service, and the
//! summarizer that pays them.
//!
//! Applying a replication batch only [`mark`]s its slave in `report_due`,
//! in the batch's transaction, with the parts the batch touched. The
//! summarizer ([`run`]) then queues one [`SlaveSummary`] per marked slave,
//! covering every mark made before it looked, and records the mark it
//! covered in the same transaction as the event. A mark made meanwhile
//! leaves the slave owed, so nothing is lost, and a drain of many batches
//! costs a few summaries rather than one per batch: the summary reads every
//! detection of the last year, too much to redo for each batch.
//!
//! [`SlaveSummary`]: rampart_shared::report::events::SlaveSummary

use std::{sync::Arc, time::Duration};

use deadpool_postgres::GenericClient;
use rampart_shared::{db::CachedStatements, Shutdown};
use tokio::time::Instant;
use uuid::Uuid;

use super::events::{self, Touched};
use crate::state::AppState;

/// The summarizer looks at least this often (a wake-up brings it sooner).
const PERIOD: Duration = Duration::from_secs(1);
/// Pause between two rounds, so marks made during a drain coalesce.
const GAP: Duration = Duration::from_millis(250);
/// After a round that paid summaries, rest this many times as long as it
/// took (at least [`GAP`]): during a drain of many slaves a round summarizes
/// every one of them, each reading its year of detections, and back-to-back
/// rounds would keep a database core busy that the drain needs. The report
/// then trails a drain by up to five rounds; once the master has caught
/// up, rounds are short and so are the rests.
const REST_PER_WORK: u32 = 4;
/// Wait before retrying after a database error.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Marks `slave` as owed a summary of `touched`, in the caller's transaction
/// (nothing without an event key).
pub async fn mark<C: GenericClient>(
    tx: &C,
    state: &AppState,
    slave: &str,
    touched: &Touched,
) -> Result<(), tokio_postgres::Error> {
    if !events::enabled(state) {
        return Ok(());
    }
    let (all_tasks, tasks) = match &touched.tasks {
        None => (true, Vec::new()),
        Some(ids) => (false, ids.clone()),
    };
    tx.execute_cached(
        "INSERT INTO report_due (slave_id, site, all_tasks, tasks) VALUES ($1, $2, $3, $4)
         ON CONFLICT (slave_id) DO UPDATE
            SET wanted = report_due.wanted + 1, site = report_due.site OR excluded.site,
                all_tasks = report_due.all_tasks OR excluded.all_tasks,
                tasks = ARRAY(SELECT DISTINCT t FROM unnest(report_due.tasks || excluded.tasks) AS t ORDER BY t)",
        &[&slave, &touched.site, &all_tasks, &tasks],
    )
    .await?;
    Ok(())
}

/// One owed summary, as read before computing it.
struct Owed {
    slave: String,
    wanted: i64,
    touched: Touched,
}

/// Pays owed summaries until shutdown.
pub async fn run(state: Arc<AppState>, shutdown: Shutdown) {
    loop {
        let started = Instant::now();
        let pause = match pay(&state).await {
            Ok(0) => Pause::UntilWoken(PERIOD),
            Ok(_) => {
                state.wakes.outbox_relay.wake();
                Pause::Rest(GAP.max(started.elapsed() * REST_PER_WORK))
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), retry_in = ?RETRY_AFTER, "Could not queue slave summaries for the report service; retrying.");
                Pause::Rest(RETRY_AFTER)
            }
        };
        let slept = match pause {
            Pause::Rest(rest) => shutdown.sleep(rest).await,
            // At least the gap; a wake-up ends the rest of the period early.
            Pause::UntilWoken(period) => {
                shutdown.sleep(GAP).await
                    && tokio::select! {
                        _ = shutdown.wait() => false,
                        _ = state.wakes.report_summaries.woken() => true,
                        _ = tokio::time::sleep(period.saturating_sub(GAP)) => true,
                    }
            }
        };
        if !slept {
            return;
        }
    }
}

/// How the summarizer waits before its next round.
enum Pause {
    /// This long, whatever happens meanwhile.
    Rest(Duration),
    /// This long at most: a batch applied meanwhile ends it (after [`GAP`]).
    UntilWoken(Duration),
}

/// Queues a summary for every owed slave; how many.
async fn pay(state: &AppState) -> anyhow::Result<usize> {
    let owed: Vec<Owed> = {
        let client = state.pool.get().await?;
        client
            .query_cached(
                "SELECT slave_id, wanted, site, all_tasks, tasks FROM report_due WHERE wanted > done ORDER BY slave_id",
                &[],
            )
            .await?
            .iter()
            .map(|r| Owed {
                slave: r.get(0),
                wanted: r.get(1),
                touched: Touched {
                    site: r.get(2),
                    tasks: if r.get(3) { None } else { Some(r.get::<_, Vec<Uuid>>(4)) },
                },
            })
            .collect()
    };
    for o in &owed {
        let mut client = state.pool.get().await?;
        let tx = client.transaction().await?;
        events::queue_summary(&tx, state, &o.slave, o.touched.clone()).await?;
        // Parts marked after the read above stay owed (the summary may or
        // may not have seen them).
        tx.execute_cached(
            "UPDATE report_due SET done = $2,
                    site = site AND wanted > $2, all_tasks = all_tasks AND wanted > $2,
                    tasks = CASE WHEN wanted > $2 THEN tasks ELSE '{}' END
              WHERE slave_id = $1",
            &[&o.slave, &o.wanted],
        )
        .await?;
        tx.commit().await?;
    }
    if !owed.is_empty() {
        tracing::debug!(slaves = owed.len(), "Queued the owed slave summaries.");
    }
    Ok(owed.len())
}
