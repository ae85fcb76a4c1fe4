//! The management dashboard of a site, and its detections.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    endpoints::{self, EndpointView},
    offline_after,
    status::{endpoint_counts, EndpointCounts, LicenseView},
    ReadError,
};
use crate::{licensing, state::AppState};

const DETECTION_SELECT: &str =
    "SELECT d.detection_id, d.endpoint_id, e.hostname, d.malware, d.path, d.action, d.detected_at, d.task_id
    FROM detections d LEFT JOIN endpoints e ON e.id = d.endpoint_id";

/// What the dashboard shows.
#[derive(Debug, Serialize)]
pub struct Dashboard {
    pub endpoints: EndpointCounts,
    pub license: LicenseView,
    pub outdated_signatures: OutdatedSignatures,
    /// The 10 latest.
    pub recent_detections: Vec<Detection>,
    /// Tasks with a result still pending or running.
    pub tasks_running: i64,
}

/// Endpoints whose signatures are older than the threshold.
#[derive(Debug, Serialize)]
pub struct OutdatedSignatures {
    pub count: i64,
    /// The 10 oldest.
    pub endpoints: Vec<EndpointView>,
    pub threshold_days: i32,
}

/// A detection reported by an endpoint.
#[derive(Debug, Serialize)]
pub struct Detection {
    pub action: String,
    pub detected_at: DateTime<Utc>,
    pub detection_id: Uuid,
    pub endpoint_id: String,
    /// `null` once the endpoint is gone.
    pub hostname: Option<String>,
    pub malware: String,
    pub path: String,
    pub task_id: Option<Uuid>,
}

impl Detection {
    fn from_row(r: &Row) -> Self {
        Self {
            detection_id: r.get(0),
            endpoint_id: r.get(1),
            hostname: r.get(2),
            malware: r.get(3),
            path: r.get(4),
            action: r.get(5),
            detected_at: r.get(6),
            task_id: r.get(7),
        }
    }
}

/// The dashboard of this site.
pub async fn dashboard(state: &AppState) -> Result<Dashboard, ReadError> {
    let client = state.pool.get().await?;
    let detections = client.query(&format!("{DETECTION_SELECT} ORDER BY d.detected_at DESC LIMIT 10"), &[]).await?;
    let days = i32::try_from(state.settings.outdated_after_days).unwrap_or(i32::MAX);
    let outdated_count: i64 = client
        .query_one("SELECT count(*) FROM endpoints WHERE signatures_date < current_date - $1::int", &[&days])
        .await?
        .get(0);
    let outdated = client
        .query(
            &format!(
                "SELECT {} FROM {} WHERE e.signatures_date < current_date - $1::int ORDER BY e.signatures_date, e.id LIMIT 10",
                endpoints::COLUMNS,
                endpoints::FROM
            ),
            &[&days],
        )
        .await?;
    let running: i64 = client
        .query_one(
            "SELECT count(DISTINCT t.id) FROM tasks t JOIN task_results r ON r.task_id = t.id
              WHERE t.cancelled_at IS NULL AND r.state IN ('pending', 'running')",
            &[],
        )
        .await?
        .get(0);
    let offline = offline_after(&state.settings);
    Ok(Dashboard {
        endpoints: endpoint_counts(&client, offline).await?,
        recent_detections: detections.iter().map(Detection::from_row).collect(),
        outdated_signatures: OutdatedSignatures {
            threshold_days: days,
            count: outdated_count,
            endpoints: outdated.iter().map(|r| EndpointView::from_row(r, offline)).collect(),
        },
        tasks_running: running,
        license: licensing::summary(&client).await?.into(),
    })
}

/// The latest `limit` detections, of one endpoint or of all.
pub async fn detections(state: &AppState, endpoint: Option<&str>, limit: i64) -> Result<Vec<Detection>, ReadError> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "{DETECTION_SELECT} WHERE $1::text IS NULL OR d.endpoint_id = $1 ORDER BY d.detected_at DESC LIMIT $2"
            ),
            &[&endpoint, &limit],
        )
        .await?;
    Ok(rows.iter().map(Detection::from_row).collect())
}
