//! Taps: a queue of the test's own bound beside a real consumer's, which
//! keeps a copy of every message the services publish there. The copies are
//! the real signed bytes, so a scenario can count how often one message was
//! delivered, or replay messages (duplicated, reordered, stale) straight
//! into the services' queues.

use std::time::Duration;

use lapin::{
    options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::FieldTable,
    BasicProperties,
};
use rampart_shared::{
    amqp::{publisher::Outgoing, Broker},
    envelope,
    replication::MAX_REPLICATION_BYTES,
    Envelope, Secret,
};

use crate::TestServer;

/// A tap queue on one exchange.
pub struct Tap {
    amqp_url: String,
    exchange: String,
    queue: String,
}

/// One message the tap saw.
#[derive(Clone, Debug)]
pub struct Captured {
    pub routing_key: String,
    pub envelope: Envelope,
    payload: Vec<u8>,
    properties: BasicProperties,
}

impl Captured {
    /// The bytes as they travelled (compressed when `content_encoding` says so).
    pub fn wire_len(&self) -> usize {
        self.payload.len()
    }

    /// The AMQP `content_encoding` it travelled with.
    pub fn content_encoding(&self) -> Option<&str> {
        envelope::content_encoding(&self.properties)
    }

    /// The same bytes and properties (signature included), to publish again
    /// where they went the first time.
    pub fn replay(&self, exchange: &str) -> Outgoing {
        Outgoing {
            exchange: exchange.to_owned(),
            routing_key: self.routing_key.clone(),
            payload: self.payload.clone(),
            properties: self.properties.clone(),
        }
    }
}

impl Tap {
    /// Binds a new tap on `exchange` with `binding`, on `server`'s broker.
    pub async fn bind(server: &TestServer, name: &str, exchange: String, binding: &str) -> Self {
        let queue = format!("{}.tap.{name}", server.options.namespace);
        let broker = Broker::new(Secret::new(server.options.amqp_url.clone()), "rampart-tests tap");
        let channel = broker.channel().await.expect("the tap reaches the broker");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .expect("the tap queue is declared");
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                binding.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("the tap queue is bound");
        broker.close().await;
        Self { amqp_url: server.options.amqp_url.clone(), exchange, queue }
    }

    pub fn exchange(&self) -> &str {
        &self.exchange
    }

    /// Everything the tap holds now, oldest first (the tap keeps tapping).
    pub async fn drain(&self) -> Vec<Captured> {
        let broker = Broker::new(Secret::new(self.amqp_url.clone()), "rampart-tests tap");
        let channel = broker.channel().await.expect("the tap reaches the broker");
        let mut captured = Vec::new();
        for _ in 0..100_000 {
            let get = channel.basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true });
            let Some(message) = tokio::time::timeout(Duration::from_secs(10), get)
                .await
                .expect("basic.get answers")
                .expect("the tap is readable")
            else {
                break;
            };
            let d = message.delivery;
            let encoding = envelope::content_encoding(&d.properties);
            let envelope = Envelope::decode_wire(&d.data, encoding, None, MAX_REPLICATION_BYTES)
                .expect("services publish envelopes");
            captured.push(Captured {
                routing_key: d.routing_key.to_string(),
                envelope,
                payload: d.data,
                properties: d.properties,
            });
        }
        broker.close().await;
        captured
    }

    /// Deletes the tap queue.
    pub async fn remove(self) {
        let broker = Broker::new(Secret::new(self.amqp_url.clone()), "rampart-tests tap");
        if let Ok(channel) = broker.channel().await {
            let _ = channel.queue_delete(self.queue.as_str().into(), QueueDeleteOptions::default()).await;
        }
        broker.close().await;
    }
}
