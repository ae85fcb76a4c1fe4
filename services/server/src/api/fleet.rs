//! Fleet routes: endpoints, network groups (network builder), virtual
//! groups, and the tree. A stand-alone or slave serves its own fleet; a
//! master serves its consolidated copy of its slaves' ([`super::consolidated`]).

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, patch, post},
    Extension, Json, Router,
};
use serde::Deserialize;

use super::{error::parse_id, ApiError, ApiResult, Body, Params};
use crate::{
    fleet::{
        endpoints::{self, EndpointError, EndpointPage, EndpointView},
        filter::{After, EndpointFilter, FilterError, Page},
        groups::{self, GroupError, GroupView},
        tree::{self, SiteRoot, Tree, TreeView, UnknownView},
        virtual_groups::{self, Members, Membership, MembershipChange, VirtualGroupError, VirtualGroupView},
        ReadError,
    },
    operators::Actor,
    state::SharedState,
};

/// The fleet routes of a stand-alone or slave.
pub(super) fn site_routes() -> Router<SharedState> {
    Router::new()
        .route("/tree", get(site_tree))
        .route("/endpoints", get(list_endpoints))
        .route("/endpoints/{id}", get(show_endpoint))
        .merge(builder_routes())
}

/// Routes that change the fleet: moving endpoints, groups, virtual groups.
/// A master mounts them too (see [`super::consolidated`]).
pub(super) fn builder_routes() -> Router<SharedState> {
    Router::new()
        .route("/endpoints/{id}/move", post(move_endpoint))
        .route("/groups", get(list_groups).post(create_group))
        .route("/groups/{id}", patch(edit_group).delete(delete_group))
        .route("/virtual-groups", get(list_virtual_groups).post(create_virtual_group))
        .route("/virtual-groups/{id}", delete(delete_virtual_group))
        .route("/virtual-groups/{id}/members", get(virtual_group_members).post(add_members).delete(remove_members))
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Database(e) => e.into(),
            ReadError::Pool(e) => e.into(),
        }
    }
}

impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> Self {
        match e {
            FilterError::BadCursor(_) => Self::BadRequest(e.to_string()),
            _ => Self::Invalid(e.to_string()),
        }
    }
}

impl From<UnknownView> for ApiError {
    fn from(e: UnknownView) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::NotFound(_) => Self::NotFound(e.to_string()),
            EndpointError::Filter(_) | EndpointError::SlaveFilter(_) | EndpointError::UnknownGroup(_) => {
                Self::Invalid(e.to_string())
            }
            EndpointError::Database(e) => e.into(),
            EndpointError::Pool(e) => e.into(),
        }
    }
}

impl From<GroupError> for ApiError {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::NotFound(_) => Self::NotFound(e.to_string()),
            GroupError::DefaultGroup => Self::Conflict(e.to_string()),
            GroupError::Database(e) => e.into(),
            GroupError::Pool(e) => e.into(),
            GroupError::NameRequired
            | GroupError::SubnetNotCidr(_)
            | GroupError::SubnetAddress { .. }
            | GroupError::SubnetPrefix { .. }
            | GroupError::SubnetRefused(_)
            | GroupError::UnknownParent(_)
            | GroupError::ParentFixed => Self::Invalid(e.to_string()),
        }
    }
}

impl From<VirtualGroupError> for ApiError {
    fn from(e: VirtualGroupError) -> Self {
        match e {
            VirtualGroupError::NotFound(_) => Self::NotFound(e.to_string()),
            VirtualGroupError::NameTaken(_) => Self::Conflict(e.to_string()),
            VirtualGroupError::NameRequired | VirtualGroupError::UnknownEndpoints(_) => Self::Invalid(e.to_string()),
            VirtualGroupError::Database(e) => e.into(),
            VirtualGroupError::Pool(e) => e.into(),
        }
    }
}

/// `GET /api/endpoints` filters and page (the same on every role).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EndpointQuery {
    /// On a master: only this slave's endpoints.
    slave: Option<String>,
    group: Option<i64>,
    status: Option<String>,
    licensed: Option<bool>,
    search: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
    /// On a master: the page starts after this endpoint (`<slave>/<id>`,
    /// the `next` of the page before).
    after: Option<String>,
}

