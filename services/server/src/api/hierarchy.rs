//! Hierarchy routes: registration tokens and slaves (master), registering
//! and unregistering (stand-alone / slave), and the registration call one
//! server makes to another.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Extension, Json, Router,
};
use rampart_shared::{
    hierarchy::{RegisterRequest, RegisterResponse},
    site_link::CancelRegistration,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiResult, Body, Params};
use crate::{
    hierarchy::{
        broker_links,
        link::{self, LinkError},
        link_users::{self, LinkUserError},
        registration::{self, CancelError, RegistrationError},
        slaves::{self, Removal, SlaveError, SlaveView},
        tokens::{self, IssuedToken, TokenError, TokenView},
    },
    operators::Actor,
    state::{AppState, SharedState},
};

/// The master's hierarchy routes (under `/api`).
pub(super) fn master_routes() -> Router<SharedState> {
    Router::new()
        .route("/registration-tokens", get(list_tokens).post(create_token))
        .route("/slaves", get(list_slaves))
        .route("/slaves/{id}", get(show_slave).delete(remove_slave))
        .route("/hierarchy", get(show))
        // Refused by the domain, with what a master is not.
        .route("/hierarchy/register", post(register))
        .route("/hierarchy/unregister", post(unregister))
}

/// A site's hierarchy routes (under `/api`).
pub(super) fn site_routes() -> Router<SharedState> {
    Router::new()
        .route("/registration-tokens", get(master_only_tokens).post(master_only_tokens))
        .route("/slaves", get(master_only_slaves))
        .route("/slaves/{id}", get(master_only_slaves).delete(master_only_slaves))
        .route("/hierarchy", get(show))
        .route("/hierarchy/register", post(register))
        .route("/hierarchy/unregister", post(unregister))
}

/// Refuses master-only routes on a site, naming what was asked.
pub(super) fn master_only(state: &AppState, what: &str) -> ApiError {
    ApiError::FeatureUnavailable(format!("{what} exist only on a master; this server is a {}", state.role()))
}

async fn master_only_tokens(State(state): State<SharedState>) -> ApiError {
    master_only(&state, "Registration tokens")
}

async fn master_only_slaves(State(state): State<SharedState>) -> ApiError {
    master_only(&state, "Slaves")
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Database(e) => e.into(),
            LinkError::Pool(e) => e.into(),
            LinkError::Invalid(m) => Self::Invalid(m),
            LinkError::Refused { status: 403, .. } => Self::Forbidden(e.to_string()),
            LinkError::Refused { status: 400..=499, .. } => Self::Conflict(e.to_string()),
            LinkError::Refused { .. } | LinkError::MasterUnusable(_) | LinkError::LinksDown { .. } => {
                Self::BadGateway(e.to_string())
            }
            LinkError::IsMaster | LinkError::AlreadySlave { .. } | LinkError::NotRegistered(_) => {
                Self::Conflict(e.to_string())
            }
            LinkError::AcceptedNotRecorded { .. } | LinkError::Client(_) => Self::Internal(e.into()),
        }
    }
}

impl From<RegistrationError> for ApiError {
    fn from(e: RegistrationError) -> Self {
        match e {
            RegistrationError::Database(e) | RegistrationError::Token(TokenError::Database(e)) => e.into(),
            RegistrationError::Pool(e) => e.into(),
            RegistrationError::Token(e) => Self::Forbidden(e.to_string()),
            RegistrationError::PlainRefused => Self::Forbidden(e.to_string()),
            RegistrationError::Invalid(m) => Self::Invalid(m),
            RegistrationError::Broker(_) => Self::Unavailable(e.to_string()),
            RegistrationError::NoMasterKey => Self::Internal(e.into()),
            RegistrationError::LinkUser(LinkUserError::NoBrokerForSlaves(_)) => Self::Conflict(e.to_string()),
            RegistrationError::LinkUser(LinkUserError::Broker { .. }) => Self::Unavailable(e.to_string()),
            RegistrationError::NotAMaster { .. }
            | RegistrationError::OwnName(_)
            | RegistrationError::OtherNamespace { .. }
            | RegistrationError::AlreadyRegistered { .. } => Self::Conflict(e.to_string()),
        }
    }
}

