//! A stand-alone's or slave's own reports, from its own database.

use chrono::Utc;
use rampart_shared::report::{self, Format, Input, Kind, SiteData};

use super::summary::{self, Scope};
use crate::state::AppState;

/// Builds `kind` over this server's computers and renders it.
pub async fn make(state: &AppState, kind: Kind, format: Format) -> Result<Vec<u8>, ReportError> {
    let client = state.pool.get().await?;
    let generated_at = Utc::now();
    let site = SiteData {
        site: state.site.instance.clone(),
        as_of: Some(generated_at),
        summary: summary::site(&client, Scope::Local).await?,
        tasks: summary::tasks(&client, Scope::Local, None).await?,
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

/// Why a report could not be made here.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report does not exist on this server (health on a site).
    #[error("{0}")]
    NotHere(String),
    // The store's errors are said in the message, not chained as sources:
    // a failed scheduled run records the message as its `last_error`.
    #[error("database: {0}")]
    Database(tokio_postgres::Error),
    #[error("database: {0}")]
    Pool(deadpool_postgres::PoolError),
}

impl From<tokio_postgres::Error> for ReportError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Database(e)
    }
}

impl From<deadpool_postgres::PoolError> for ReportError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Pool(e)
    }
}
