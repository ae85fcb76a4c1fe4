//! The operator's e-mail settings: the SMTP relay scheduled reports are
//! mailed through, and their recipients.
//!
//! They are checked when saved ([`EmailSettings::check`]) and kept as JSON
//! under [`settings_store::EMAIL`]. The password is write-only: it is
//! stored, never shown ([`EmailSettingsView`] says only whether one is set),
//! and saving without one keeps the stored one. Settings saved before `tls`
//! and `ca_file` existed are still read: their `starttls` decides the mode.
//!
//! View fields are declared in the order the API has always answered them
//! (alphabetical), so the JSON stays byte for byte the same.

use std::path::{Path, PathBuf};

use deadpool_postgres::{GenericClient, PoolError};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    mail::{self, MailError, SmtpSettings, TlsMode},
    operators::{activity, Actor},
    settings_store,
    state::AppState,
};

/// The settings an operator saves, as they are stored.
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
    tls: Option<TlsMode>,
    /// A PEM file of CA certificates trusted for the relay besides the
    /// system's roots.
    #[serde(default)]
    ca_file: Option<String>,
}

fn default_smtp_port() -> u16 {
    587
}

/// The settings as stored, whichever version saved them.
#[derive(Deserialize)]
struct StoredSettings {
    smtp_host: String,
    smtp_port: u16,
    username: Option<String>,
    password: Option<String>,
    from: String,
    to: Vec<String>,
    /// Settings saved before `tls` existed have only `starttls`.
    starttls: bool,
    #[serde(default)]
    tls: Option<TlsMode>,
    /// `None` when saved before `ca_file` existed; `Some(None)` when none
    /// was given.
    #[serde(default, deserialize_with = "present")]
    ca_file: Option<Option<String>>,
}

/// Tells a field that is stored (even as `null`) from one that is not.
fn present<'de, D: Deserializer<'de>>(stored: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(stored).map(Some)
}

impl StoredSettings {
    fn tls(&self) -> TlsMode {
        self.tls.unwrap_or(TlsMode::from_starttls(self.starttls))
    }
}

/// What `GET /api/settings/email` shows.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EmailSettingsView {
    /// Nothing saved yet: `{"configured": false}`.
    NotConfigured {
        configured: bool,
    },
    Configured(ConfiguredEmail),
}

/// Saved settings, without the password.
#[derive(Debug, Serialize)]
pub struct ConfiguredEmail {
    /// Left out for settings saved before it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<Option<String>>,
    /// Always `true`.
    pub configured: bool,
    pub from: String,
    pub password_set: bool,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub starttls: bool,
    pub tls: TlsMode,
    pub to: Vec<String>,
    pub username: Option<String>,
}

impl From<StoredSettings> for EmailSettingsView {
    fn from(s: StoredSettings) -> Self {
        let tls = s.tls();
        Self::Configured(ConfiguredEmail {
            ca_file: s.ca_file,
            configured: true,
            from: s.from,
            password_set: s.password.is_some(),
            smtp_host: s.smtp_host,
            smtp_port: s.smtp_port,
            starttls: s.starttls,
            tls,
            to: s.to,
            username: s.username,
        })
    }
}

/// Where scheduled reports are mailed: the relay, the sender and the
/// recipients of the stored settings.
pub struct Outgoing {
    pub relay: SmtpSettings,
    pub from: String,
    pub to: Vec<String>,
}

