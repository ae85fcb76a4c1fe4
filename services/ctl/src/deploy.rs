//! `rampartctl deploy`: the deployment tool (`run`) and deployment status
//! (`status`). Both refused on a master.
//!
//! `deploy run COMPUTER...` rather than `deploy COMPUTER...`: with a bare
//! positional list, a computer named `status` would be ambiguous.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::output::{items, text, time, Table};
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Deploy agents to discovered computers (ids from `rampartctl audit`).
    Run {
        /// Computer ids (e.g. sim1-u0001).
        #[arg(required = true, value_name = "COMPUTER_ID")]
        computers: Vec<String>,
    },
    /// Deployment status, newest first.
    Status,
}

pub async fn run(command: DeployCommand, session: &Session) -> anyhow::Result<()> {
    match command {
        DeployCommand::Run { computers } => {
            let body = json!({ "computers": computers });
            let answer = session.client.post(&["api", "deployments"], &body).await?;
            session.print(&answer, |answer| deployment_table(items(&answer["deployments"])))
        }
        DeployCommand::Status => {
            let answer = session.client.get(&["api", "deployments"], &[]).await?;
            session.print(&answer, |answer| deployment_table(items(answer)))
        }
    }
}

fn deployment_table(deployments: &[Value]) -> String {
    if deployments.is_empty() {
        return "No deployments.\n".to_owned();
    }
    let mut table =
        Table::new(&["ID", "COMPUTER", "HOSTNAME", "STATE", "AUTOMATIC", "REQUESTED", "FINISHED", "MESSAGE"]);
    for d in deployments {
        table.row([
            text(&d["id"]),
            text(&d["computer_id"]),
            text(&d["hostname"]),
            text(&d["state"]),
            text(&d["automatic"]),
            time(&d["requested_at"]),
            time(&d["finished_at"]),
            text(&d["message"]),
        ]);
    }
    table.render()
}
