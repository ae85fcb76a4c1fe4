//! Dynamic shovels: links between two brokers kept by the broker itself.
//!
//! A dynamic shovel is a runtime parameter (`PUT /api/parameters/shovel/
//! {vhost}/{name}`): the broker stores it durably, starts it, and restarts
//! it after a connection loss or a restart of either node. Its status
//! (`GET /api/shovels/{vhost}`) is `starting`, `running` or `terminated`
//! with the broker's reason; RabbitMQ 3.10 gives no message counters there,
//! so the messages waiting on a link are read as the depth of its source
//! queue.
//!
//! The URIs of a shovel carry the remote user's password: they are held as
//! [`Secret`]s and shown without their user information
//! ([`without_credentials`]).

use serde::{Deserialize, Serialize};

use super::{client::segment, AdminError, ManagementClient, Result};
use crate::Secret;

/// What a shovel moves and between which brokers.
#[derive(Clone, PartialEq, Eq)]
pub struct ShovelDefinition {
    pub name: String,
    /// Where messages are consumed (with credentials, or `amqp://` for
    /// the node running the shovel).
    pub src_uri: Secret<String>,
    pub src_queue: String,
    pub dest_uri: Secret<String>,
    /// The exchange messages are published to, each with the routing key
    /// it arrived with (`dest-exchange-key` unset).
    pub dest_exchange: String,
    /// Messages in flight on the link (unconfirmed by the destination).
    pub prefetch: u32,
    /// Seconds between reconnection attempts after a failure.
    pub reconnect_delay: u32,
}

impl std::fmt::Debug for ShovelDefinition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShovelDefinition")
            .field("name", &self.name)
            .field("src_uri", &without_credentials(self.src_uri.expose()))
            .field("src_queue", &self.src_queue)
            .field("dest_uri", &without_credentials(self.dest_uri.expose()))
            .field("dest_exchange", &self.dest_exchange)
            .finish_non_exhaustive()
    }
}

/// The body of `PUT /api/parameters/shovel/...`.
#[derive(Serialize)]
struct ParameterBody<'a> {
    value: ShovelValue<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ShovelValue<'a> {
    src_protocol: &'static str,
    src_uri: &'a str,
    src_queue: &'a str,
    dest_protocol: &'static str,
    dest_uri: &'a str,
    dest_exchange: &'a str,
    /// A message leaves the source only once the destination confirmed it.
    ack_mode: &'static str,
    /// The shovel never deletes itself.
    src_delete_after: &'static str,
    /// No `x-shovelled` header: the message's headers arrive as they left.
    dest_add_forward_headers: bool,
    prefetch_count: u32,
    reconnect_delay: u32,
}

impl ShovelDefinition {
    /// The URI of the node running the shovel itself, on `vhost` (a direct
    /// connection: no host, no password).
    pub fn local_uri(vhost: &str) -> String {
        match vhost {
            "/" => "amqp://".to_owned(),
            other => format!("amqp:///{}", segment(other)),
        }
    }

    fn body(&self) -> ParameterBody<'_> {
        ParameterBody {
            value: ShovelValue {
                src_protocol: "amqp091",
                src_uri: self.src_uri.expose(),
                src_queue: &self.src_queue,
                dest_protocol: "amqp091",
                dest_uri: self.dest_uri.expose(),
                dest_exchange: &self.dest_exchange,
                ack_mode: "on-confirm",
                src_delete_after: "never",
                dest_add_forward_headers: false,
                prefetch_count: self.prefetch,
                reconnect_delay: self.reconnect_delay,
            },
        }
    }
}

/// A shovel's state as the broker reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShovelStatus {
    pub name: String,
    /// `starting`, `running` or `terminated`.
    pub state: String,
    /// Why a terminated shovel stopped, as the broker says it.
    #[serde(default, deserialize_with = "reason")]
    pub reason: Option<String>,
}

impl ShovelStatus {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// The broker's reason is a string or an Erlang term rendered as JSON.
fn reason<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(value.map(|v| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }))
}

impl ManagementClient {
    /// Creates or replaces the shovel `definition.name` on `vhost`.
    pub async fn put_shovel(&self, vhost: &str, definition: &ShovelDefinition) -> Result<()> {
        let path = format!("/api/parameters/shovel/{}/{}", segment(vhost), segment(&definition.name));
        self.put("create shovel", &path, &definition.body()).await
    }

