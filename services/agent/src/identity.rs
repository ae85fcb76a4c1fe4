//! The agent process's identity on its site: enrolment, once, and the
//! identity file that keeps it.
//!
//! First run: `--identity-file PATH --enrolment-token T --site-api
//! https://HOST:7073`. The token carries the SHA-256 fingerprint of the
//! site's API certificate (`rre_<secret>.<fingerprint>`); the agent
//! connects only to a server presenting exactly that certificate, sends
//! `rre_<secret>` and the ids of the endpoints it runs, and writes what the
//! site answers (its agent id, broker user and password, queue, the site's
//! public key) to the identity file, mode 0600. Later runs read the file and
//! need neither the token nor the site's API. The password is never logged.

use std::{io::Write, os::unix::fs::OpenOptionsExt, path::Path, time::Duration};

use anyhow::{bail, Context};
use rampart_shared::{
    broker_admin::{grants::url_with_user, NewUser},
    enrolment::{split_token, Enrolment, EnrolmentRequest, ENROL_PATH},
    site_key::SitePublicKey,
    tls::PinnedVerifier,
    topology::NameSegment,
    Secret,
};

/// Longest wait for the site's answer (it makes a broker user and declares
/// a queue with a binding per endpoint).
const ENROL_TIMEOUT: Duration = Duration::from_secs(120);

/// What the command line says about the identity.
#[derive(Debug, Clone, Default)]
pub struct IdentityFlags {
    pub identity_file: Option<std::path::PathBuf>,
    pub enrolment_token: Option<String>,
    pub site_api: Option<String>,
}

/// The identity to run as: read from the identity file, or made by
/// enrolling now (then written there). `None` without `--identity-file`.
/// `name` and `endpoints` are the fleet this process runs: an identity
/// enrolled for another fleet is refused.
pub async fn resolve(flags: &IdentityFlags, name: &str, endpoints: &[String]) -> anyhow::Result<Option<Enrolment>> {
    let Some(path) = &flags.identity_file else {
        if flags.enrolment_token.is_some() || flags.site_api.is_some() {
            bail!("--enrolment-token and --site-api need --identity-file, where the identity is kept");
        }
        return Ok(None);
    };
    if path.exists() {
        let identity = read(path)?;
        if identity.endpoints != endpoints {
            bail!(
                "{}: this identity was enrolled for {} endpoint(s) of another fleet than --name {name} --endpoints {}; \
                 run with the same fleet, or enrol again with a new token and another --identity-file",
                path.display(),
                identity.endpoints.len(),
                endpoints.len()
            );
        }
        tracing::info!(agent_id = identity.agent_id, file = %path.display(), "Using the enrolled identity.");
        return Ok(Some(identity));
    }
    let (Some(token), Some(site_api)) = (&flags.enrolment_token, &flags.site_api) else {
        bail!(
            "{}: no identity file yet; enrol first with --enrolment-token (from 'rampartctl agents enrolment-token \
             create') and --site-api https://HOST:7073",
            path.display()
        );
    };
    let request = EnrolmentRequest { token: String::new(), name: name.to_owned(), endpoints: endpoints.to_vec() };
    let identity = enrol(site_api, token, request).await?;
    write(path, &identity)?;
    tracing::info!(agent_id = identity.agent_id, site = identity.site, endpoints = identity.endpoints.len(),
                   file = %path.display(), "Enrolled on the site and wrote the identity file.");
    Ok(Some(identity))
}

