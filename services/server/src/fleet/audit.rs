//! The network audit: the computers agents discovered on the network,
//! whether each is managed, and how its latest deployment went.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ReadError;
use crate::state::AppState;

/// What the network audit shows.
#[derive(Debug, Serialize)]
pub struct NetworkAudit {
    pub computers: Vec<DiscoveredComputer>,
    pub summary: AuditSummary,
}

/// The audit in numbers.
#[derive(Debug, Serialize)]
pub struct AuditSummary {
    pub discovered: usize,
    pub managed: i64,
    pub unmanaged: i64,
    /// Neither managed nor protected by another product.
    pub unprotected: i64,
}

/// A computer seen on the network.
#[derive(Debug, Serialize)]
pub struct DiscoveredComputer {
    pub computer_id: String,
    /// The state of its latest deployment, `none` when there was none.
    pub deployment: String,
    pub first_seen: DateTime<Utc>,
    pub hostname: String,
    pub ip: String,
    pub last_seen: DateTime<Utc>,
    pub mac: String,
    /// An endpoint of this site.
    pub managed: bool,
    pub os: String,
    pub third_party_protection: bool,
}

/// The audit of this site's network, by computer id.
pub async fn audit(state: &AppState) -> Result<NetworkAudit, ReadError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT c.computer_id, c.hostname, host(c.ip), c.mac, c.os, c.third_party_protection,
                    EXISTS (SELECT 1 FROM endpoints e WHERE e.id = c.computer_id),
                    (SELECT d.state FROM deployments d WHERE d.computer_id = c.computer_id ORDER BY d.requested_at DESC LIMIT 1),
                    c.first_seen, c.last_seen
               FROM discovered_computers c ORDER BY c.computer_id",
            &[],
        )
        .await?;
    let computers: Vec<DiscoveredComputer> = rows
        .iter()
        .map(|r| DiscoveredComputer {
            computer_id: r.get(0),
            hostname: r.get(1),
            ip: r.get(2),
            mac: r.get(3),
            os: r.get(4),
            third_party_protection: r.get(5),
            managed: r.get(6),
            deployment: r.get::<_, Option<String>>(7).unwrap_or_else(|| "none".into()),
            first_seen: r.get(8),
            last_seen: r.get(9),
        })
        .collect();
    let managed = computers.iter().filter(|c| c.managed).count() as i64;
    let unprotected = computers.iter().filter(|c| !c.managed && !c.third_party_protection).count() as i64;
    let summary =
        AuditSummary { discovered: computers.len(), managed, unmanaged: computers.len() as i64 - managed, unprotected };
    Ok(NetworkAudit { computers, summary })
}
