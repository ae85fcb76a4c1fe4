//! Deployment tool and status, automatic deployment, e-mail settings, license.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ApiError, ApiResult, Body};
use crate::{deployments, licensing, mail, settings_store, state::SharedState};

const DEPLOYMENT_SELECT: &str =
    "SELECT d.id, d.computer_id, c.hostname, d.state, d.message, d.requested_at, d.finished_at, d.automatic
    FROM deployments d LEFT JOIN discovered_computers c ON c.computer_id = d.computer_id";

fn deployment_json(r: &tokio_postgres::Row) -> Value {
    json!({"id": r.get::<_, uuid::Uuid>(0), "computer_id": r.get::<_, String>(1), "hostname": r.get::<_, Option<String>>(2),
           "state": r.get::<_, String>(3), "message": r.get::<_, Option<String>>(4),
           "requested_at": r.get::<_, chrono::DateTime<chrono::Utc>>(5),
           "finished_at": r.get::<_, Option<chrono::DateTime<chrono::Utc>>>(6), "automatic": r.get::<_, bool>(7)})
}

pub async fn list_deployments(State(state): State<SharedState>) -> ApiResult<Vec<Value>> {
    let client = state.pool.get().await?;
    let rows = client.query(&format!("{DEPLOYMENT_SELECT} ORDER BY d.requested_at DESC LIMIT 1000"), &[]).await?;
    Ok(Json(rows.iter().map(deployment_json).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    computers: Vec<String>,
}

pub async fn deploy(
    State(state): State<SharedState>,
    Body(body): Body<DeployRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if body.computers.is_empty() {
        return Err(ApiError::Invalid("computers is empty".into()));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx
        .query(
            "SELECT c.computer_id, EXISTS (SELECT 1 FROM endpoints e WHERE e.id = c.computer_id)
               FROM discovered_computers c WHERE c.computer_id = ANY($1)",
            &[&body.computers],
        )
        .await?;
    let unknown: Vec<&str> = body
        .computers
        .iter()
        .filter(|c| !rows.iter().any(|r| r.get::<_, &str>(0) == c.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Invalid(format!("not discovered on the network: {}", unknown.join(", "))));
    }
    let managed: Vec<String> = rows.iter().filter(|r| r.get::<_, bool>(1)).map(|r| r.get(0)).collect();
    if !managed.is_empty() {
        return Err(ApiError::Invalid(format!("already managed: {}", managed.join(", "))));
    }
    let ids = deployments::create(&tx, &state.site, &body.computers, false).await?;
    let rows = tx.query(&format!("{DEPLOYMENT_SELECT} WHERE d.id = ANY($1) ORDER BY d.computer_id"), &[&ids]).await?;
    tx.commit().await?;
    state.wakes.outbox_relay.wake();
    Ok((StatusCode::CREATED, Json(json!({"deployments": rows.iter().map(deployment_json).collect::<Vec<_>>()}))))
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutoDeploy {
    enabled: bool,
}

pub async fn get_auto_deploy(State(state): State<SharedState>) -> ApiResult<AutoDeploy> {
    let client = state.pool.get().await?;
    Ok(Json(AutoDeploy { enabled: deployments::auto_deploy_enabled(&client).await? }))
}

pub async fn put_auto_deploy(State(state): State<SharedState>, Body(body): Body<AutoDeploy>) -> ApiResult<AutoDeploy> {
    let client = state.pool.get().await?;
    settings_store::put(&client, settings_store::AUTO_DEPLOY, &json!({"enabled": body.enabled})).await?;
    tracing::info!(enabled = body.enabled, "Changed automatic deployment.");
    Ok(Json(body))
}

/// Stored SMTP settings. The password is write-only through the API.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    smtp_host: String,
    #[serde(default = "default_smtp_port")]
    smtp_port: u16,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    from: String,
    to: Vec<String>,
    /// The older switch, still accepted: `true` means `"tls": "starttls"`,
    /// `false` means `"none"`. Stored agreeing with `tls`.
    #[serde(default)]
    starttls: Option<bool>,
    /// How the relay is reached; left out, `starttls` decides (STARTTLS
    /// when both are left out).
    #[serde(default)]
    tls: Option<mail::TlsMode>,
    /// A PEM file of CA certificates trusted for the relay besides the
    /// system's roots.
    #[serde(default)]
    ca_file: Option<String>,
}

fn default_smtp_port() -> u16 {
    587
}

impl EmailSettings {
    /// Settles `tls` and `starttls` (which must agree when both are given)
    /// and checks the CA file.
    fn settle_tls(&mut self) -> Result<(), ApiError> {
        let tls = match (self.tls, self.starttls) {
            (Some(tls), Some(starttls)) if tls.is_starttls() != starttls => {
                return Err(ApiError::Invalid(format!(
                    "starttls: {starttls} contradicts tls \"{tls}\" (give tls alone)"
                )));
            }
            (Some(tls), _) => tls,
            (None, starttls) => mail::TlsMode::from_starttls(starttls.unwrap_or(true)),
        };
        (self.tls, self.starttls) = (Some(tls), Some(tls.is_starttls()));
        if let Some(ca_file) = &self.ca_file {
            if tls == mail::TlsMode::None {
                return Err(ApiError::Invalid("ca_file: the relay is reached without TLS (tls \"none\")".into()));
            }
            if !std::path::Path::new(ca_file).is_absolute() {
                return Err(ApiError::Invalid(format!("ca_file: '{ca_file}' is not an absolute path")));
            }
            mail::check_ca_file(std::path::Path::new(ca_file))
                .map_err(|e| ApiError::Invalid(format!("ca_file: {e}")))?;
        }
        Ok(())
    }
}

fn check_address(field: &str, a: &str) -> Result<(), ApiError> {
    let ok =
        a.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !a.contains(char::is_whitespace));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid(format!("{field}: '{a}' is not an e-mail address")))
    }
}

