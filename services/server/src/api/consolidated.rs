//! A master's fleet routes: the endpoints and the tree of every slave, read
//! from the replicated copy (see [`crate::fleet::consolidated`]).

use axum::{
    extract::{Path, State},
    Json,
};

use super::{
    fleet::{EndpointQuery, ShowEndpointQuery, TreeQuery},
    ApiError, ApiResult, Params,
};
use crate::{
    fleet::{
        consolidated::{self, ConsolidatedError, ReplicaEndpoint},
        endpoints::EndpointPage,
        tree::{self, MasterRoot, Tree, TreeView},
    },
    state::SharedState,
};

impl From<ConsolidatedError> for ApiError {
    fn from(e: ConsolidatedError) -> Self {
        match e {
            ConsolidatedError::Filter(_) | ConsolidatedError::GroupWithoutSlave => Self::Invalid(e.to_string()),
            ConsolidatedError::NotReplicated(_) => Self::NotFound(e.to_string()),
            ConsolidatedError::Ambiguous { .. } => Self::Conflict(e.to_string()),
            ConsolidatedError::Database(e) => e.into(),
            ConsolidatedError::Pool(e) => e.into(),
        }
    }
}

pub(super) async fn list_endpoints(
    State(state): State<SharedState>,
    Params(q): Params<EndpointQuery>,
) -> ApiResult<EndpointPage<ReplicaEndpoint>> {
    let (filter, page) = q.checked()?;
    Ok(Json(consolidated::list(&state, &filter, page).await?))
}

pub(super) async fn show_endpoint(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Params(q): Params<ShowEndpointQuery>,
) -> ApiResult<ReplicaEndpoint> {
    Ok(Json(consolidated::show(&state, &id, q.slave.as_deref()).await?))
}

pub(super) async fn tree(
    State(state): State<SharedState>,
    Params(q): Params<TreeQuery>,
) -> ApiResult<Tree<MasterRoot>> {
    let view = TreeView::parse(q.view.as_deref())?;
    Ok(Json(tree::master(&state, view).await?))
}
