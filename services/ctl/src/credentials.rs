//! The personal tokens `rampartctl login` keeps: one file per server under
//! `tokens/` in the CLI's configuration directory (where `known_servers`
//! lives, see [`trust`](crate::trust)), readable by its owner only (0600, in
//! a 0700 directory).
//!
//! A command sends the stored token of its server when no `--api-token` or
//! `RAMPART_TOKEN` is given; `rampartctl logout` revokes it and removes the
//! file.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use reqwest::Url;

use rampart_shared::Secret;

use crate::trust;

/// The directory of stored tokens in the configuration directory.
const TOKENS: &str = "tokens";

/// The tokens stored for the servers this operator signed in to.
#[derive(Debug, Clone)]
pub struct StoredTokens {
    pub dir: PathBuf,
}

impl StoredTokens {
    /// The directory in the CLI's configuration directory.
    pub fn locate() -> anyhow::Result<Self> {
        Ok(Self { dir: trust::config_dir("signed-in tokens")?.join(TOKENS) })
    }

    /// The file holding the token for `server`.
    pub fn path(&self, server: &Url) -> PathBuf {
        self.dir.join(file_name(server))
    }

    /// The token stored for `server`, if any.
    pub fn load(&self, server: &Url) -> anyhow::Result<Option<Secret<String>>> {
        let path = self.path(server);
        match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(text) => Ok(Some(Secret::new(text.trim().to_owned()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => anyhow::bail!("cannot read the stored token {}: {e}", path.display()),
        }
    }

    /// Stores `token` for `server`, replacing any earlier one; the file path.
    pub fn save(&self, server: &Url, token: &str) -> anyhow::Result<PathBuf> {
        create_private_dir(&self.dir)?;
        let path = self.path(server);
        let write_error = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", path.display());
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(write_error)?;
        // A file that existed keeps its mode through open(): set it again.
        restrict(&path, 0o600).map_err(write_error)?;
        writeln!(file, "{token}").map_err(write_error)?;
        Ok(path)
    }

    /// Removes the token stored for `server`; whether there was one.
    pub fn forget(&self, server: &Url) -> anyhow::Result<bool> {
        let path = self.path(server);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => anyhow::bail!("cannot remove the stored token {}: {e}", path.display()),
        }
    }
}

/// `HOST_PORT` (and the path of a server behind a proxy), with every
/// character but letters, digits, `.` and `-` as `_`: never a path separator.
fn file_name(server: &Url) -> String {
    let path = server.path().trim_matches('/');
    let key = if path.is_empty() { trust::server_key(server) } else { format!("{}/{path}", trust::server_key(server)) };
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_private_file_per_server() {
        let dir = std::env::temp_dir().join(format!("rampartctl-tokens-{}", uuid::Uuid::new_v4().simple()));
        let store = StoredTokens { dir: dir.join(TOKENS) };
        let (hq, paris): (Url, Url) = ("https://hq.example:7073".parse().unwrap(), "http://10.0.0.5".parse().unwrap());
        assert!(store.load(&hq).unwrap().is_none());
        let path = store.save(&hq, "rpt_hq").unwrap();
        store.save(&paris, "rpt_paris").unwrap();
        assert_eq!(store.load(&hq).unwrap().unwrap().expose(), "rpt_hq");
        assert_eq!(store.load(&paris).unwrap().unwrap().expose(), "rpt_paris");
        store.save(&hq, "rpt_again").unwrap();
        assert_eq!(store.load(&hq).unwrap().unwrap().expose(), "rpt_again");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&store.dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
        assert!(store.forget(&hq).unwrap());
        assert!(!store.forget(&hq).unwrap());
        assert!(store.load(&hq).unwrap().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn file_names_never_leave_the_directory() {
        let name = |url: &str| file_name(&url.parse().unwrap());
        assert_eq!(name("https://hq.example:7073/"), "hq.example_7073");
        assert_eq!(name("http://10.0.0.5"), "10.0.0.5_80");
        assert_eq!(name("https://gw.example/rampart/../x/"), "gw.example_443_x");
        assert_eq!(name("https://[::1]:7073"), "___1__7073");
    }
}
