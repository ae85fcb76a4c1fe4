//! [`Session`]: what every command needs, the server and the output mode.

use reqwest::Url;
use serde_json::Value;

use rampart_shared::Secret;

use crate::client::{Answer, ApiClient};
use crate::output::{emit, reindent_json};

/// One run of `rampartctl` against one server.
#[derive(Debug)]
pub struct Session {
    pub client: ApiClient,
    /// `--json`: print the server's answers untouched, for scripts.
    json: bool,
}

impl Session {
    pub fn new(
        server: Url,
        token: Option<Secret<String>>,
        ca_file: Option<&std::path::Path>,
        json: bool,
    ) -> anyhow::Result<Self> {
        Ok(Self { client: ApiClient::with_ca_file(server, token, ca_file)?, json })
    }

    /// The token is the one `rampartctl login` stored (see [`ApiClient::with_stored_token`]).
    pub fn with_stored_token(self) -> Self {
        Self { client: self.client.with_stored_token(), ..self }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// Prints an answer: with `--json` the server's JSON as is, only
    /// indented (nothing for an empty 204 answer); else what `human` makes
    /// of the parsed value.
    pub fn print(&self, answer: &Answer, human: impl FnOnce(&Value) -> String) -> anyhow::Result<()> {
        if !self.json {
            emit(&human(&answer.value))
        } else if answer.body.trim().is_empty() {
            Ok(())
        } else {
            emit(&reindent_json(&answer.body))
        }
    }
}
