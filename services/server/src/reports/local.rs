//! A stand-alone's or slave's own reports, from its own database.

use chrono::Utc;
use rampart_shared::report::{self, Format, Input, Kind, SiteData};

use super::summary::{self, Scope};
use crate::state::AppState;

/// Builds `kind` over this server's computers and renders it.
pub async fn make(state: &AppState, kind: Kind, format: Format) -> Result<Vec<u8>, ReportError> {
    let client = state.pool.get().await.map_err(|e| ReportError::Database(e.to_string()))?;
    let db = |e: tokio_postgres::Error| ReportError::Database(e.to_string());
    let generated_at = Utc::now();
    let site = SiteData {
        site: state.site.instance.clone(),
        as_of: Some(generated_at),
        summary: summary::site(&client, Scope::Local).await.map_err(db)?,
        tasks: summary::tasks(&client, Scope::Local, None).await.map_err(db)?,
        health: None,
    };
    let input = Input {
        generated_at,
        source: state.site.instance.clone(),
        slave: None,
        consolidated: false,
        sites: vec![site],
        removed: vec![],
    };
    let built = report::build(kind, &input).map_err(ReportError::NotHere)?;
    Ok(report::render::render(&built, format))
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report does not exist on this server (health on a site).
    #[error("{0}")]
    NotHere(String),
    #[error("database: {0}")]
    Database(String),
}
