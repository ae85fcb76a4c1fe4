//! What `/health` and `/api/status` say of a server: who it is, its
//! endpoints by status, its license, its message counters, and its place in
//! the hierarchy (its master on a stand-alone or slave, its slaves on a
//! master).

use std::sync::atomic::Ordering;

use chrono::NaiveDate;
use deadpool_postgres::GenericClient;
use rampart_shared::amqp::consumer::ConsumerMetrics;
use serde::Serialize;

use super::{offline_after, ReadError};
use crate::{
    hierarchy::{slaves, MasterLinkView},
    licensing, outbox,
    role::Role,
    state::AppState,
};

/// `/health`: the server is up.
#[derive(Debug, Serialize)]
pub struct Health {
    pub instance: String,
    pub role: Role,
    pub status: &'static str,
    /// SHA-256 of the API's TLS certificate (64 hex digits); absent when
    /// the server serves plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_fingerprint: Option<String>,
}

/// The status of a stand-alone or slave.
#[derive(Debug, Serialize)]
pub struct SiteStatus {
    pub endpoints: EndpointCounts,
    pub instance: String,
    pub license: LicenseView,
    /// The master of a slave; `null` on a stand-alone.
    pub master: Option<MasterLinkView>,
    pub messages: MessageCounts,
    pub namespace: String,
    pub role: Role,
    pub version: &'static str,
    /// A slave on a broker of its own: its links to the master's broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub links: Option<crate::hierarchy::broker_links::LinkReport>,
}

/// The status of a master.
#[derive(Debug, Serialize)]
pub struct MasterStatus<Slaves> {
    pub endpoints: EndpointCounts,
    pub instance: String,
    /// Always `null`: a master holds no license.
    pub license: Option<LicenseView>,
    pub messages: MessageCounts,
    pub namespace: String,
    pub role: Role,
    /// The slaves by state.
    pub slaves: Slaves,
    pub version: &'static str,
}

/// The license, as the status and the dashboard show it: the fields of
/// [`licensing::LicenseSummary`] in alphabetical order (`GET /api/license`
/// answers them in the summary's own order).
#[derive(Debug, Serialize)]
pub struct LicenseView {
    pub customer: Option<String>,
    pub expires_on: Option<NaiveDate>,
    pub license_id: Option<uuid::Uuid>,
    pub seats: i64,
    /// `valid`, `expired` or `none`.
    pub state: &'static str,
    pub unlicensed: i64,
    pub used: i64,
}

impl From<licensing::LicenseSummary> for LicenseView {
    fn from(s: licensing::LicenseSummary) -> Self {
        Self {
            customer: s.customer,
            expires_on: s.expires_on,
            license_id: s.license_id,
            seats: s.seats,
            state: s.state,
            unlicensed: s.unlicensed,
            used: s.used,
        }
    }
}

/// Endpoints by security status, unlicensed and offline.
#[derive(Debug, Serialize)]
pub struct EndpointCounts {
    pub at_risk: i64,
    pub infected: i64,
    pub offline: i64,
    pub protected: i64,
    pub total: i64,
    pub unlicensed: i64,
    pub unprotected: i64,
}

/// Messages applied and dead-lettered since start, and the outbox waiting.
#[derive(Debug, Serialize)]
pub struct MessageCounts {
    /// By the agent inbox consumer.
    pub applied: u64,
    pub dead_lettered: u64,
    /// By the hierarchy consumers.
    pub hierarchy: ConsumerCounts,
    pub outbox_depth: i64,
}

/// What one consumer applied and dead-lettered.
#[derive(Debug, Serialize)]
pub struct ConsumerCounts {
    pub applied: u64,
    pub dead_lettered: u64,
}

impl ConsumerCounts {
    fn of(metrics: &ConsumerMetrics) -> Self {
        Self {
            applied: metrics.applied.load(Ordering::Relaxed),
            dead_lettered: metrics.dead_lettered.load(Ordering::Relaxed),
        }
    }
}

/// `/health` of this server.
pub fn health(state: &AppState) -> Health {
    Health {
        instance: state.site.instance.clone(),
        role: state.role(),
        status: "ok",
        tls_fingerprint: state.api_fingerprint.map(|f| f.to_string()),
    }
}

/// The status of this stand-alone or slave.
pub async fn site(state: &AppState) -> Result<SiteStatus, ReadError> {
    let client = state.pool.get().await?;
    Ok(SiteStatus {
        endpoints: endpoint_counts(&client, offline_after(&state.settings)).await?,
        instance: state.site.instance.clone(),
        license: licensing::summary(&client).await?.into(),
        master: state.keyring.master_view(),
        messages: message_counts(state, &client).await?,
        namespace: state.site.topology.namespace().to_owned(),
        role: state.role(),
        version: env!("CARGO_PKG_VERSION"),
        links: crate::hierarchy::broker_links::report(state).await,
    })
}

/// The status of this master.
pub async fn master(state: &AppState) -> Result<MasterStatus<impl Serialize>, ReadError> {
    let client = state.pool.get().await?;
    Ok(MasterStatus {
        endpoints: endpoint_counts(&client, offline_after(&state.settings)).await?,
        instance: state.site.instance.clone(),
        license: None,
        messages: message_counts(state, &client).await?,
        namespace: state.site.topology.namespace().to_owned(),
        role: state.role(),
        slaves: slaves::state_counts(&client).await?,
        version: env!("CARGO_PKG_VERSION"),
    })
}

async fn message_counts<C: GenericClient>(state: &AppState, client: &C) -> Result<MessageCounts, ReadError> {
    let inbox = ConsumerCounts::of(&state.inbox_metrics);
    Ok(MessageCounts {
        applied: inbox.applied,
        dead_lettered: inbox.dead_lettered,
        hierarchy: ConsumerCounts::of(&state.hierarchy_metrics),
        outbox_depth: outbox::depth(client).await?,
    })
}

/// This server's endpoints by status; offline after `offline_after` seconds of silence.
pub async fn endpoint_counts<C: GenericClient>(
    client: &C,
    offline_after: i64,
) -> Result<EndpointCounts, tokio_postgres::Error> {
    let r = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE status = 'protected'), count(*) FILTER (WHERE status = 'at_risk'),
                    count(*) FILTER (WHERE status = 'infected'), count(*) FILTER (WHERE status = 'unprotected'),
                    count(*) FILTER (WHERE NOT licensed),
                    count(*) FILTER (WHERE last_seen < now() - make_interval(secs => $1::bigint))
               FROM endpoints",
            &[&offline_after],
        )
        .await?;
    Ok(EndpointCounts {
        total: r.get(0),
        protected: r.get(1),
        at_risk: r.get(2),
        infected: r.get(3),
        unprotected: r.get(4),
        unlicensed: r.get(5),
        offline: r.get(6),
    })
}
