//! A master's fleet routes: the endpoints and the tree of every slave, read
//! from the replicated copy (see [`crate::fleet::consolidated`]).

use axum::{
    extract::{Path, State},
    routing::get,
    Json, Router,
};

use super::{
    fleet::{builder_routes, EndpointQuery, ShowEndpointQuery, TreeQuery},
    ApiError, ApiResult, Params,
};
use crate::{
    fleet::{
        consolidated::{self, ConsolidatedError, ReplicaEndpoint, ReplicaPage},
        tree::{self, MasterRoot, Tree, TreeView},
    },
    state::SharedState,
};

/// The fleet routes of a master: its slaves' endpoints and tree. The
/// network builder and virtual groups work on the master's own (empty)
/// fleet, as on any server; the feature check refuses the builder's changes.
pub(super) fn master_routes() -> Router<SharedState> {
    Router::new()
        .route("/tree", get(tree))
        .route("/endpoints", get(list_endpoints))
        .route("/endpoints/{id}", get(show_endpoint))
        .merge(builder_routes())
}

impl From<ConsolidatedError> for ApiError {
    fn from(e: ConsolidatedError) -> Self {
        match e {
            ConsolidatedError::Filter(e) => e.into(),
            ConsolidatedError::GroupWithoutSlave => Self::Invalid(e.to_string()),
            ConsolidatedError::NotReplicated(_) => Self::NotFound(e.to_string()),
            ConsolidatedError::Ambiguous { .. } => Self::Conflict(e.to_string()),
            ConsolidatedError::Database(e) => e.into(),
            ConsolidatedError::Pool(e) => e.into(),
        }
    }
}

async fn list_endpoints(State(state): State<SharedState>, Params(q): Params<EndpointQuery>) -> ApiResult<ReplicaPage> {
    let (filter, page, after) = q.checked()?;
    Ok(Json(consolidated::list(&state, &filter, page, after.as_ref()).await?))
}

async fn show_endpoint(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Params(q): Params<ShowEndpointQuery>,
) -> ApiResult<ReplicaEndpoint> {
    Ok(Json(consolidated::show(&state, &id, q.slave.as_deref()).await?))
}

async fn tree(State(state): State<SharedState>, Params(q): Params<TreeQuery>) -> ApiResult<Tree<MasterRoot>> {
    let view = TreeView::parse(q.view.as_deref())?;
    Ok(Json(tree::master(&state, view).await?))
}
