//! Deployment tool and status, automatic deployment, e-mail settings,
//! license: `/api/deployments`, `/api/settings/*`, `/api/license`, handed to
//! [`crate::deployments`], [`crate::email_settings`] and
//! [`crate::licensing`]; their errors mapped to HTTP here.

use axum::{extract::State, http::StatusCode, routing::get, Extension, Json, Router};
use serde::Deserialize;

use super::{ApiError, ApiResult, Body};
use crate::{
    deployments::{self, AutoDeploy, DeployError, Deployed, DeploymentView},
    email_settings::{self, EmailSettings, EmailSettingsError, EmailSettingsView},
    licensing::{self, InstallError, LicenseSummary, SummaryError},
    operators::Actor,
    state::SharedState,
};

/// Site features that a master refuses in a layer before these handlers
/// run, so both roles mount them.
pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/deployments", get(list_deployments).post(deploy))
        .route("/settings/auto-deploy", get(get_auto_deploy).put(put_auto_deploy))
        .route("/settings/email", get(get_email).put(put_email))
        .route("/license", get(get_license).put(put_license))
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::NoComputers | DeployError::NotDiscovered(_) | DeployError::AlreadyManaged(_) => {
                Self::Invalid(e.to_string())
            }
            DeployError::Database(e) => e.into(),
            DeployError::Pool(e) => e.into(),
        }
    }
}

impl From<EmailSettingsError> for ApiError {
    fn from(e: EmailSettingsError) -> Self {
        match e {
            EmailSettingsError::HostRequired
            | EmailSettingsError::PortZero
            | EmailSettingsError::NotAnAddress { .. }
            | EmailSettingsError::NoRecipients
            | EmailSettingsError::TlsContradicted { .. }
            | EmailSettingsError::CaFileWithoutTls
            | EmailSettingsError::CaFileNotAbsolute(_)
            | EmailSettingsError::CaFileUnusable(_) => Self::Invalid(e.to_string()),
            EmailSettingsError::Unreadable(_) => Self::Internal(e.into()),
            EmailSettingsError::Database(e) => e.into(),
            EmailSettingsError::Pool(e) => e.into(),
        }
    }
}

impl From<InstallError> for ApiError {
    fn from(e: InstallError) -> Self {
        match e {
            InstallError::Invalid(e) => Self::Invalid(format!("license key refused: {e}")),
            InstallError::Database(e) => e.into(),
            InstallError::Pool(e) => e.into(),
        }
    }
}

impl From<SummaryError> for ApiError {
    fn from(e: SummaryError) -> Self {
        match e {
            SummaryError::Database(e) => e.into(),
            SummaryError::Pool(e) => e.into(),
        }
    }
}

async fn list_deployments(State(state): State<SharedState>) -> ApiResult<Vec<DeploymentView>> {
    Ok(Json(deployments::list(&state).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployRequest {
    computers: Vec<String>,
}

async fn deploy(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<DeployRequest>,
) -> Result<(StatusCode, Json<Deployed>), ApiError> {
    Ok((StatusCode::CREATED, Json(deployments::deploy(&state, &actor, &body.computers).await?)))
}

async fn get_auto_deploy(State(state): State<SharedState>) -> ApiResult<AutoDeploy> {
    Ok(Json(deployments::auto_deploy(&state).await?))
}

async fn put_auto_deploy(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<AutoDeploy>,
) -> ApiResult<AutoDeploy> {
    Ok(Json(deployments::set_auto_deploy(&state, &actor, body).await?))
}

async fn get_email(State(state): State<SharedState>) -> ApiResult<EmailSettingsView> {
    Ok(Json(email_settings::show(&state).await?))
}

async fn put_email(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<EmailSettings>,
) -> ApiResult<EmailSettingsView> {
    Ok(Json(email_settings::save(&state, &actor, body).await?))
}

async fn get_license(State(state): State<SharedState>) -> ApiResult<LicenseSummary> {
    Ok(Json(licensing::current(&state).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LicenseBody {
    key: String,
}

async fn put_license(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<LicenseBody>,
) -> ApiResult<LicenseSummary> {
    Ok(Json(licensing::install_key(&state, &actor, &body.key).await?))
}