/// Enrols at `site_api` with `token`, trusting only the certificate the
/// token names.
pub async fn enrol(site_api: &str, token: &str, mut request: EnrolmentRequest) -> anyhow::Result<Enrolment> {
    let presented = split_token(token).map_err(|e| anyhow::anyhow!("--enrolment-token: {e}"))?;
    request.token = presented.secret.to_owned();
    let base = site_api.trim_end_matches('/');
    let (client, verifier) = match (base.starts_with("https://"), presented.fingerprint) {
        (true, Some(fingerprint)) => {
            let verifier = PinnedVerifier::pinned(fingerprint);
            let client = reqwest::Client::builder().use_preconfigured_tls(verifier.client_config());
            (client, Some(verifier))
        }
        (true, None) => bail!(
            "--enrolment-token has no certificate fingerprint, so the site at {base} cannot be verified; \
             make a token on a site that serves TLS"
        ),
        (false, Some(_)) => bail!("--site-api must be https:// (the token pins the site's certificate)"),
        (false, None) if base.starts_with("http://") => (reqwest::Client::builder(), None),
        (false, None) => bail!("--site-api must be an https:// URL, e.g. https://site:7073"),
    };
    let client = client.timeout(ENROL_TIMEOUT).build().context("Failed to build the HTTP client")?;
    let url = format!("{base}{ENROL_PATH}");
    let answer = match client.post(&url).json(&request).send().await {
        Ok(answer) => answer,
        Err(e) => {
            if let Some(mismatch) = verifier.as_ref().and_then(|v| v.mismatch()) {
                bail!("Refused to enrol at {base}: {mismatch}; the enrolment token was made for another server");
            }
            return Err(anyhow::Error::new(e).context(format!("Failed to reach the site at {url}")));
        }
    };
    let status = answer.status();
    if !status.is_success() {
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or("no reason given");
        bail!("The site refused the enrolment ({status}): {message}");
    }
    answer.json::<Enrolment>().await.context("The site's enrolment answer is not what this agent understands")
}

/// Where and as whom an enrolled process connects, from its identity.
#[derive(Debug)]
pub struct EnrolledConnection {
    /// The broker URL of `--amqp` with the identity's user and password.
    pub amqp_url: Secret<String>,
    pub namespace: NameSegment,
    pub site: NameSegment,
    pub site_key: SitePublicKey,
    pub identity: AgentIdentity,
}

/// Who this process is on its site, once enrolled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentIdentity {
    pub agent_id: String,
    /// Its broker user: the AMQP `user_id` of every message it publishes.
    pub broker_user: String,
    /// The queue its site declared and bound to its endpoints' commands.
    pub queue: String,
}

/// What the command line says that an identity also decides.
pub struct GivenFlags<'a> {
    /// `--amqp`: the broker's address (its user is the identity's).
    pub amqp_url: &'a str,
    pub amqp_credentials_file: bool,
    pub site: Option<&'a NameSegment>,
    pub site_key: Option<SitePublicKey>,
}

/// A flag that contradicts the identity file.
#[derive(Debug)]
pub struct FlagConflict {
    pub flag: &'static str,
    pub reason: String,
}

/// What `identity` decides of the settings; the flags may repeat it, not
/// contradict it.
pub fn connection(identity: Enrolment, cli: &GivenFlags<'_>) -> Result<EnrolledConnection, FlagConflict> {
    let invalid = |flag, reason: String| FlagConflict { flag, reason };
    if cli.amqp_credentials_file {
        return Err(invalid("amqp-credentials-file", "an enrolled agent uses its identity's broker user".into()));
    }
    let site = NameSegment::parse(&identity.site).map_err(|e| invalid("identity-file", e))?;
    if cli.site.is_some_and(|s| *s != site) {
        return Err(invalid("site", format!("the identity file belongs to site '{site}'")));
    }
    let namespace = NameSegment::parse(&identity.namespace).map_err(|e| invalid("identity-file", e))?;
    let site_key = SitePublicKey::from_hex(&identity.site_key)
        .ok_or_else(|| invalid("identity-file", "its site key is not 64 hex digits".into()))?;
    if cli.site_key.is_some_and(|k| k != site_key) {
        return Err(invalid("site-key", "differs from the key the site gave at enrolment".into()));
    }
    let user = NewUser { name: identity.broker_user.clone(), password: Secret::new(identity.broker_password) };
    let url = url_with_user(cli.amqp_url, &user).map_err(|e| invalid("amqp", format!("the broker URL is {e}")))?;
    let identity =
        AgentIdentity { agent_id: identity.agent_id, broker_user: identity.broker_user, queue: identity.queue };
    Ok(EnrolledConnection { amqp_url: Secret::new(url), namespace, site, site_key, identity })
}