/// Why e-mail settings could not be saved or read.
#[derive(Debug, thiserror::Error)]
pub enum EmailSettingsError {
    #[error("smtp_host is required")]
    HostRequired,
    #[error("smtp_port must be 1..65535")]
    PortZero,
    #[error("{field}: '{address}' is not an e-mail address")]
    NotAnAddress { field: &'static str, address: String },
    #[error("to needs at least one address")]
    NoRecipients,
    #[error("starttls: {starttls} contradicts tls \"{tls}\" (give tls alone)")]
    TlsContradicted { starttls: bool, tls: TlsMode },
    #[error("ca_file: the relay is reached without TLS (tls \"none\")")]
    CaFileWithoutTls,
    #[error("ca_file: '{0}' is not an absolute path")]
    CaFileNotAbsolute(String),
    #[error("ca_file: {0}")]
    CaFileUnusable(MailError),
    /// What is stored is not settings this server wrote.
    #[error("the stored e-mail settings are unreadable")]
    Unreadable(#[source] serde_json::Error),
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

impl EmailSettings {
    /// Checks the settings and settles `tls` and `starttls` so that both
    /// are stored, agreeing.
    pub fn check(mut self) -> Result<Self, EmailSettingsError> {
        if self.smtp_host.trim().is_empty() {
            return Err(EmailSettingsError::HostRequired);
        }
        if self.smtp_port == 0 {
            return Err(EmailSettingsError::PortZero);
        }
        check_address("from", &self.from)?;
        if self.to.is_empty() {
            return Err(EmailSettingsError::NoRecipients);
        }
        for a in &self.to {
            check_address("to", a)?;
        }
        self.settle_tls()?;
        Ok(self)
    }

    /// Settles `tls` and `starttls` (which must agree when both are given)
    /// and checks the CA file.
    fn settle_tls(&mut self) -> Result<(), EmailSettingsError> {
        let tls = match (self.tls, self.starttls) {
            (Some(tls), Some(starttls)) if tls.is_starttls() != starttls => {
                return Err(EmailSettingsError::TlsContradicted { starttls, tls });
            }
            (Some(tls), _) => tls,
            (None, starttls) => TlsMode::from_starttls(starttls.unwrap_or(true)),
        };
        (self.tls, self.starttls) = (Some(tls), Some(tls.is_starttls()));
        if let Some(ca_file) = &self.ca_file {
            if tls == TlsMode::None {
                return Err(EmailSettingsError::CaFileWithoutTls);
            }
            if !Path::new(ca_file).is_absolute() {
                return Err(EmailSettingsError::CaFileNotAbsolute(ca_file.clone()));
            }
            mail::check_ca_file(Path::new(ca_file)).map_err(EmailSettingsError::CaFileUnusable)?;
        }
        Ok(())
    }
}

fn check_address(field: &'static str, a: &str) -> Result<(), EmailSettingsError> {
    let ok =
        a.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !a.contains(char::is_whitespace));
    if ok {
        Ok(())
    } else {
        Err(EmailSettingsError::NotAnAddress { field, address: a.to_owned() })
    }
}

async fn stored<C: GenericClient>(client: &C) -> Result<Option<StoredSettings>, EmailSettingsError> {
    settings_store::get(client, settings_store::EMAIL)
        .await?
        .map(|v| serde_json::from_value(v).map_err(EmailSettingsError::Unreadable))
        .transpose()
}

/// The settings as the operator sees them.
pub async fn show(state: &AppState) -> Result<EmailSettingsView, EmailSettingsError> {
    let client = state.pool.get().await?;
    Ok(match stored(&client).await? {
        None => EmailSettingsView::NotConfigured { configured: false },
        Some(s) => s.into(),
    })
}

/// Checks and saves `settings`; left out, the password stays as stored.
pub async fn save(
    state: &AppState,
    actor: &Actor,
    settings: EmailSettings,
) -> Result<EmailSettingsView, EmailSettingsError> {
    let mut settings = settings.check()?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let stored = settings_store::get(&tx, settings_store::EMAIL).await?;
    let stored_password = stored.as_ref().and_then(|v| v.get("password").and_then(|p| p.as_str()).map(str::to_owned));
    let password_changed = settings.password.is_some() && settings.password != stored_password;
    if settings.password.is_none() {
        // Leaving the password out keeps the stored one (it is never shown).
        settings.password = stored_password;
    }
    let value = serde_json::to_value(&settings).expect("settings serialize");
    settings_store::put(&tx, settings_store::EMAIL, &value).await?;
    let (before, mut after) = activity::changed(without_password(stored.clone()), without_password(Some(value)));
    if password_changed {
        after["password_changed"] = true.into();
    }
    let before = stored.is_some().then_some(before);
    activity::record(&tx, actor, "email_settings.save", "email_settings", before, Some(after)).await?;
    tx.commit().await?;
    tracing::info!(smtp_host = %settings.smtp_host, recipients = settings.to.len(), tls = ?settings.tls, "Saved e-mail settings.");
    drop(client);
    show(state).await
}

/// Stored settings as the activity log keeps them: never the password.
fn without_password(stored: Option<serde_json::Value>) -> serde_json::Value {
    let mut value = stored.unwrap_or_else(|| serde_json::json!({}));
    if let Some(map) = value.as_object_mut() {
        map.remove("password");
    }
    value
}

/// Whether any settings are saved.
pub async fn configured<C: GenericClient>(client: &C) -> Result<bool, tokio_postgres::Error> {
    Ok(settings_store::get(client, settings_store::EMAIL).await?.is_some())
}

/// The relay and addresses to mail through, if settings are saved.
pub async fn outgoing<C: GenericClient>(client: &C) -> Result<Option<Outgoing>, EmailSettingsError> {
    Ok(stored(client).await?.map(|s| Outgoing {
        relay: SmtpSettings {
            tls: s.tls(),
            host: s.smtp_host,
            port: s.smtp_port,
            username: s.username,
            password: s.password,
            ca_file: s.ca_file.flatten().map(PathBuf::from),
        },
        from: s.from,
        to: s.to,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(stored: serde_json::Value) -> String {
        let stored: StoredSettings = serde_json::from_value(stored).unwrap();
        serde_json::to_string(&EmailSettingsView::from(stored)).unwrap()
    }

    #[test]
    fn stored_settings_are_shown_without_the_password() {
        let stored = serde_json::json!({"smtp_host": "relay.example.com", "smtp_port": 465, "username": "u",
            "password": "hunter2", "from": "r@example.com", "to": ["ops@example.com"], "starttls": false,
            "tls": "implicit", "ca_file": null});
        assert_eq!(
            view(stored),
            r#"{"ca_file":null,"configured":true,"from":"r@example.com","password_set":true,"#.to_owned()
                + r#""smtp_host":"relay.example.com","smtp_port":465,"starttls":false,"tls":"implicit","#
                + r#""to":["ops@example.com"],"username":"u"}"#
        );
        let unconfigured = EmailSettingsView::NotConfigured { configured: false };
        assert_eq!(serde_json::to_string(&unconfigured).unwrap(), r#"{"configured":false}"#);
    }

    #[test]
    fn settings_saved_before_tls_existed_are_read() {
        let stored = serde_json::json!({"smtp_host": "relay", "smtp_port": 25, "username": null, "password": null,
            "from": "r@example.com", "to": ["ops@example.com"], "starttls": false});
        assert_eq!(
            view(stored),
            r#"{"configured":true,"from":"r@example.com","password_set":false,"smtp_host":"relay","#.to_owned()
                + r#""smtp_port":25,"starttls":false,"tls":"none","to":["ops@example.com"],"username":null}"#
        );
    }

    fn settings(tls: Option<TlsMode>, starttls: Option<bool>) -> EmailSettings {
        EmailSettings {
            smtp_host: "relay".into(),
            smtp_port: 587,
            username: None,
            password: None,
            from: "r@example.com".into(),
            to: vec!["ops@example.com".into()],
            starttls,
            tls,
            ca_file: None,
        }
    }

    #[test]
    fn settings_are_checked() {
        let settled = settings(None, None).check().unwrap();
        assert_eq!((settled.tls, settled.starttls), (Some(TlsMode::Starttls), Some(true)));
        let settled = settings(Some(TlsMode::Implicit), None).check().unwrap();
        assert_eq!((settled.tls, settled.starttls), (Some(TlsMode::Implicit), Some(false)));
        let contradicted = settings(Some(TlsMode::None), Some(true)).check().err().unwrap();
        assert_eq!(contradicted.to_string(), "starttls: true contradicts tls \"none\" (give tls alone)");
        let mut bad = settings(None, None);
        bad.to = vec!["ops example.com".into()];
        assert_eq!(bad.check().err().unwrap().to_string(), "to: 'ops example.com' is not an e-mail address");
        let mut relative = settings(None, None);
        relative.ca_file = Some("ca.pem".into());
        assert_eq!(relative.check().err().unwrap().to_string(), "ca_file: 'ca.pem' is not an absolute path");
    }
}
