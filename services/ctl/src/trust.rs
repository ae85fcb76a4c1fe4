//! How `rampartctl` trusts an `https://` server: a CA file (`--ca-file`,
//! `RAMPART_CA_FILE`), or the server's certificate pinned at first contact.
//!
//! Pins live in `known_servers` in the CLI's configuration directory
//! (`$RAMPARTCTL_CONFIG_DIR`, else `$XDG_CONFIG_HOME/rampartctl`, else
//! `~/.config/rampartctl`), one `HOST:PORT FINGERPRINT` per line. The first
//! contact asks only `/health` (no token is sent) and pins what it saw; from
//! then on any other certificate is refused, naming both fingerprints.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use rampart_shared::tls::{provider, Fingerprint};
use reqwest::Url;
use rustls::{
    pki_types::{pem::PemObject, CertificateDer},
    ClientConfig, RootCertStore,
};

/// Environment variable naming a CA file to verify servers with.
pub const CA_FILE_ENV: &str = "RAMPART_CA_FILE";
/// Environment variable naming the CLI's configuration directory.
pub const CONFIG_DIR_ENV: &str = "RAMPARTCTL_CONFIG_DIR";
/// The file of pinned certificates in the configuration directory.
const KNOWN_SERVERS: &str = "known_servers";

/// The pinned certificates of the servers this operator has talked to.
#[derive(Debug, Clone)]
pub struct KnownServers {
    pub path: PathBuf,
}

impl KnownServers {
    /// The file in the CLI's configuration directory.
    pub fn locate() -> anyhow::Result<Self> {
        Ok(Self { path: config_dir("pinned certificates")?.join(KNOWN_SERVERS) })
    }

    /// The fingerprint pinned for `server` (`HOST:PORT`).
    pub fn pinned(&self, server: &str) -> anyhow::Result<Option<Fingerprint>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => anyhow::bail!("cannot read {}: {e}", self.path.display()),
        };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            if let Some((name, fingerprint)) = line.split_once(char::is_whitespace) {
                if name == server {
                    let fingerprint = Fingerprint::parse(fingerprint).ok_or_else(|| {
                        anyhow::anyhow!("{}: the line for {server} holds no fingerprint", self.path.display())
                    })?;
                    return Ok(Some(fingerprint));
                }
            }
        }
        Ok(None)
    }

    /// Adds the pin of `server`.
    pub fn pin(&self, server: &str, fingerprint: Fingerprint) -> anyhow::Result<()> {
        use std::io::Write;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", self.path.display()))?;
        writeln!(file, "{server} {fingerprint}")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", self.path.display()))
    }
}

/// The CLI's configuration directory (`$RAMPARTCTL_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME/rampartctl`, else `~/.config/rampartctl`); `what` names
/// what it is needed for, in the error when there is none.
pub fn config_dir(what: &str) -> anyhow::Result<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    env(CONFIG_DIR_ENV)
        .or_else(|| env("XDG_CONFIG_HOME").map(|d| d.join("rampartctl")))
        .or_else(|| env("HOME").map(|d| d.join(".config").join("rampartctl")))
        .ok_or_else(|| anyhow::anyhow!("no configuration directory for {what}: set {CONFIG_DIR_ENV} or HOME"))
}

/// `HOST:PORT` of an https URL, the key of its pin.
pub fn server_key(url: &Url) -> String {
    format!("{}:{}", url.host_str().unwrap_or_default(), url.port_or_known_default().unwrap_or(443))
}

/// A CA file's certificates as a client configuration (names and chains
/// verified as usual).
pub fn ca_config(path: &Path) -> anyhow::Result<ClientConfig> {
    let read_error = |e: &dyn fmt::Display| anyhow::anyhow!("cannot read the CA file {}: {e}", path.display());
    let pem = std::fs::read(path).map_err(|e| read_error(&e))?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        roots.add(certificate.map_err(|e| read_error(&e))?).map_err(|e| read_error(&e))?;
    }
    anyhow::ensure!(!roots.is_empty(), "the CA file {} holds no PEM certificate", path.display());
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A pinned certificate that the server no longer presents.
#[derive(Debug)]
pub struct CertificateChanged {
    pub server: String,
    pub presented: Fingerprint,
    pub pinned: Fingerprint,
    pub store: PathBuf,
}

impl fmt::Display for CertificateChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the certificate of {server} changed: it presented SHA-256 {presented}, but {pinned} is pinned for it; \
             nothing was sent. Someone may be intercepting the connection. If the server's certificate was \
             legitimately replaced, compare the new fingerprint with the one its administrator sees (its /health \
             or its start-up log), then remove the line for {server} from {store} to pin the new one",
            server = self.server,
            presented = self.presented,
            pinned = self.pinned,
            store = self.store.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_stored_per_server_and_read_back() {
        let dir = std::env::temp_dir().join(format!("rampartctl-pins-{}", std::process::id()));
        let store = KnownServers { path: dir.join(KNOWN_SERVERS) };
        let (hq, paris) = (Fingerprint::of(b"hq"), Fingerprint::of(b"paris"));
        assert_eq!(store.pinned("hq:7073").unwrap(), None);
        store.pin("hq:7073", hq).unwrap();
        store.pin("paris:7073", paris).unwrap();
        assert_eq!(store.pinned("hq:7073").unwrap(), Some(hq));
        assert_eq!(store.pinned("paris:7073").unwrap(), Some(paris));
        assert_eq!(store.pinned("hq:7074").unwrap(), None);
        let _ = std::fs::remove_dir_all(dir);
        assert_eq!(server_key(&"https://hq.example/".parse().unwrap()), "hq.example:443");
    }
}
