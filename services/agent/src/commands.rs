//! Commands from the site server, read from this process's queue by the
//! shared consumer loop.
//!
//! [`CommandHandler::decode`] checks the envelope, decodes the command by
//! kind and reads the addressed endpoint from the routing key (tasks,
//! policies and cancellations name no endpoint in their body); last, it
//! checks that the site sealed the command, that it is fresh and that it
//! was not accepted before ([`CommandTrust`]). `apply` does
//! no work itself: it hands the batch to the fleet loop, which owns every
//! computer's state, and returns. Commands for computers this process does
//! not simulate are dropped there: several fleet processes may share a site,
//! and each of them receives every command of that site.

use chrono::Utc;
use lapin::message::Delivery;
use rampart_shared::{
    amqp::consumer::{ApplyError, BatchHandler},
    envelope::{header_str, Rejection, SIGNATURE_HEADER},
    messages::EndpointCommand,
    topology::{NameSegment, Topology},
    Envelope,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::trust::CommandTrust;

/// A command and the endpoint it is addressed to.
#[derive(Clone, Debug, PartialEq)]
pub struct RoutedCommand {
    /// The endpoint (or, for a deployment, the discovered computer) named
    /// by the routing key.
    pub endpoint_id: String,
    pub command: EndpointCommand,
    /// The envelope's id, for logs.
    pub message_id: Uuid,
}

/// Hands decoded commands to the fleet loop.
#[derive(Debug)]
pub struct CommandHandler {
    /// `site.<instance>.endpoint.`: what every command's routing key starts with.
    key_prefix: String,
    /// Bounded, so a stalled fleet loop holds the consumer back instead of
    /// piling up commands in memory.
    fleet: mpsc::Sender<Vec<RoutedCommand>>,
    /// The site's seal, expiry and replay checks.
    trust: CommandTrust,
}

impl CommandHandler {
    pub fn new(site: &NameSegment, fleet: mpsc::Sender<Vec<RoutedCommand>>, trust: CommandTrust) -> Self {
        Self { key_prefix: Topology::endpoint_key(site.as_str(), ""), fleet, trust }
    }
}

impl BatchHandler for CommandHandler {
    type Message = RoutedCommand;

    fn decode(&self, delivery: &Delivery) -> Result<RoutedCommand, Rejection> {
        let amqp_type = delivery.properties.kind().as_ref().map(|k| k.as_str());
        let envelope = Envelope::decode(&delivery.data, amqp_type)?;
        let command = EndpointCommand::from_envelope(&envelope)?;
        let endpoint_id = addressee(&self.key_prefix, delivery.routing_key.as_str()).ok_or_else(|| {
            Rejection::Malformed(format!(
                "routing key '{}' does not name an endpoint of this site",
                delivery.routing_key
            ))
        })?;
        let seal = header_str(&delivery.properties, SIGNATURE_HEADER);
        self.trust.check(envelope.id, delivery.routing_key.as_str(), &delivery.data, seal, Utc::now())?;
        Ok(RoutedCommand { endpoint_id: endpoint_id.to_owned(), command, message_id: envelope.id })
    }

    async fn apply(&self, batch: &[RoutedCommand]) -> Result<(), ApplyError> {
        self.fleet.send(batch.to_vec()).await.map_err(|_| ApplyError::Transient("the fleet loop has stopped".into()))
    }
}

/// The endpoint id at the end of `routing_key`, if the key has the shape
/// `<prefix><one segment>`.
fn addressee<'a>(prefix: &str, routing_key: &'a str) -> Option<&'a str> {
    routing_key.strip_prefix(prefix).filter(|id| NameSegment::parse(id).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, LazyLock};

    use rampart_shared::{
        messages::{kind, CancelTask, EndpointTask, TaskKind},
        site_key::{SealError, SiteKey},
    };

    use crate::trust::CommandRefusals;

    static SITE: LazyLock<SiteKey> = LazyLock::new(SiteKey::generate);

    fn handler() -> (CommandHandler, mpsc::Receiver<Vec<RoutedCommand>>) {
        let (tx, rx) = mpsc::channel(4);
        let trust = CommandTrust::new(Some(SITE.public()), Arc::new(CommandRefusals::default()));
        (CommandHandler::new(&NameSegment::parse("paris").unwrap(), tx, trust), rx)
    }

    /// `envelope` published with `routing_key`, sealed by [`SITE`].
    fn delivery(routing_key: &str, envelope: &Envelope) -> Delivery {
        let payload = envelope.to_bytes();
        let seal = SITE.seal_now(routing_key, &payload);
        let mut d = Delivery::mock(1, "rampart.agents".into(), routing_key.into(), false, payload);
        d.properties = envelope.properties(Some(seal));
        d
    }

    #[test]
    fn reads_the_endpoint_from_the_routing_key() {
        let (handler, _rx) = handler();
        let command = EndpointCommand::Task(EndpointTask { task_id: Uuid::new_v4(), kind: TaskKind::QuickScan });
        let envelope = command.to_envelope("paris", 1);
        let key = Topology::endpoint_key("paris", "sim1-00007");
        let routed = handler.decode(&delivery(&key, &envelope)).unwrap();
        assert_eq!(routed, RoutedCommand { endpoint_id: "sim1-00007".into(), command, message_id: envelope.id });
    }

    #[test]
    fn refuses_unsealed_and_replayed_commands() {
        let (handler, _rx) = handler();
        let key = Topology::endpoint_key("paris", "sim1-00007");
        let envelope = EndpointCommand::Cancel(CancelTask { task_id: Uuid::new_v4() }).to_envelope("paris", 1);
        let mut unsigned = delivery(&key, &envelope);
        unsigned.properties = envelope.properties(None);
        assert_eq!(handler.decode(&unsigned).unwrap_err(), Rejection::Seal(SealError::Unsigned));
        let sealed = delivery(&key, &envelope);
        assert!(handler.decode(&sealed).is_ok());
        assert_eq!(handler.decode(&sealed).unwrap_err(), Rejection::Replayed(envelope.id));
    }

    #[test]
    fn refuses_what_is_not_a_command_for_this_site() {
        let (handler, _rx) = handler();
        let cancel = EndpointCommand::Cancel(CancelTask { task_id: Uuid::new_v4() }).to_envelope("paris", 1);
        let elsewhere = Topology::endpoint_key("lyon", "sim1-00007");
        assert!(matches!(handler.decode(&delivery(&elsewhere, &cancel)), Err(Rejection::Malformed(_))));
        let key = Topology::endpoint_key("paris", "sim1-00007");
        let heartbeat = Envelope::new(kind::HEARTBEAT, "paris", 1, &serde_json::json!({}));
        assert!(matches!(handler.decode(&delivery(&key, &heartbeat)), Err(Rejection::UnknownKind(_))));
        assert_eq!(addressee("site.paris.endpoint.", "site.paris.endpoint.a.b"), None);
        assert_eq!(addressee("site.paris.endpoint.", "site.paris.endpoint."), None);
    }

    #[tokio::test]
    async fn apply_hands_the_batch_to_the_fleet() {
        let (handler, mut rx) = handler();
        let command = EndpointCommand::Cancel(CancelTask { task_id: Uuid::new_v4() });
        let routed = RoutedCommand { endpoint_id: "sim1-00001".into(), command, message_id: Uuid::new_v4() };
        handler.apply(std::slice::from_ref(&routed)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), vec![routed.clone()]);
        drop(rx);
        assert!(matches!(handler.apply(&[routed]).await, Err(ApplyError::Transient(_))));
    }
}