pub async fn get_email(State(state): State<SharedState>) -> ApiResult<Value> {
    let client = state.pool.get().await?;
    Ok(Json(match settings_store::get(&client, settings_store::EMAIL).await? {
        None => json!({"configured": false}),
        Some(mut v) => {
            let has_password = v.get("password").is_some_and(|p| !p.is_null());
            if let Some(obj) = v.as_object_mut() {
                obj.remove("password");
                obj.insert("password_set".into(), has_password.into());
                obj.insert("configured".into(), true.into());
                if !obj.contains_key("tls") {
                    // Saved before `tls` existed.
                    let starttls = obj.get("starttls").and_then(Value::as_bool).unwrap_or(true);
                    obj.insert("tls".into(), mail::TlsMode::from_starttls(starttls).to_string().into());
                }
            }
            v
        }
    }))
}

pub async fn put_email(State(state): State<SharedState>, Body(body): Body<EmailSettings>) -> ApiResult<Value> {
    if body.smtp_host.trim().is_empty() {
        return Err(ApiError::Invalid("smtp_host is required".into()));
    }
    if body.smtp_port == 0 {
        return Err(ApiError::Invalid("smtp_port must be 1..65535".into()));
    }
    check_address("from", &body.from)?;
    if body.to.is_empty() {
        return Err(ApiError::Invalid("to needs at least one address".into()));
    }
    for a in &body.to {
        check_address("to", a)?;
    }
    let mut body = body;
    body.settle_tls()?;
    let client = state.pool.get().await?;
    if body.password.is_none() {
        // Leaving the password out keeps the stored one (it is never shown).
        let stored = settings_store::get(&client, settings_store::EMAIL).await?;
        body.password = stored.and_then(|v| v.get("password").and_then(|p| p.as_str()).map(str::to_owned));
    }
    settings_store::put(&client, settings_store::EMAIL, &serde_json::to_value(&body).expect("settings serialize"))
        .await?;
    tracing::info!(smtp_host = %body.smtp_host, recipients = body.to.len(), tls = ?body.tls, "Saved e-mail settings.");
    drop(client);
    get_email(State(state)).await
}

pub async fn get_license(State(state): State<SharedState>) -> ApiResult<licensing::LicenseSummary> {
    let client = state.pool.get().await?;
    Ok(Json(licensing::summary(&client).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseBody {
    key: String,
}

pub async fn put_license(
    State(state): State<SharedState>,
    Body(body): Body<LicenseBody>,
) -> ApiResult<licensing::LicenseSummary> {
    let mut client = state.pool.get().await?;
    match licensing::install(&mut client, &body.key).await {
        Ok(_) => {}
        Err(licensing::InstallError::Invalid(e)) => return Err(ApiError::Invalid(format!("license key refused: {e}"))),
        Err(licensing::InstallError::Database(e)) => return Err(e.into()),
    }
    Ok(Json(licensing::summary(&client).await?))
}
