//! What a user may do on a vhost: `configure`/`write`/`read` regexes over
//! exchange and queue names, and topic permissions (regexes over routing
//! keys, per topic exchange).

use serde::{Deserialize, Serialize};

use super::{client::segment, ManagementClient, Result};

/// A user's permissions on one vhost. An empty regex grants nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Declare and delete exchanges and queues whose names match.
    pub configure: String,
    /// Publish to exchanges, and bind queues, whose names match.
    pub write: String,
    /// Consume from queues, and bind from exchanges, whose names match.
    pub read: String,
}

/// A user's routing-key permissions on one topic exchange. On an exchange
/// with no topic permission, every routing key is allowed: a user who may
/// write to a topic exchange needs one here to be narrowed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPermissions {
    pub exchange: String,
    /// Routing keys the user may publish with.
    pub write: String,
    /// Binding keys the user may bind a queue with.
    pub read: String,
}

impl ManagementClient {
    /// Sets (replaces) `user`'s permissions on `vhost`.
    pub async fn set_permissions(&self, vhost: &str, user: &str, permissions: &Permissions) -> Result<()> {
        self.put("set permissions", &format!("/api/permissions/{}/{}", segment(vhost), segment(user)), permissions)
            .await
    }

    /// `user`'s permissions on `vhost`.
    pub async fn permissions(&self, vhost: &str, user: &str) -> Result<Permissions> {
        self.get("read permissions", &format!("/api/permissions/{}/{}", segment(vhost), segment(user))).await
    }

    /// Sets (replaces) `user`'s topic permissions on one exchange of `vhost`.
    pub async fn set_topic_permissions(&self, vhost: &str, user: &str, topic: &TopicPermissions) -> Result<()> {
        self.put(
            "set topic permissions",
            &format!("/api/topic-permissions/{}/{}", segment(vhost), segment(user)),
            topic,
        )
        .await
    }

    /// `user`'s topic permissions on `vhost`, one per exchange.
    pub async fn topic_permissions(&self, vhost: &str, user: &str) -> Result<Vec<TopicPermissions>> {
        let path = format!("/api/topic-permissions/{}/{}", segment(vhost), segment(user));
        match self.get("read topic permissions", &path).await {
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            other => other,
        }
    }

    /// Removes every topic permission of `user` on `vhost`.
    pub async fn clear_topic_permissions(&self, vhost: &str, user: &str) -> Result<()> {
        let path = format!("/api/topic-permissions/{}/{}", segment(vhost), segment(user));
        match self.delete("clear topic permissions", &path).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}