/// Reads an identity file.
pub fn read(path: &Path) -> anyhow::Result<Enrolment> {
    let text = std::fs::read_to_string(path).with_context(|| format!("Failed to read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not an identity file of this agent", path.display()))
}

/// Writes a new identity file, mode 0600 (never over an existing one).
pub fn write(path: &Path, identity: &Enrolment) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("Failed to create the identity file {}", path.display()))?;
    let text = serde_json::to_string_pretty(identity).expect("an identity always serializes");
    file.write_all(text.as_bytes()).with_context(|| format!("Failed to write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Enrolment {
        Enrolment {
            agent_id: "ag-1".into(),
            site: "paris".into(),
            namespace: "rampart".into(),
            broker_user: "rampart.agent.paris.ag-1".into(),
            broker_password: "pw".into(),
            queue: "rampart.agents.paris.ag-1".into(),
            site_key: "00".repeat(32),
            endpoints: vec!["sim1-00001".into()],
        }
    }

    #[tokio::test]
    async fn the_identity_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("rampart-identity-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("identity.json");
        write(&path, &identity()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(write(&path, &identity()).is_err(), "never over an existing identity");
        let flags = IdentityFlags { identity_file: Some(path.clone()), ..Default::default() };
        let read = resolve(&flags, "sim1", &["sim1-00001".into()]).await.unwrap().unwrap();
        assert_eq!(read.agent_id, "ag-1");
        let err = resolve(&flags, "sim1", &["sim1-00001".into(), "sim1-00002".into()]).await.unwrap_err();
        assert!(err.to_string().contains("another fleet"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_identity_gives_the_site_and_the_broker_user() {
        use clap::Parser;

        use crate::settings::Cli;
        let cli = |args: &[&str]| {
            let mut argv = vec!["rampart-agent", "--endpoints", "1", "--identity-file", "id.json"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).unwrap()
        };
        let settings = cli(&["--name", "sim1"]).into_settings_with(Some(identity())).unwrap();
        assert_eq!((settings.site.as_str(), settings.namespace.as_str()), ("paris", "rampart"));
        assert_eq!(settings.amqp_url.expose(), "amqp://rampart.agent.paris.ag-1:pw@127.0.0.1:5672/%2f");
        assert_eq!(settings.identity.unwrap().queue, "rampart.agents.paris.ag-1");
        let err = cli(&["--site", "lyon"]).into_settings_with(Some(identity())).unwrap_err().to_string();
        assert!(err.contains("belongs to site 'paris'"), "{err}");
        let err = cli(&["--amqp-credentials-file", "x"]).into_settings_with(Some(identity())).unwrap_err();
        assert!(err.to_string().contains("--amqp-credentials-file"), "{err}");
    }

    #[tokio::test]
    async fn enrolment_needs_a_pinned_certificate() {
        let request = EnrolmentRequest { token: String::new(), name: "sim1".into(), endpoints: vec![] };
        let err = enrol("https://127.0.0.1:1", "rre_abc", request.clone()).await.unwrap_err();
        assert!(err.to_string().contains("no certificate fingerprint"), "{err}");
        let fingerprint = rampart_shared::tls::Fingerprint::of(b"x");
        let err = enrol("http://127.0.0.1:1", &format!("rre_abc.{fingerprint}"), request).await.unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
        let flags = IdentityFlags { enrolment_token: Some("rre_x".into()), ..Default::default() };
        assert!(resolve(&flags, "sim1", &[]).await.unwrap_err().to_string().contains("--identity-file"));
    }
}
