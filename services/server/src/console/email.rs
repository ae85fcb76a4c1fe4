//! The e-mail settings: the SMTP relay scheduled reports are mailed
//! through, and their recipients; for the roles the access table allows, a
//! form that saves them as `PUT /api/settings/email` does
//! (`email_settings::save`, with its checks). The password is never shown
//! back: the form's field is empty, and left empty it keeps the stored one.

use axum::{
    extract::{Query, State},
    response::{IntoResponse, Redirect, Response},
    routing::get,
    Extension, Form, Router,
};
use maud::html;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    forms::{self, FormError},
    layout,
    page::ConsoleError,
    session::{may, Session},
};
use crate::{
    email_settings::{self, EmailSettings, EmailSettingsView},
    mail::TlsMode,
    operators::Actor,
    state::{AppState, SharedState},
};

/// The id of the settings form.
const FORM: &str = "email-settings";

/// How the relay may be reached, as the settings name it, and as the form says it.
const TLS_MODES: [(&str, &str); 3] = [
    ("starttls", "STARTTLS (usually port 587)"),
    ("implicit", "TLS from the start (usually port 465)"),
    ("none", "none (a relay on a trusted network only)"),
];

/// The e-mail settings' page and form (a stand-alone's or slave's).
pub(super) fn routes() -> Router<SharedState> {
    Router::new().route("/settings/email", get(email_page).post(save))
}

/// What the last action did, carried over the redirect after it.
#[derive(Default, Deserialize)]
pub struct Outcome {
    saved: Option<String>,
}

/// The form's fields as typed (never a password).
#[derive(Default, Deserialize)]
#[serde(default)]
struct Fields {
    smtp_host: String,
    smtp_port: String,
    tls: String,
    username: String,
    password: String,
    from: String,
    to: String,
    ca_file: String,
}

impl Fields {
    /// The stored settings, as the form shows them.
    fn of(view: &EmailSettingsView) -> Self {
        match view {
            EmailSettingsView::NotConfigured { .. } => Self { smtp_port: "587".into(), ..Self::default() },
            EmailSettingsView::Configured(e) => Self {
                smtp_host: e.smtp_host.clone(),
                smtp_port: e.smtp_port.to_string(),
                tls: tls_name(e.tls).to_owned(),
                username: e.username.clone().unwrap_or_default(),
                password: String::new(),
                from: e.from.clone(),
                to: e.to.join(", "),
                ca_file: e.ca_file.clone().flatten().unwrap_or_default(),
            },
        }
    }

    /// The settings to save, as the API reads them; empty optional fields
    /// are left out (an empty password keeps the stored one).
    fn settings(&self) -> Result<EmailSettings, FormError> {
        let port: u16 = self.smtp_port.trim().parse().map_err(|_| {
            FormError::new(FORM, format!("smtp_port '{}' is not a port number (1..65535)", self.smtp_port.trim()))
        })?;
        let optional = |v: &str| if v.trim().is_empty() { Value::Null } else { json!(v.trim()) };
        let body = json!({
            "smtp_host": self.smtp_host.trim(),
            "smtp_port": port,
            "tls": if self.tls.is_empty() { "starttls" } else { self.tls.as_str() },
            "username": optional(&self.username),
            // Not trimmed: a password may begin or end with a space.
            "password": if self.password.is_empty() { Value::Null } else { json!(self.password) },
            "from": self.from.trim(),
            "to": forms::list(&self.to),
            "ca_file": optional(&self.ca_file),
        });
        serde_json::from_value(body).map_err(|e| FormError::new(FORM, format!("the settings could not be read: {e}")))
    }
}

fn tls_name(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::None => "none",
        TlsMode::Starttls => "starttls",
        TlsMode::Implicit => "implicit",
    }
}

async fn page(
    state: &AppState,
    session: &Session,
    saved: bool,
    error: Option<FormError>,
    typed: Option<Fields>,
) -> Result<Response, ConsoleError> {
    let settings = email_settings::show(state).await?;
    let edits = may(session, "POST", "/settings/email");
    let error = error.as_ref();
    let summary = match &settings {
        EmailSettingsView::NotConfigured { .. } => html! { p.empty id="email-summary" { "No e-mail settings yet." } },
        EmailSettingsView::Configured(e) => html! {
            table id="email-summary" { tbody {
                tr { th scope="row" { "SMTP relay" } td { (e.smtp_host) ":" (e.smtp_port) } }
                tr { th scope="row" { "TLS" } td { (tls_name(e.tls)) } }
                tr { th scope="row" { "User" } td { (e.username.as_deref().unwrap_or("none")) } }
                tr { th scope="row" { "Password" } td.password { (if e.password_set { "set" } else { "none" }) } }
                tr { th scope="row" { "From" } td { (e.from) } }
                tr { th scope="row" { "To" } td { (e.to.join(", ")) } }
            } }
        },
    };
    let password_set = matches!(&settings, EmailSettingsView::Configured(e) if e.password_set);
    let f = typed.unwrap_or_else(|| Fields::of(&settings));
    let described = forms::error_id(FORM);
    let body = html! {
        (forms::notice(saved.then_some("Saved the e-mail settings.")))
        (summary)
        @if !edits {
            p.readonly { "Changing the e-mail settings needs the administrator role." }
        } @else {
            h2 { "Edit" }
            form.stack method="post" action="/console/settings/email" id=(FORM) {
                (layout::csrf_field(session))
                label { "SMTP relay host" input name="smtp_host" required value=(f.smtp_host) aria-describedby=(described); }
                label { "Port" input name="smtp_port" inputmode="numeric" required value=(f.smtp_port); }
                label { "TLS"
                    select name="tls" {
                        @for (mode, text) in TLS_MODES { option value=(mode) selected[f.tls == mode] { (text) } }
                    }
                }
                label { "User (optional)" input name="username" autocomplete="off" value=(f.username); }
                label {
                    @if password_set { "Password (set; leave empty to keep it)" } @else { "Password (optional)" }
                    input type="password" name="password" autocomplete="new-password";
                }
                label { "From" input type="email" name="from" required value=(f.from); }
                label { "To (addresses separated by commas)" input name="to" required value=(f.to); }
                label { "CA file for the relay (optional, an absolute path on the server)" input name="ca_file" value=(f.ca_file); }
                (forms::error_for(error, FORM))
                button type="submit" { "Save" }
            }
        }
    };
    Ok(forms::answer(error, layout::page(state, session, "E-mail settings", body).await?))
}

/// `GET /console/settings/email`.
async fn email_page(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Query(outcome): Query<Outcome>,
) -> Result<Response, ConsoleError> {
    page(&state, &session, outcome.saved.is_some(), None, None).await
}

/// `POST /console/settings/email`: as `PUT /api/settings/email`.
async fn save(
    State(state): State<SharedState>,
    Extension(session): Extension<Session>,
    Extension(actor): Extension<Actor>,
    Form(fields): Form<Fields>,
) -> Result<Response, ConsoleError> {
    let refused = match fields.settings() {
        Err(refused) => refused,
        Ok(settings) => match email_settings::save(&state, &actor, settings).await {
            Ok(_) => return Ok(Redirect::to("/console/settings/email?saved").into_response()),
            Err(e) => FormError::of(FORM, e)?,
        },
    };
    // The password typed is not sent back.
    let typed = Fields { password: String::new(), ..fields };
    page(&state, &session, false, Some(refused), Some(typed)).await
}
