//! What a delivery refused for good becomes: a copy in the queue's parking
//! queue (through the dead-letter exchange) with the reason and the queue
//! it came from in its headers, then acked (`docs/reliability.md`).

use std::sync::atomic::Ordering;

use lapin::{
    message::Delivery,
    options::BasicAckOptions,
    types::{AMQPValue, FieldTable},
    BasicProperties, Channel,
};

use super::{BatchHandler, ConsumerMetrics, ConsumerSettings};
use crate::{
    amqp::{
        bounded,
        publisher::{Outgoing, Publisher},
        Result,
    },
    envelope::{REASON_HEADER, SOURCE_QUEUE_HEADER, USER_ID_HEADER},
};

/// The properties a parked copy keeps: the delivery's, except its AMQP
/// `user_id`, which the broker validates against the *parking* publisher's
/// user (it would refuse the copy); the original sender's `user_id` goes in
/// the [`USER_ID_HEADER`] header instead.
fn parked_properties(original: &BasicProperties, mut headers: FieldTable) -> BasicProperties {
    if let Some(user) = original.user_id() {
        headers.insert(USER_ID_HEADER.into(), AMQPValue::LongString(user.as_str().into()));
    }
    let mut parked = BasicProperties::default().with_headers(headers).with_delivery_mode(2);
    if let Some(v) = original.content_type() {
        parked = parked.with_content_type(v.clone());
    }
    if let Some(v) = original.content_encoding() {
        parked = parked.with_content_encoding(v.clone());
    }
    if let Some(v) = original.kind() {
        parked = parked.with_type(v.clone());
    }
    if let Some(v) = original.message_id() {
        parked = parked.with_message_id(v.clone());
    }
    if let Some(v) = original.correlation_id() {
        parked = parked.with_correlation_id(v.clone());
    }
    if let Some(v) = original.timestamp() {
        parked = parked.with_timestamp(*v);
    }
    if let Some(v) = original.app_id() {
        parked = parked.with_app_id(v.clone());
    }
    parked
}

/// Copies the delivery to the dead-letter exchange with the reason, waits for
/// the confirm, then acks the original.
pub(super) async fn dead_letter<H: BatchHandler>(
    channel: &Channel,
    settings: &ConsumerSettings,
    handler: &H,
    metrics: &ConsumerMetrics,
    dead_letters: &Publisher,
    delivery: &Delivery,
    reason: &str,
) -> Result<()> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(REASON_HEADER.into(), AMQPValue::LongString(reason.into()));
    headers.insert(SOURCE_QUEUE_HEADER.into(), AMQPValue::LongString(settings.queue.as_str().into()));
    let properties = parked_properties(&delivery.properties, headers);
    dead_letters
        .publish(Outgoing {
            exchange: settings.dead_letter_exchange.clone(),
            routing_key: settings.queue.clone(),
            payload: delivery.data.clone(),
            properties,
        })
        .await?;
    bounded("basic.ack", channel.basic_ack(delivery.delivery_tag, BasicAckOptions::default())).await?;
    metrics.dead_lettered.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        queue = %settings.queue,
        message_id = delivery.properties.message_id().as_ref().map(|s| s.as_str()).unwrap_or("-"),
        kind = delivery.properties.kind().as_ref().map(|s| s.as_str()).unwrap_or("-"),
        %reason,
        "Dead-lettered a message."
    );
    handler.refused(delivery, reason).await;
    Ok(())
}
