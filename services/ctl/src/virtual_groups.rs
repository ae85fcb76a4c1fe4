//! `rampartctl virtual-groups`: operator-defined groups that cut across the
//! network layout (an endpoint may be in several).

use clap::Subcommand;
use serde_json::{json, Value};

use crate::endpoints::endpoint_table;
use crate::output::{count, items, plural, text, Table};
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub enum VirtualGroupsCommand {
    /// List virtual groups with their member counts.
    List,
    /// Create a virtual group.
    Create {
        /// Name of the new group.
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete a virtual group (its endpoints stay managed).
    Delete {
        /// Virtual group id.
        id: i64,
    },
    /// List the endpoints in a virtual group.
    Members {
        /// Virtual group id.
        id: i64,
    },
    /// Add endpoints to a virtual group.
    Add {
        /// Virtual group id.
        id: i64,
        /// Endpoint ids.
        #[arg(required = true, value_name = "ENDPOINT")]
        endpoints: Vec<String>,
    },
    /// Remove endpoints from a virtual group.
    Remove {
        /// Virtual group id.
        id: i64,
        /// Endpoint ids.
        #[arg(required = true, value_name = "ENDPOINT")]
        endpoints: Vec<String>,
    },
}

pub async fn run(command: VirtualGroupsCommand, session: &Session) -> anyhow::Result<()> {
    let client = &session.client;
    match command {
        VirtualGroupsCommand::List => {
            let answer = client.get(&["api", "virtual-groups"], &[]).await?;
            session.print(&answer, render_list)
        }
        VirtualGroupsCommand::Create { name, description } => {
            let body = json!({ "name": name, "description": description });
            let answer = client.post(&["api", "virtual-groups"], &body).await?;
            session.print(&answer, |group| {
                format!("Created virtual group {} ({}).\n", text(&group["id"]), text(&group["name"]))
            })
        }
        VirtualGroupsCommand::Delete { id } => {
            let answer = client.delete(&["api", "virtual-groups", &id.to_string()], None).await?;
            session.print(&answer, |_| format!("Deleted virtual group {id}.\n"))
        }
        VirtualGroupsCommand::Members { id } => {
            let answer = client.get(&["api", "virtual-groups", &id.to_string(), "members"], &[]).await?;
            session.print(&answer, |answer| {
                let members = items(&answer["endpoints"]);
                if members.is_empty() {
                    format!("Virtual group {id} has no members.\n")
                } else {
                    endpoint_table(members).render()
                }
            })
        }
        VirtualGroupsCommand::Add { id, endpoints } => {
            let path = ["api", "virtual-groups", &id.to_string(), "members"];
            let answer = client.post(&path, &json!({ "endpoints": endpoints })).await?;
            session.print(&answer, |answer| {
                let added = plural(count(&answer["added"]), "endpoint");
                format!("Added {added} to virtual group {id}.\n")
            })
        }
        VirtualGroupsCommand::Remove { id, endpoints } => {
            let path = ["api", "virtual-groups", &id.to_string(), "members"];
            let answer = client.delete(&path, Some(&json!({ "endpoints": endpoints }))).await?;
            session.print(&answer, |answer| {
                let removed = plural(count(&answer["removed"]), "endpoint");
                format!("Removed {removed} from virtual group {id}.\n")
            })
        }
    }
}

fn render_list(answer: &Value) -> String {
    let groups = items(answer);
    if groups.is_empty() {
        return "No virtual groups.\n".to_owned();
    }
    let mut table = Table::new(&["ID", "NAME", "MEMBERS", "DESCRIPTION"]).numeric(&["MEMBERS"]);
    for g in groups {
        table.row([text(&g["id"]), text(&g["name"]), text(&g["member_count"]), text(&g["description"])]);
    }
    table.render()
}