    /// Deletes the shovel `name`; one already gone is not an error.
    pub async fn delete_shovel(&self, vhost: &str, name: &str) -> Result<()> {
        let path = format!("/api/parameters/shovel/{}/{}", segment(vhost), segment(name));
        match self.delete("delete shovel", &path).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// The names of the shovels defined on `vhost` (running or not).
    pub async fn shovel_names(&self, vhost: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Parameter {
            name: String,
        }
        let path = format!("/api/parameters/shovel/{}", segment(vhost));
        let listed: Vec<Parameter> = match self.get("list shovels", &path).await {
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            other => other?,
        };
        Ok(listed.into_iter().map(|p| p.name).collect())
    }

    /// The status of every shovel the broker runs on `vhost`.
    pub async fn shovel_statuses(&self, vhost: &str) -> Result<Vec<ShovelStatus>> {
        let path = format!("/api/shovels/{}", segment(vhost));
        match self.get("shovel status", &path).await {
            Err(AdminError::NotFound { .. }) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Messages in `queue` (ready and unacknowledged) and how many its
    /// consumers have acknowledged so far (as of the broker's last
    /// statistics; `None` before the first), `None` when it does not exist.
    pub async fn queue_flow(&self, vhost: &str, queue: &str) -> Result<Option<QueueFlow>> {
        #[derive(Deserialize)]
        struct Stats {
            #[serde(default)]
            ack: Option<u64>,
        }
        #[derive(Deserialize)]
        struct Queue {
            #[serde(default)]
            messages: Option<u64>,
            #[serde(default)]
            message_stats: Option<Stats>,
        }
        let path = format!("/api/queues/{}/{}", segment(vhost), segment(queue));
        match self.get::<Queue>("queue depth", &path).await {
            Ok(queue) => Ok(Some(QueueFlow {
                messages: queue.messages.unwrap_or(0),
                acknowledged: queue.message_stats.and_then(|s| s.ack),
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Messages in `queue` (ready and unacknowledged), `None` when it does not exist.
    pub async fn queue_depth(&self, vhost: &str, queue: &str) -> Result<Option<u64>> {
        #[derive(Deserialize)]
        struct Queue {
            #[serde(default)]
            messages: Option<u64>,
        }
        let path = format!("/api/queues/{}/{}", segment(vhost), segment(queue));
        match self.get::<Queue>("queue depth", &path).await {
            Ok(queue) => Ok(Some(queue.messages.unwrap_or(0))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// What a queue holds and how much has left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFlow {
    /// Ready and unacknowledged.
    pub messages: u64,
    /// Acknowledged by its consumers since the queue was declared.
    pub acknowledged: Option<u64>,
}

/// `uri` without its user and password, for logs and views.
pub fn without_credentials(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => uri.to_owned(),
            }
        }
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> ShovelDefinition {
        ShovelDefinition {
            name: "rt.link.paris.commands".into(),
            src_uri: Secret::new("amqps://rt.link.paris:s3cret@hq:5671/%2f?verify=verify_peer".into()),
            src_queue: "rt.slave.paris.commands".into(),
            dest_uri: Secret::new("amqp://".into()),
            dest_exchange: "rt.commands".into(),
            prefetch: 100,
            reconnect_delay: 5,
        }
    }

    #[test]
    fn the_body_confirms_and_keeps_headers() {
        let body = serde_json::to_value(definition().body()).unwrap();
        let value = &body["value"];
        assert_eq!(value["ack-mode"], "on-confirm");
        assert_eq!(value["dest-add-forward-headers"], false);
        assert_eq!(value["src-delete-after"], "never");
        assert_eq!(value["src-queue"], "rt.slave.paris.commands");
        assert_eq!(value["dest-exchange"], "rt.commands");
        assert!(value.get("dest-exchange-key").is_none(), "the routing key travels unchanged");
        assert_eq!(ShovelDefinition::local_uri("/"), "amqp://");
        assert_eq!(ShovelDefinition::local_uri("site a"), "amqp:///site%20a");
    }

    #[test]
    fn no_password_in_debug_or_views() {
        let text = format!("{:?}", definition());
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("amqps://hq:5671/%2f"), "{text}");
        assert_eq!(without_credentials("amqp://u:p@h:1/v"), "amqp://h:1/v");
        assert_eq!(without_credentials("amqp://h:1/v@x"), "amqp://h:1/v@x");
        assert_eq!(without_credentials("amqp://"), "amqp://");
    }

    #[test]
    fn statuses_read_terms_and_strings() {
        let text = r#"[{"name":"a","state":"running"},{"name":"b","state":"terminated","reason":"{auth_failure,\"x\"}"},
                      {"name":"c","state":"terminated","reason":{"e":1}}]"#;
        let statuses: Vec<ShovelStatus> = serde_json::from_str(text).unwrap();
        assert!(statuses[0].is_running() && statuses[0].reason.is_none());
        assert_eq!(statuses[1].reason.as_deref(), Some("{auth_failure,\"x\"}"));
        assert_eq!(statuses[2].reason.as_deref(), Some(r#"{"e":1}"#));
    }
}
