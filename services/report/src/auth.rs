//! Who may read reports: the master's forwarding (the service token of
//! `report.xml`) or one of the master's operators with their own token,
//! checked with that master ([`crate::operators`]).

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use rampart_http::ApiError;

use crate::{
    operators::{CheckError, Operator},
    state::AppState,
};

/// Who a request reads for (an extension of every `/api` request).
#[derive(Clone, Debug)]
pub enum Reader {
    /// The master's forwarding, with the service token.
    Master,
    Operator(Operator),
}

impl Reader {
    /// As logged: `master` or the operator's name.
    pub fn name(&self) -> &str {
        match self {
            Reader::Master => "master",
            Reader::Operator(o) => &o.operator,
        }
    }
}

/// The layer in front of every `/api` route.
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let reader = {
        let Some(token) = rampart_http::bearer(request.headers()) else {
            return Err(ApiError::Unauthorized(
                "send 'Authorization: Bearer <token>' (an operator's token of the master, or the API token of report.xml)"
                    .into(),
            ));
        };
        if state.settings.service.api_token.matches(token) {
            Reader::Master
        } else {
            match &state.operators {
                None => {
                    return Err(ApiError::Unauthorized(
                        "the bearer token is not valid for this report service (operators' tokens are accepted \
                         only when report.xml names their <Master>)"
                            .into(),
                    ))
                }
                Some(check) => match check.operator(token).await {
                    Ok(operator) => Reader::Operator(operator),
                    Err(CheckError::Refused(reason)) => return Err(ApiError::Unauthorized(reason)),
                    Err(e @ CheckError::Unreachable { .. }) => {
                        tracing::warn!(error = %e, "An operator's token could not be checked.");
                        return Err(ApiError::Unavailable(e.to_string()));
                    }
                },
            }
        }
    };
    request.extensions_mut().insert(reader);
    Ok(next.run(request).await)
}
