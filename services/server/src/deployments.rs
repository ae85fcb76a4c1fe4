//! The deployment tool: installing agents on discovered computers, by hand
//! or automatically when a new unmanaged computer is discovered.

use deadpool_postgres::{GenericClient, Transaction};
use rampart_shared::messages::{DeployAgent, EndpointCommand};
use uuid::Uuid;

use crate::{outbox, settings_store, state::Site};

pub async fn auto_deploy_enabled<C: GenericClient>(client: &C) -> Result<bool, tokio_postgres::Error> {
    let value = settings_store::get(client, settings_store::AUTO_DEPLOY).await?;
    Ok(value.and_then(|v| v.get("enabled").and_then(|e| e.as_bool())).unwrap_or(false))
}

/// Creates a pending deployment for each computer and queues the install
/// command. Returns the new deployment ids, in order.
pub async fn create(
    tx: &Transaction<'_>,
    site: &Site,
    computer_ids: &[String],
    automatic: bool,
) -> Result<Vec<Uuid>, tokio_postgres::Error> {
    let mut ids = Vec::with_capacity(computer_ids.len());
    let mut commands = Vec::with_capacity(computer_ids.len());
    for computer_id in computer_ids {
        let id = Uuid::new_v4();
        tx.execute(
            "INSERT INTO deployments (id, computer_id, state, automatic) VALUES ($1, $2, 'pending', $3)",
            &[&id, computer_id, &automatic],
        )
        .await?;
        commands.push(site.endpoint_command(
            computer_id,
            &EndpointCommand::Deploy(DeployAgent { deployment_id: id, computer_id: computer_id.clone() }),
        ));
        ids.push(id);
    }
    outbox::enqueue(tx, &commands).await?;
    if !ids.is_empty() {
        tracing::info!(count = ids.len(), automatic, "Queued agent deployments.");
    }
    Ok(ids)
}
