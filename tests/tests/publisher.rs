//! Confirmed publishing on the real broker: a batch is published all at
//! once, yet its messages arrive in the order given and each one's outcome
//! is its own (the outbox relay depends on both).

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use lapin::{
    options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::{AMQPValue, FieldTable},
    BasicProperties,
};
use rampart_shared::{
    amqp::{
        publisher::{Delivered, Outgoing, Publisher},
        Broker,
    },
    Secret,
};
use rampart_tests::{namespace, AMQP_URL};

/// Messages in one batch.
const COUNT: usize = 300;
/// The one message of the batch that no queue takes.
const UNROUTABLE: usize = 150;

fn message(routing_key: &str, n: usize) -> Outgoing {
    Outgoing {
        exchange: String::new(),
        routing_key: routing_key.to_owned(),
        payload: format!("message {n}").into_bytes(),
        properties: BasicProperties::default().with_delivery_mode(2).with_message_id(n.to_string().into()),
    }
}

#[tokio::test]
async fn a_batch_published_at_once_arrives_in_order_and_each_message_has_its_own_outcome() {
    let queue = format!("{}.publish_order", namespace());
    let broker = Arc::new(Broker::connect(Secret::new(AMQP_URL.into()), "test publisher").await.unwrap());
    let channel = broker.channel().await.unwrap();
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions { durable: true, ..Default::default() }, quorum)
        .await
        .unwrap();

    let publisher = Publisher::new(broker.clone());
    let batch: Vec<Outgoing> =
        (0..COUNT).map(|n| message(if n == UNROUTABLE { "no.such.queue" } else { &queue }, n)).collect();
    let outcomes = publisher.publish_each(batch).await.expect("the channel works");
    assert_eq!(outcomes.len(), COUNT);
    for (n, (sent, outcome)) in outcomes.iter().enumerate() {
        assert_eq!(
            sent.properties.message_id().as_ref().map(|id| id.to_string()),
            Some(n.to_string()),
            "outcomes are in the batch's order"
        );
        match (n, outcome) {
            (UNROUTABLE, Ok(Delivered::Unroutable)) => {}
            (UNROUTABLE, other) => panic!("the message to a missing queue came back as {other:?}"),
            (_, Ok(Delivered::Confirmed)) => {}
            (n, other) => panic!("message {n} came back as {other:?}"),
        }
    }
    // The other path (the whole batch fails on one refusal) keeps the order too.
    let second: Vec<Outgoing> = (COUNT..2 * COUNT).map(|n| message(&queue, n)).collect();
    let delivered = publisher.publish_batch(second).await.expect("every message is routed");
    assert!(delivered.iter().all(|(_, d)| matches!(d, Delivered::Confirmed)));

    let mut consumer = channel
        .basic_consume(queue.as_str().into(), "test".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let expected: Vec<String> = (0..2 * COUNT).filter(|n| *n != UNROUTABLE).map(|n| n.to_string()).collect();
    let mut received = Vec::with_capacity(expected.len());
    while received.len() < expected.len() {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} messages arrived", received.len(), expected.len()))
            .expect("the consumer is open")
            .expect("a delivery");
        received.push(delivery.properties.message_id().as_ref().map(|id| id.to_string()).unwrap_or_default());
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert_eq!(received, expected, "the queue holds the messages in the order they were given");

    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
    broker.close().await;
}
