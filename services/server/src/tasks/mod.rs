//! Tasks (scan, update): started by operators, run by endpoints.
//!
//! * [`endpoints`]: starting and cancelling a task's work on endpoints.
//! * [`progress`]: how far a task is, as the API shows it.
//! * [`site`]: tasks on a stand-alone or slave, run on its endpoints; the
//!   master's tasks are read-only there.
//! * [`master`]: tasks a master sends to its slaves.

pub mod endpoints;
pub mod master;
pub mod progress;
pub mod site;

use rampart_shared::messages::TaskKind;
use serde::Deserialize;
use serde_json::Value;

pub use endpoints::{cancel_open, dispatch, Cancelled};
pub use progress::{TaskProgress, TaskState};

/// Body of `POST /api/tasks`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    name: Option<String>,
    kind: String,
    /// Endpoints here ([`site::TaskTarget`]), or slaves on a master.
    target: Option<Value>,
}

/// A task kind this server does not know.
#[derive(Debug, thiserror::Error)]
#[error("kind '{0}' is not one of quick_scan, full_scan, update")]
pub struct UnknownKind(String);

impl CreateTask {
    /// The kind of task asked for.
    fn kind(&self) -> Result<TaskKind, UnknownKind> {
        TaskKind::parse(&self.kind).ok_or_else(|| UnknownKind(self.kind.clone()))
    }

    /// The name given, or the kind and the time.
    fn name_or_default(&mut self, kind: TaskKind) -> String {
        self.name.take().unwrap_or_else(|| {
            format!("{} {}", kind.as_str().replace('_', " "), chrono::Utc::now().format("%Y-%m-%d %H:%M"))
        })
    }
}
