//! Master side: report requests forwarded to the report service.
//!
//! The master's API is where operators go, so `GET /api/reports/{kind}` on
//! a master asks the report service of `<Reports><ServiceUrl>` and passes
//! its answer through unchanged (status, content type, body).

use std::time::Duration;

use crate::config::ReportSettings;

/// The report service's answer.
pub struct Forwarded {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("this master has no report service: set <Reports><ServiceUrl>, <ServiceToken> and <EventKey> in server.xml and start rampart-report")]
    NotConfigured,
    #[error("the report service at {url} did not answer: {reason}")]
    Unreachable { url: String, reason: String },
}

/// Asks the report service for `path_and_query` (below its `/api/reports`).
pub async fn forward(settings: &ReportSettings, path_and_query: &str) -> Result<Forwarded, ProxyError> {
    let (Some(base), Some(token)) = (&settings.service_url, &settings.service_token) else {
        return Err(ProxyError::NotConfigured);
    };
    let url = format!("{base}/api/reports{path_and_query}");
    let unreachable =
        |e: reqwest::Error| ProxyError::Unreachable { url: base.clone(), reason: e.without_url().to_string() };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(unreachable)?;
    let response = http.get(&url).bearer_auth(token.expose()).send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let body = response.bytes().await.map_err(unreachable)?.to_vec();
    Ok(Forwarded { status, content_type, body })
}
