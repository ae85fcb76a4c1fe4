//! The scale part: one master holding millions of computers over a
//! thousand slaves (issue 23's 10M over 1,000).
//!
//! For each size, after checking that it fits on PostgreSQL's disk, a real
//! master (the binary) gets a copy whose bulk is written straight into its
//! database by set-based SQL in the shape the apply leaves it
//! ([`copy`]), and a few real slaves registered through the API replicate
//! a measured sample on top of it ([`size`]). Each size's databases and
//! queues are removed before the next. At the largest size the same copy
//! is measured again with `replica_rows` hash-partitioned by slave. The
//! figures go in the table ([`figures`]) and on a cost curve ([`curve`]).

pub mod copy;
pub mod curve;
mod figures;
pub mod size;

use anyhow::Context;
use serde::Serialize;

use crate::plan::Plan;
pub use size::SizeRun;

/// Everything the scale part measured.
#[derive(Clone, Debug, Serialize)]
pub struct ScaleRun {
    /// One per size, smallest first.
    pub sizes: Vec<SizeRun>,
    /// The largest size again, `replica_rows` partitioned into `partitions`.
    pub partitioned: Option<SizeRun>,
    pub partitions: usize,
}

/// Runs every size of `plan.scale`, each in a namespace of its own under
/// `namespace`.
pub async fn run(namespace: &str, plan: &Plan, work_dir: &std::path::Path) -> anyhow::Result<ScaleRun> {
    let admin = crate::stats::connect(&format!("{}/postgres", rampart_tests::PG_BASE), "PostgreSQL").await?;
    let mut sizes: Vec<u64> = plan.scale.sizes.clone();
    sizes.sort_unstable();
    let mut bytes_per_computer = copy::BYTES_PER_COMPUTER_GUESS;
    let mut runs = Vec::new();
    for (i, &computers) in sizes.iter().enumerate() {
        let disk = copy::check_disk(&admin, computers, bytes_per_computer).await?;
        tracing::info!(computers, slaves = plan.scale.slaves, "Scale: a master holding this many computers.");
        let measured = size::run(&format!("{namespace}_x{i}"), plan, computers, size::Shape::Plain, disk, work_dir)
            .await
            .with_context(|| format!("measuring the master with {computers} computers"))?;
        bytes_per_computer = bytes_per_computer.max(measured.database_bytes / computers);
        runs.push(measured);
    }
    let partitioned = match sizes.last() {
        Some(&computers) => {
            let disk = copy::check_disk(&admin, computers, bytes_per_computer).await?;
            let shape = size::Shape::Partitioned(plan.scale.partitions);
            tracing::info!(
                computers,
                partitions = plan.scale.partitions,
                "Scale: the same copy, partitioned by slave."
            );
            Some(
                size::run(&format!("{namespace}_xp"), plan, computers, shape, disk, work_dir)
                    .await
                    .context("measuring the partitioned copy")?,
            )
        }
        None => None,
    };
    Ok(ScaleRun { sizes: runs, partitioned, partitions: plan.scale.partitions })
}
