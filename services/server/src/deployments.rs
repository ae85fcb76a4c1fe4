//! The deployment tool: installing agents on discovered computers, by hand
//! or automatically when a new unmanaged computer is discovered, and the
//! deployment status that follows each install.
//!
//! View fields are declared in the order the API has always answered them
//! (alphabetical), so the JSON stays byte for byte the same.

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, PoolError, Transaction};
use rampart_shared::messages::{DeployAgent, EndpointCommand};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{
    agents,
    operators::{activity, Actor},
    outbox, settings_store,
    state::{AppState, Site},
};

const SELECT: &str =
    "SELECT d.id, d.computer_id, c.hostname, d.state, d.message, d.requested_at, d.finished_at, d.automatic
    FROM deployments d LEFT JOIN discovered_computers c ON c.computer_id = d.computer_id";

/// Most deployments the status shows, newest first.
const STATUS_LIMIT: i64 = 1000;

/// One install of an agent, as the deployment status shows it.
#[derive(Debug, Serialize)]
pub struct DeploymentView {
    /// Started by automatic deployment rather than by an operator.
    pub automatic: bool,
    pub computer_id: String,
    pub finished_at: Option<DateTime<Utc>>,
    /// As discovered on the network, when it still is.
    pub hostname: Option<String>,
    pub id: Uuid,
    /// What the agent's installer said, if anything.
    pub message: Option<String>,
    pub requested_at: DateTime<Utc>,
    /// `pending`, `succeeded` or `failed`.
    pub state: String,
}

impl DeploymentView {
    fn from_row(r: &Row) -> Self {
        Self {
            id: r.get(0),
            computer_id: r.get(1),
            hostname: r.get(2),
            state: r.get(3),
            message: r.get(4),
            requested_at: r.get(5),
            finished_at: r.get(6),
            automatic: r.get(7),
        }
    }
}

/// The deployments an operator's request started, by computer id.
#[derive(Debug, Serialize)]
pub struct Deployed {
    pub deployments: Vec<DeploymentView>,
}

/// The automatic deployment switch, stored as is under
/// [`settings_store::AUTO_DEPLOY`].
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutoDeploy {
    pub enabled: bool,
}

/// Why a deployment operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("computers is empty")]
    NoComputers,
    #[error("not discovered on the network: {}", .0.join(", "))]
    NotDiscovered(Vec<String>),
    #[error("already managed: {}", .0.join(", "))]
    AlreadyManaged(Vec<String>),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// The deployment status: the newest deployments first.
pub async fn list(state: &AppState) -> Result<Vec<DeploymentView>, DeployError> {
    let client = state.pool.get().await?;
    let rows = client.query(&format!("{SELECT} ORDER BY d.requested_at DESC LIMIT {STATUS_LIMIT}"), &[]).await?;
    Ok(rows.iter().map(DeploymentView::from_row).collect())
}

/// An operator's deployment to `computers`: each must be discovered on the
/// network and not managed yet, else nothing is deployed.
pub async fn deploy(state: &AppState, actor: &Actor, computers: &[String]) -> Result<Deployed, DeployError> {
    if computers.is_empty() {
        return Err(DeployError::NoComputers);
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT c.computer_id, EXISTS (SELECT 1 FROM endpoints e WHERE e.id = c.computer_id)
               FROM discovered_computers c WHERE c.computer_id = ANY($1)",
            &[&computers],
        )
        .await?;
    let unknown: Vec<String> =
        computers.iter().filter(|c| !rows.iter().any(|r| r.get::<_, &str>(0) == c.as_str())).cloned().collect();
    if !unknown.is_empty() {
        return Err(DeployError::NotDiscovered(unknown));
    }
    let managed: Vec<String> = rows.iter().filter(|r| r.get::<_, bool>(1)).map(|r| r.get(0)).collect();
    if !managed.is_empty() {
        return Err(DeployError::AlreadyManaged(managed));
    }
    let ids = create(&tx, &state.site, computers, false).await?;
    let claims = agents::deployed::claim(&tx, computers).await?;
    let rows = tx.query(&format!("{SELECT} WHERE d.id = ANY($1) ORDER BY d.computer_id"), &[&ids]).await?;
    let after = serde_json::json!({"computers": computers, "deployments": ids});
    activity::record(&tx, actor, "deployment.request", "deployments", None, Some(after)).await?;
    tx.commit().await?;
    agents::deployed::apply(state, &claims).await;
    state.wakes.outbox_relay.wake();
    Ok(Deployed { deployments: rows.iter().map(DeploymentView::from_row).collect() })
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

/// Whether newly discovered unmanaged computers get an agent (off unless
/// an operator turned it on).
pub async fn auto_deploy_enabled<C: GenericClient>(client: &C) -> Result<bool, tokio_postgres::Error> {
    let value = settings_store::get(client, settings_store::AUTO_DEPLOY).await?;
    Ok(value.and_then(|v| v.get("enabled").and_then(|e| e.as_bool())).unwrap_or(false))
}

/// The automatic deployment switch as it stands.
pub async fn auto_deploy(state: &AppState) -> Result<AutoDeploy, DeployError> {
    let client = state.pool.get().await?;
    Ok(AutoDeploy { enabled: auto_deploy_enabled(&client).await? })
}

/// Turns automatic deployment on or off.
pub async fn set_auto_deploy(state: &AppState, actor: &Actor, switch: AutoDeploy) -> Result<AutoDeploy, DeployError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let before = AutoDeploy { enabled: auto_deploy_enabled(&tx).await? };
    let stored = serde_json::to_value(&switch).expect("a switch serializes");
    settings_store::put(&tx, settings_store::AUTO_DEPLOY, &stored).await?;
    let b = serde_json::to_value(&before).expect("a switch serializes");
    activity::record(&tx, actor, "auto_deploy.set", "auto_deploy", Some(b), Some(stored)).await?;
    tx.commit().await?;
    tracing::info!(enabled = switch.enabled, "Changed automatic deployment.");
    Ok(switch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_answers_with_its_fields_in_order() {
        let at = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().with_timezone(&Utc);
        let view = DeploymentView {
            automatic: false,
            computer_id: "sim1-u0001".into(),
            finished_at: None,
            hostname: Some("pc-1".into()),
            id: Uuid::nil(),
            message: None,
            requested_at: at,
            state: "pending".into(),
        };
        assert_eq!(
            serde_json::to_string(&Deployed { deployments: vec![view] }).unwrap(),
            r#"{"deployments":[{"automatic":false,"computer_id":"sim1-u0001","finished_at":null,"hostname":"pc-1","#
                .to_owned()
                + r#""id":"00000000-0000-0000-0000-000000000000","message":null,"#
                + r#""requested_at":"2026-11-26T10:00:00Z","state":"pending"}]}"#
        );
        assert_eq!(serde_json::to_string(&AutoDeploy { enabled: true }).unwrap(), r#"{"enabled":true}"#);
    }
}