impl EndpointQuery {
    /// The filter, page and cursor asked for, checked.
    pub(super) fn checked(self) -> Result<(EndpointFilter, Page, Option<After>), FilterError> {
        let status = EndpointFilter::status(self.status.as_deref())?;
        if self.offset.is_some() && self.after.is_some() {
            return Err(FilterError::OffsetWithAfter);
        }
        let after = self.after.as_deref().map(After::parse).transpose()?;
        let page = Page::new(self.limit, self.offset, 100)?;
        let filter = EndpointFilter {
            slave: self.slave,
            group: self.group,
            status,
            licensed: self.licensed,
            search: self.search,
        };
        Ok((filter, page, after))
    }
}

async fn list_endpoints(
    State(state): State<SharedState>,
    Params(q): Params<EndpointQuery>,
) -> ApiResult<EndpointPage<EndpointView>> {
    let (filter, page, after) = q.checked()?;
    if after.is_some() {
        return Err(FilterError::AfterOnSite.into());
    }
    Ok(Json(endpoints::list(&state, &filter, page).await?))
}

/// `GET /api/endpoints/{id}` query (`slave` is for a master).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ShowEndpointQuery {
    /// On a master, when two slaves use the same endpoint id.
    pub(super) slave: Option<String>,
}

async fn show_endpoint(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    Params(_): Params<ShowEndpointQuery>,
) -> ApiResult<EndpointView> {
    Ok(Json(endpoints::show(&state, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveEndpoint {
    group_id: i64,
}

async fn move_endpoint(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<MoveEndpoint>,
) -> ApiResult<EndpointView> {
    Ok(Json(endpoints::move_to_group(&state, &actor, &id, body.group_id).await?))
}

async fn list_groups(State(state): State<SharedState>) -> ApiResult<Vec<GroupView>> {
    Ok(Json(groups::list(&state).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupBody {
    name: Option<String>,
    parent_id: Option<i64>,
    subnet: Option<String>,
}

async fn create_group(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<GroupBody>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    let group = groups::create(&state, &actor, body.name.as_deref(), body.parent_id, body.subnet.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

async fn edit_group(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<GroupBody>,
) -> ApiResult<GroupView> {
    let id: i64 = parse_id(&id, "group")?;
    Ok(Json(groups::edit(&state, &actor, id, body.name.as_deref(), body.parent_id, body.subnet.as_deref()).await?))
}

async fn delete_group(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    groups::delete(&state, &actor, parse_id(&id, "group")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_virtual_groups(State(state): State<SharedState>) -> ApiResult<Vec<VirtualGroupView>> {
    Ok(Json(virtual_groups::list(&state).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VirtualGroupBody {
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_virtual_group(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<VirtualGroupBody>,
) -> Result<(StatusCode, Json<VirtualGroupView>), ApiError> {
    let group = virtual_groups::create(&state, &actor, &body.name, body.description).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

async fn delete_virtual_group(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    virtual_groups::delete(&state, &actor, parse_id(&id, "virtual group")?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn virtual_group_members(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<Members> {
    Ok(Json(virtual_groups::members(&state, parse_id(&id, "virtual group")?).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersBody {
    endpoints: Vec<String>,
}

async fn add_members(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<MembersBody>,
) -> ApiResult<MembershipChange> {
    let id = parse_id(&id, "virtual group")?;
    Ok(Json(virtual_groups::change_members(&state, &actor, id, &body.endpoints, Membership::Add).await?))
}

async fn remove_members(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Body(body): Body<MembersBody>,
) -> ApiResult<MembershipChange> {
    let id = parse_id(&id, "virtual group")?;
    Ok(Json(virtual_groups::change_members(&state, &actor, id, &body.endpoints, Membership::Remove).await?))
}

/// `GET /api/tree` query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TreeQuery {
    pub(super) view: Option<String>,
}

async fn site_tree(State(state): State<SharedState>, Params(q): Params<TreeQuery>) -> ApiResult<Tree<SiteRoot>> {
    let view = TreeView::parse(q.view.as_deref())?;
    Ok(Json(tree::site(&state, view).await?))
}
