//! `rampartctl groups`: network groups, the network builder.
//!
//! New endpoints land in the group whose subnet contains their IP, else in
//! group 1, `Default`. The server refuses all of this on a master.

use clap::{ArgGroup, Subcommand};
use serde_json::{json, Map, Value};

use crate::output::{items, text, Table};
use crate::session::Session;

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// List network groups with their endpoint counts.
    List,
    /// Create a network group.
    Create {
        /// Name of the new group.
        name: String,
        /// Parent group id (the server's default when left out).
        #[arg(long, value_name = "ID")]
        parent: Option<i64>,
        /// Endpoints whose IP is in this subnet land in the group.
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
    },
    /// Rename a group or change its subnet.
    #[command(group(ArgGroup::new("change").required(true).multiple(true).args(["name", "subnet"])))]
    Edit {
        /// Group id.
        id: i64,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        /// New subnet.
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
    },
    /// Delete a group; its endpoints and subgroups move to its parent.
    Delete {
        /// Group id.
        id: i64,
    },
}

pub async fn run(command: GroupsCommand, session: &Session) -> anyhow::Result<()> {
    let client = &session.client;
    match command {
        GroupsCommand::List => {
            let answer = client.get(&["api", "groups"], &[]).await?;
            session.print(&answer, render_list)
        }
        GroupsCommand::Create { name, parent, subnet } => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            if let Some(parent) = parent {
                body.insert("parent_id".into(), json!(parent));
            }
            if let Some(subnet) = subnet {
                body.insert("subnet".into(), json!(subnet));
            }
            let answer = client.post(&["api", "groups"], &Value::Object(body)).await?;
            session
                .print(&answer, |group| format!("Created group {} ({}).\n", text(&group["id"]), text(&group["name"])))
        }
        GroupsCommand::Edit { id, name, subnet } => {
            let body = edit_body(name, subnet);
            let answer = client.patch(&["api", "groups", &id.to_string()], &body).await?;
            session.print(&answer, |group| {
                let subnet = group["subnet"].as_str().unwrap_or("none");
                format!("Group {} ({}), subnet {subnet}.\n", text(&group["id"]), text(&group["name"]))
            })
        }
        GroupsCommand::Delete { id } => {
            let answer = client.delete(&["api", "groups", &id.to_string()], None).await?;
            session
                .print(&answer, |_| format!("Deleted group {id}; its endpoints and subgroups moved to its parent.\n"))
        }
    }
}

/// The PATCH body: only what changes. (The API has no way to remove a
/// group's subnet: `"subnet": null` means "unchanged".)
fn edit_body(name: Option<String>, subnet: Option<String>) -> Value {
    let mut body = Map::new();
    if let Some(name) = name {
        body.insert("name".into(), json!(name));
    }
    if let Some(subnet) = subnet {
        body.insert("subnet".into(), json!(subnet));
    }
    Value::Object(body)
}

fn render_list(answer: &Value) -> String {
    let groups = items(answer);
    if groups.is_empty() {
        return "No network groups.\n".to_owned();
    }
    let mut table = Table::new(&["ID", "NAME", "PARENT", "SUBNET", "ENDPOINTS"]).numeric(&["ENDPOINTS"]);
    for g in groups {
        table.row([
            text(&g["id"]),
            text(&g["name"]),
            text(&g["parent_id"]),
            text(&g["subnet"]),
            text(&g["endpoint_count"]),
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_send_only_what_changes() {
        assert_eq!(edit_body(Some("Lyon".into()), None), json!({"name": "Lyon"}));
        assert_eq!(edit_body(None, Some("10.2.0.0/16".into())), json!({"subnet": "10.2.0.0/16"}));
    }

    #[test]
    fn groups_list_as_a_table() {
        let answer = json!([{"id":1,"name":"Default","parent_id":null,"subnet":null,"endpoint_count":500}]);
        assert_eq!(
            render_list(&answer),
            "ID  NAME     PARENT  SUBNET  ENDPOINTS\n1   Default  -       -             500\n"
        );
    }
}
