//! The broker as a test sees it, apart from any server: a namespace's
//! queues and exchanges removed after a test, messages published straight
//! to the broker (forged, late or duplicate ones), and a queue's depth.

use std::sync::Arc;

use rampart_shared::{
    amqp::{
        close_channel,
        publisher::{Outgoing, Publisher},
        Broker,
    },
    topology::{self, Topology},
    Secret,
};

use crate::AMQP_URL;

/// Deletes the queues (with their parking queues) and exchanges of a namespace.
pub async fn teardown_namespace(topo: &Topology, queues: &[String]) {
    teardown_namespace_at(AMQP_URL, topo, queues).await;
}

/// [`teardown_namespace`] on the broker at `amqp_url`.
pub async fn teardown_namespace_at(amqp_url: &str, topo: &Topology, queues: &[String]) {
    delete_queues_at(amqp_url, queues).await;
    let broker = Broker::new(Secret::new(amqp_url.to_owned()), "rampart-tests teardown");
    if let Ok(channel) = broker.channel().await {
        let _ = topology::delete_exchanges(&channel, topo).await;
        let _ = close_channel(&channel, "done").await;
    }
    broker.close().await;
}

/// Deletes queues with their parking queues.
pub async fn delete_queues(queues: &[String]) {
    delete_queues_at(AMQP_URL, queues).await;
}

/// [`delete_queues`] on the broker at `amqp_url`.
pub async fn delete_queues_at(amqp_url: &str, queues: &[String]) {
    let broker = Broker::new(Secret::new(amqp_url.to_owned()), "rampart-tests teardown");
    if let Ok(channel) = broker.channel().await {
        for q in queues {
            let _ = topology::delete_queue(&channel, q).await;
        }
        let _ = close_channel(&channel, "done").await;
    }
    broker.close().await;
}

/// Publishes straight to the broker, bypassing any server (forged, late or
/// duplicate messages); each must be routed and confirmed.
pub async fn inject(messages: Vec<Outgoing>) {
    inject_at(AMQP_URL, messages).await;
}

/// [`inject`] through the broker at `amqp_url`.
pub async fn inject_at(amqp_url: &str, messages: Vec<Outgoing>) {
    let broker = Arc::new(Broker::new(Secret::new(amqp_url.to_owned()), "rampart-tests injector"));
    let publisher = Publisher::new(broker.clone());
    for m in messages {
        publisher.publish(m).await.expect("injected message is routed");
    }
    publisher.close().await;
    broker.close().await;
}

/// True when `queue` exists on the broker.
pub async fn queue_exists(queue: &str) -> bool {
    queue_depth(queue).await.is_some()
}

/// The messages ready in `queue` on the machine's broker; `None` when it
/// does not exist.
pub async fn queue_depth(queue: &str) -> Option<u32> {
    let broker = Broker::new(Secret::new(AMQP_URL.to_owned()), "rampart-tests probe");
    let depth = match broker.channel().await {
        Ok(channel) => {
            let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
            let declared = channel.queue_declare(queue.into(), passive, Default::default()).await;
            // A passive declare of a missing queue closes the channel itself.
            if declared.is_ok() {
                let _ = close_channel(&channel, "probed").await;
            }
            declared.ok().map(|q| q.message_count())
        }
        Err(e) => panic!("broker unreachable: {e}"),
    };
    broker.close().await;
    depth
}