impl From<SlaveError> for ApiError {
    fn from(e: SlaveError) -> Self {
        match e {
            SlaveError::Database(e) => e.into(),
            SlaveError::Pool(e) => e.into(),
            SlaveError::Unknown(_) => Self::NotFound(e.to_string()),
            SlaveError::AlreadyRemoved(_) => Self::Conflict(e.to_string()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    expires_in_seconds: Option<u64>,
}

async fn create_token(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<CreateToken>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    let lifetime = body.expires_in_seconds.unwrap_or(tokens::DEFAULT_LIFETIME_SECONDS);
    if !(1..=tokens::MAX_LIFETIME_SECONDS).contains(&lifetime) {
        return Err(ApiError::Invalid(format!(
            "expires_in_seconds must be between 1 and {} (30 days)",
            tokens::MAX_LIFETIME_SECONDS
        )));
    }
    let issued = tokens::issue(&mut state.pool.get().await?, &actor, lifetime, state.api_fingerprint).await?;
    tracing::info!(token_id = %issued.id, expires_at = %issued.expires_at, "Created a registration token.");
    Ok((StatusCode::CREATED, Json(issued)))
}

async fn list_tokens(State(state): State<SharedState>) -> ApiResult<Vec<TokenView>> {
    Ok(Json(tokens::list(&state.pool.get().await?).await?))
}

/// Called by a stand-alone on this master; the token in the body is the credential.
pub(super) async fn accept_registration(
    State(state): State<SharedState>,
    Body(body): Body<RegisterRequest>,
) -> ApiResult<RegisterResponse> {
    let slave_id = body.slave_id.clone();
    match registration::register(&state, body).await {
        Ok(answer) => Ok(Json(answer)),
        Err(e) => {
            tracing::warn!(slave_id, error = %e, "Refused a registration.");
            Err(e.into())
        }
    }
}

/// Called by a slave whose links did not come up; the proof under its
/// slave key is the credential.
pub(super) async fn cancel_registration(
    State(state): State<SharedState>,
    Body(body): Body<CancelRegistration>,
) -> ApiResult<Value> {
    let slave_id = body.slave_id.clone();
    match registration::cancel(&state, body).await {
        Ok(()) => Ok(Json(json!({"slave_id": slave_id, "state": "removed"}))),
        Err(e) => {
            tracing::warn!(slave_id, error = %e, "Refused to withdraw a registration.");
            Err(match e {
                CancelError::Database(e) => e.into(),
                CancelError::Pool(e) => e.into(),
                CancelError::Unknown(_) => ApiError::NotFound(e.to_string()),
                CancelError::BadProof(_) => ApiError::Forbidden(e.to_string()),
            })
        }
    }
}

async fn list_slaves(State(state): State<SharedState>) -> ApiResult<Vec<SlaveView>> {
    Ok(Json(slaves::list(&state.pool.get().await?).await?))
}

async fn show_slave(State(state): State<SharedState>, Path(id): Path<String>) -> ApiResult<SlaveView> {
    let mut view = slaves::show(&state.pool.get().await?, &id).await?;
    if view.site_broker && view.state != "removed" {
        view.broker = Some(link_users::broker_view(&state, &id).await);
    }
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Also delete the slave's replicated data.
    purge: Option<bool>,
    /// Removed at once, without waiting for the slave to confirm.
    force: Option<bool>,
}

async fn remove_slave(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    Params(q): Params<RemoveQuery>,
) -> ApiResult<Removal> {
    Ok(Json(slaves::remove(&state, &actor, &id, q.purge.unwrap_or(false), q.force.unwrap_or(false)).await?))
}

async fn show(State(state): State<SharedState>) -> Json<Value> {
    let mut view = json!({"role": state.role(), "master": state.keyring.master_view()});
    // A slave on a broker of its own: its links to the master's broker.
    if let Some(report) = broker_links::report(&state).await {
        view["links"] = json!(report.links);
        view["links_error"] = json!(report.error);
    }
    Json(view)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    master: String,
    token: String,
}

async fn register(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<Register>,
) -> ApiResult<Value> {
    link::register(&state, &actor, &body.master, &body.token).await?;
    Ok(Json(json!({"role": state.role(), "master": state.keyring.master_view()})))
}

async fn unregister(State(state): State<SharedState>, Extension(actor): Extension<Actor>) -> ApiResult<Value> {
    let departure = link::unregister(&state, &actor).await?;
    let mut answer = json!({"role": state.role(), "removed_policies": departure.removed_policies,
                            "cancelled_tasks": departure.cancelled_tasks, "master_informed": !departure.departure_waiting});
    if departure.departure_waiting {
        answer["note"] = json!(format!(
            "the master's broker could not be reached: the links are removed but the status link, which delivers \
             this server's departure once the master's broker is reachable (the master then deletes this slave's \
             broker user, and this server removes the link); if the master is gone for good, remove this slave \
             there with `rampartctl slaves remove {} --force`",
            state.site.instance
        ));
    }
    Ok(Json(answer))
}
