//! Operators, sign-in, personal tokens and the activity log:
//! `/api/login`, `/api/me`, `/api/operators*`, `/api/tokens*`,
//! `/api/activity`, handed to [`crate::operators`].

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get, patch, post},
    Extension, Json, Router,
};
use serde::{Deserialize, Serialize};

use super::{
    access::{refusal, ClientAddress},
    error::parse_id,
    ApiError, ApiResult, Body, Params,
};
use crate::{
    operators::{
        accounts::{self, Account, AccountError},
        activity::{self, ActivityError, Entry, Filter},
        sign_in::{self, SignInError},
        tokens::{self, Issued, Principal, TokenView},
        Actor, OperatorRole,
    },
    state::SharedState,
};

/// Served by masters and sites alike.
pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/tokens", get(list_tokens))
        .route("/tokens/{id}", delete(revoke_token))
        .route("/operators", get(list_operators).post(create_operator))
        .route("/operators/{name}", patch(change_operator))
        .route("/activity", get(list_activity))
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::InvalidName(_) | AccountError::WeakPassword | AccountError::UnknownRole(_) => {
                Self::Invalid(e.to_string())
            }
            AccountError::Exists(_) => Self::Conflict(e.to_string()),
            AccountError::NotFound(_) => Self::NotFound(e.to_string()),
            AccountError::Hashing(m) => Self::Internal(anyhow::anyhow!(m)),
            AccountError::Database(e) => e.into(),
            AccountError::Pool(e) => e.into(),
        }
    }
}

impl From<SignInError> for ApiError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::Refused => Self::Unauthorized(e.to_string()),
            SignInError::Token(e) => e.into(),
            SignInError::Database(e) => e.into(),
            SignInError::Pool(e) => e.into(),
        }
    }
}

impl From<ActivityError> for ApiError {
    fn from(e: ActivityError) -> Self {
        match e {
            ActivityError::Database(e) => e.into(),
            ActivityError::Pool(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    operator: String,
    password: String,
    #[serde(default)]
    label: String,
    ttl_hours: Option<i64>,
}

async fn login(
    State(state): State<SharedState>,
    Extension(ClientAddress(address)): Extension<ClientAddress>,
    Body(body): Body<Login>,
) -> Result<(StatusCode, Json<Issued>), ApiError> {
    let ttl = body.ttl_hours.unwrap_or(tokens::DEFAULT_TTL_HOURS);
    let issued = sign_in::sign_in(&state, &body.operator, body.password, address, &body.label, ttl).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[derive(Serialize)]
struct Me {
    operator: String,
    role: OperatorRole,
    token: Option<uuid::Uuid>,
}

async fn me(Extension(principal): Extension<Principal>) -> ApiResult<Me> {
    Ok(Json(Me { operator: principal.operator, role: principal.role, token: principal.token }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenQuery {
    operator: Option<String>,
}

/// An operator's own tokens; an administrator's, anyone's (`?operator=`, or all).
async fn list_tokens(
    State(state): State<SharedState>,
    Extension(principal): Extension<Principal>,
    Params(q): Params<TokenQuery>,
) -> ApiResult<Vec<TokenView>> {
    let admin = principal.role.allows(OperatorRole::Administrator);
    let operator = match q.operator {
        Some(other) if other != principal.operator && !admin => {
            return Err(refusal(&principal, OperatorRole::Administrator));
        }
        Some(name) => Some(name),
        None if admin => None,
        None => Some(principal.operator.clone()),
    };
    Ok(Json(tokens::list(&state, operator.as_deref()).await?))
}

async fn revoke_token(
    State(state): State<SharedState>,
    Extension(principal): Extension<Principal>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<TokenView> {
    let id = parse_id(&id, "token")?;
    Ok(Json(tokens::revoke(&state, &principal, &actor, id).await?))
}

async fn list_operators(State(state): State<SharedState>) -> ApiResult<Vec<Account>> {
    Ok(Json(accounts::list(&state).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOperator {
    name: String,
    role: String,
    password: String,
}

async fn create_operator(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Body(body): Body<NewOperator>,
) -> Result<(StatusCode, Json<Account>), ApiError> {
    let role = accounts::parse_role(&body.role)?;
    let account = accounts::create(&state, &actor, &body.name, role, body.password).await?;
    Ok((StatusCode::CREATED, Json(account)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorChange {
    role: Option<String>,
    disabled: Option<bool>,
}

async fn change_operator(
    State(state): State<SharedState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Body(body): Body<OperatorChange>,
) -> ApiResult<Account> {
    if body.role.is_none() && body.disabled.is_none() {
        return Err(ApiError::Invalid("nothing to change: give role and/or disabled".into()));
    }
    let mut account = None;
    if let Some(role) = body.role {
        account = Some(accounts::set_role(&state, &actor, &name, accounts::parse_role(&role)?).await?);
    }
    if let Some(disabled) = body.disabled {
        account = Some(accounts::set_disabled(&state, &actor, &name, disabled).await?);
    }
    account.map(Json).ok_or_else(|| ApiError::Invalid("nothing to change".into()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivityQuery {
    operator: Option<String>,
    object: Option<String>,
    since: Option<chrono::DateTime<chrono::Utc>>,
    limit: Option<i64>,
}

async fn list_activity(State(state): State<SharedState>, Params(q): Params<ActivityQuery>) -> ApiResult<Vec<Entry>> {
    let limit = q.limit.unwrap_or(200);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::Invalid("limit must be between 1 and 10000".into()));
    }
    let filter = Filter { operator: q.operator, object: q.object, since: q.since, limit };
    Ok(Json(activity::list(&state, &filter).await?))
}
