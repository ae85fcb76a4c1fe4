//! A user's open connections, and closing them (a revoked or deleted user
//! keeps the connections it already has until they are closed).

use serde::Deserialize;

use super::{client::segment, ManagementClient, Result};

/// An open AMQP connection as the broker lists it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct BrokerConnection {
    /// The broker's name of the connection (`127.0.0.1:50000 -> 127.0.0.1:5672`).
    pub name: String,
    pub user: String,
    #[serde(default)]
    pub vhost: String,
    /// The name the client gave its connection (`connection_name`), if any.
    #[serde(default, rename = "client_properties")]
    client: ClientProperties,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
struct ClientProperties {
    connection_name: Option<String>,
}

impl BrokerConnection {
    /// The name the client gave its connection, e.g. `rampart-agent paris`.
    pub fn client_name(&self) -> Option<&str> {
        self.client.connection_name.as_deref()
    }
}

impl ManagementClient {
    /// The open connections of `user`. The broker's list lags new
    /// connections by its statistics interval (5 s by default).
    pub async fn connections_of(&self, user: &str) -> Result<Vec<BrokerConnection>> {
        let all: Vec<BrokerConnection> = self.get("list connections", "/api/connections").await?;
        Ok(all.into_iter().filter(|c| c.user == user).collect())
    }

    /// Closes one connection, giving the client `reason`. A connection
    /// already gone is not an error.
    pub async fn close_connection(&self, name: &str, reason: &str) -> Result<()> {
        let path = format!("/api/connections/{}", segment(name));
        match self.delete_with_reason("close connection", &path, Some(reason)).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Closes every open connection of `user`; returns how many were closed.
    pub async fn close_connections_of(&self, user: &str, reason: &str) -> Result<usize> {
        let connections = self.connections_of(user).await?;
        for connection in &connections {
            self.close_connection(&connection.name, reason).await?;
        }
        Ok(connections.len())
    }
}
