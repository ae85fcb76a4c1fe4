//! `GET /api/site-key`: the public half of the site's command key, which
//! its agents verify every endpoint command with.

use axum::{extract::State, routing::get, Json, Router};

use super::{ApiError, ApiResult};
use crate::{site_key::SiteKeyView, state::SharedState};

/// Served by a stand-alone or slave (a master sends no endpoint commands).
pub(super) fn site_routes() -> Router<SharedState> {
    Router::new().route("/site-key", get(show))
}

/// A master answers that it has no site key, as for its other missing
/// site features.
pub(super) fn master_routes() -> Router<SharedState> {
    Router::new().route("/site-key", get(no_site_key))
}

async fn no_site_key() -> ApiError {
    ApiError::FeatureUnavailable(
        "the site key exists only on a stand-alone or slave server: a master sends no endpoint commands".into(),
    )
}

async fn show(State(state): State<SharedState>) -> ApiResult<SiteKeyView> {
    Ok(Json(SiteKeyView::of(&state.site.command_key)))
}
