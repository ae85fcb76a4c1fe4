//! What the report service's API handlers share.

use std::sync::{atomic::AtomicU64, Arc};

use deadpool_postgres::Pool;
use rampart_shared::amqp::consumer::ConsumerMetrics;

use crate::{config::Settings, operators::OperatorCheck};

/// What the API handlers share.
pub struct AppState {
    pub pool: Pool,
    pub settings: Arc<Settings>,
    pub metrics: Arc<ConsumerMetrics>,
    pub reports_served: AtomicU64,
    /// Named as the reports' source.
    pub source: String,
    /// Checks the master's operators' tokens, where `<Master>` is set.
    pub operators: Option<OperatorCheck>,
}
