//! `rampart-bench [--quick]`: runs the benchmark, prints the table and
//! writes `<out>/<time>-<mode>.json` and `.md`.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use rampart_bench::{
    plan::{Part, Plan},
    run,
};

#[derive(Parser)]
#[command(name = "rampart-bench", version, about = "Rampart benchmark: every figure next to this machine's own limits")]
struct Cli {
    /// Small sizes: every path runs, the speeds mean nothing.
    #[arg(long)]
    quick: bool,
    /// Where the results go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Where logs and configuration files of the run go.
    #[arg(long, default_value = "target/bench-work")]
    work_dir: PathBuf,
    /// Simulated slaves (overrides the mode's).
    #[arg(long)]
    slaves: Option<usize>,
    /// Computers per slave (overrides the mode's).
    #[arg(long)]
    computers: Option<u64>,
    /// Seconds of the lag measurement (overrides the mode's).
    #[arg(long)]
    lag_seconds: Option<u64>,
    /// Rows of the backlog, over all slaves (overrides the mode's).
    #[arg(long)]
    backlog_rows: Option<u64>,
    /// Rounds of each fan-out measurement (overrides the mode's).
    #[arg(long)]
    fanout_rounds: Option<usize>,
    /// Slaves of the multi-site path, each on a broker node of its own
    /// (overrides the mode's).
    #[arg(long)]
    multi_site_slaves: Option<usize>,
    /// Computers each multi-site slave gets per throughput sample
    /// (overrides the mode's).
    #[arg(long)]
    multi_site_computers: Option<u64>,
    /// Throughput samples of each multi-site layout, taken in turns
    /// (overrides the mode's).
    #[arg(long)]
    multi_site_samples: Option<usize>,
    /// Computers the scale part's master holds, one run per size,
    /// comma-separated (overrides the mode's: 1000000,3000000,10000000 in
    /// the full run, 20000,60000 in the quick one).
    #[arg(long, value_delimiter = ',')]
    scale_sizes: Vec<u64>,
    /// Slaves of the large fan-out (`fanout-1000`), many to a database
    /// (overrides the mode's: 1000, quick 20).
    #[arg(long)]
    large_fanout_slaves: Option<usize>,
    /// Rounds of the large fan-out and of its floor (overrides the mode's).
    #[arg(long)]
    large_fanout_rounds: Option<usize>,
    /// Only these parts, comma-separated (the limits are measured whenever
    /// a part of the main fleet runs; its computers are always loaded).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Part>,
}

impl Cli {
    fn plan(&self) -> Plan {
        let mut plan = if self.quick { Plan::quick() } else { Plan::full() };
        if let Some(n) = self.slaves {
            plan.slaves = n;
            // The live traffic runs on these, the backlog on the others.
            plan.lag_slaves = plan.lag_slaves.min(n.saturating_sub(1)).max(1);
            plan.fanout_slaves.retain(|s| *s < n);
            plan.fanout_slaves.push(n);
        }
        plan.computers_per_slave = self.computers.unwrap_or(plan.computers_per_slave);
        plan.lag_seconds = self.lag_seconds.unwrap_or(plan.lag_seconds);
        plan.backlog_rows = self.backlog_rows.unwrap_or(plan.backlog_rows);
        plan.fanout_rounds = self.fanout_rounds.unwrap_or(plan.fanout_rounds);
        plan.multi_site_slaves = self.multi_site_slaves.unwrap_or(plan.multi_site_slaves);
        plan.multi_site_computers = self.multi_site_computers.unwrap_or(plan.multi_site_computers);
        plan.multi_site_samples = self.multi_site_samples.unwrap_or(plan.multi_site_samples);
        if !self.scale_sizes.is_empty() {
            plan.scale.sizes = self.scale_sizes.clone();
        }
        plan.large_fanout_slaves = self.large_fanout_slaves.unwrap_or(plan.large_fanout_slaves);
        plan.large_fanout_rounds = self.large_fanout_rounds.unwrap_or(plan.large_fanout_rounds);
        if !self.only.is_empty() {
            plan.parts = self.only.clone();
        }
        plan
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // RUST_LOG overrides: the slaves in this process log at warn by default.
    rampart_shared::telemetry::init(rampart_shared::telemetry::LogFormat::Text, "warn,rampart_bench=info");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run::run(cli.plan(), cli.work_dir.clone()) => Some(outcome),
            // Dropping the run kills the master and agent processes; the
            // databases and queues left go at the next `ops/bench`.
            _ = rampart_shared::shutdown::signal() => None,
        }
    });
    let Some(outcome) = outcome else {
        eprintln!("Interrupted: the next ops/bench removes what this run left.");
        return ExitCode::from(130);
    };
    match outcome {
        Ok(run) => {
            println!("{}", run.markdown());
            match run.write(&cli.out) {
                Ok(path) => {
                    println!("Results: {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("error: the benchmark failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
