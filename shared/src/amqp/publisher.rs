//! Confirmed publishing: a publish is done only when the broker has
//! confirmed it, and an unroutable mandatory publish is an error even though
//! its confirm is an ack (RabbitMQ acks returned messages).

use std::{future::Future, task::Poll, time::Duration};

use futures_util::stream::{FuturesUnordered, StreamExt};

use lapin::{
    options::{BasicPublishOptions, ConfirmSelectOptions},
    BasicProperties, Channel, Confirmation, PublisherConfirm,
};
use tokio::sync::Mutex;

use super::{bounded, close_channel, AmqpError, Broker, Result, BROKER_TIMEOUT};
use crate::envelope::Envelope;
use crate::signing::SigningKey;
use crate::site_key::SiteKey;

/// Longest [`Publisher::publish_each`] waits for a batch's confirms while
/// they keep coming.
pub const MAX_CONFIRM_WAIT: Duration = Duration::from_secs(60);

/// One message to publish.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub payload: Vec<u8>,
    pub properties: BasicProperties,
}

impl Outgoing {
    /// An endpoint command sealed with the site's key, valid until
    /// `expires_at` (see [`crate::site_key`]).
    pub fn sealed_command(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        envelope: &Envelope,
        site: &SiteKey,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let routing_key = routing_key.into();
        let payload = envelope.to_bytes();
        let seal = site.seal(&routing_key, &payload, expires_at);
        Self { exchange: exchange.into(), routing_key, properties: envelope.properties(Some(seal)), payload }
    }

    /// An envelope, signed when a key is given.
    pub fn envelope(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        envelope: &Envelope,
        key: Option<&SigningKey>,
    ) -> Self {
        Self::signed(exchange.into(), routing_key.into(), envelope, envelope.to_bytes(), None, key)
    }

    /// An envelope of bulk data (a replication batch): compressed when it
    /// is large ([`crate::compression`]), then signed as it travels.
    pub fn bulk_envelope(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        envelope: &Envelope,
        key: Option<&SigningKey>,
    ) -> Self {
        let (payload, encoding) = crate::compression::compress(envelope.to_bytes());
        Self::signed(exchange.into(), routing_key.into(), envelope, payload, encoding, key)
    }

    /// `payload` (the envelope's bytes as they travel, in `encoding`),
    /// with the envelope's properties and the signature of those bytes.
    fn signed(
        exchange: String,
        routing_key: String,
        envelope: &Envelope,
        payload: Vec<u8>,
        encoding: Option<&str>,
        key: Option<&SigningKey>,
    ) -> Self {
        let signature = key.map(|k| k.sign(&payload));
        let mut properties = envelope.properties(signature);
        if let Some(encoding) = encoding {
            properties = properties.with_content_encoding(encoding.into());
        }
        Self { exchange, routing_key, properties, payload }
    }
}

/// Outcome of one message of a batch.
#[derive(Debug)]
pub enum Delivered {
    Confirmed,
    /// No queue was bound for its routing key; nothing was stored.
    Unroutable,
}

/// Publishes with confirms on a channel it owns, reopening it when lost.
#[derive(Debug)]
pub struct Publisher {
    broker: std::sync::Arc<Broker>,
    channel: Mutex<Option<Channel>>,
}

impl Publisher {
    pub fn new(broker: std::sync::Arc<Broker>) -> Self {
        Self { broker, channel: Mutex::new(None) }
    }

    /// Closes the publishing channel, if one is open, before the broker's
    /// connection closes (see [`close_channel`]). The next publish opens a
    /// new channel.
    pub async fn close(&self) {
        if let Some(channel) = self.channel.lock().await.take() {
            if channel.status().connected() {
                let _ = close_channel(&channel, "done").await;
            }
        }
    }

    async fn ready_channel(&self, slot: &mut Option<Channel>) -> Result<Channel> {
        if let Some(channel) = slot.as_ref() {
            if channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        let channel = self.broker.channel().await?;
        bounded("confirm.select", channel.confirm_select(ConfirmSelectOptions::default())).await?;
        *slot = Some(channel.clone());
        Ok(channel)
    }

    /// Publishes one message and waits for its confirm.
    pub async fn publish(&self, message: Outgoing) -> Result<()> {
        match self.publish_batch(vec![message]).await?.pop() {
            Some((out, Delivered::Unroutable)) => {
                Err(AmqpError::Unroutable { exchange: out.exchange, routing_key: out.routing_key })
            }
            _ => Ok(()),
        }
    }

    /// Publishes every message (mandatory, persistent), then waits for all
    /// confirms. Returns each message with its outcome, in order. Any nack or
    /// broker failure fails the whole call: the caller retries the batch, and
    /// consumers deduplicate.
    pub async fn publish_batch(&self, messages: Vec<Outgoing>) -> Result<Vec<(Outgoing, Delivered)>> {
        let mut slot = self.channel.lock().await;
        let channel = self.ready_channel(&mut slot).await?;
        let result = Self::publish_on(&channel, messages).await;
        if result.is_err() {
            // Start from a fresh channel next time.
            *slot = None;
        }
        result
    }

    /// Publishes every message (mandatory, persistent) and judges each
    /// confirm on its own: a message the broker refuses or never confirms
    /// (a queue without a leader, a queue that rejects) fails alone and the
    /// others still count as delivered. The confirms are waited for while
    /// they keep coming: each one gives the rest another [`BROKER_TIMEOUT`],
    /// up to [`MAX_CONFIRM_WAIT`] in all. A broker that is slow but working
    /// (one node with 4,000 quorum queues on two busy cores confirmed some
    /// messages of a round after more than 10 s) is waited for rather than
    /// sent the same messages again; one that confirms nothing for
    /// [`BROKER_TIMEOUT`] fails the rest. `Err` only when the channel
    /// itself failed before every message went out.
    pub async fn publish_each(&self, messages: Vec<Outgoing>) -> Result<Vec<(Outgoing, Result<Delivered>)>> {
        let mut slot = self.channel.lock().await;
        let channel = self.ready_channel(&mut slot).await?;
        let pending = match publish_all(&channel, &messages).await {
            Ok(pending) => pending,
            Err(e) => {
                *slot = None;
                return Err(e);
            }
        };
        let confirms = while_coming(pending, BROKER_TIMEOUT, MAX_CONFIRM_WAIT).await;
        let mut unconfirmed = false;
        let outcomes: Vec<_> = messages
            .into_iter()
            .zip(confirms)
            .map(|(message, confirmed)| {
                let outcome = match confirmed {
                    Some(confirmed) => judge(&message, confirmed),
                    None => Err(AmqpError::Unconfirmed),
                };
                unconfirmed |= matches!(outcome, Err(AmqpError::Broker { .. } | AmqpError::Unconfirmed));
                (message, outcome)
            })
            .collect();
        if unconfirmed {
            // Late confirms of this channel would be confusing: start afresh.
            *slot = None;
        }
        Ok(outcomes)
    }

    async fn publish_on(channel: &Channel, messages: Vec<Outgoing>) -> Result<Vec<(Outgoing, Delivered)>> {
        let pending = publish_all(channel, &messages).await?;
        let mut outcomes = Vec::with_capacity(messages.len());
        for (message, confirm) in messages.into_iter().zip(pending) {
            let confirmed = tokio::time::timeout(BROKER_TIMEOUT, confirm)
                .await
                .map_err(|_| AmqpError::Timeout("publisher confirm"))?;
            let outcome = judge(&message, confirmed)?;
            outcomes.push((message, outcome));
        }
        Ok(outcomes)
    }
}

/// Waits for `futures` while they keep coming: the first has `quiet` to
/// come, and each one that comes gives the rest another `quiet`, up to
/// `most` from the start. Each one's output in order, `None` for those
/// that had not come.
async fn while_coming<F: Future>(futures: Vec<F>, quiet: Duration, most: Duration) -> Vec<Option<F::Output>> {
    let started = tokio::time::Instant::now();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut waiting: FuturesUnordered<_> =
        futures.into_iter().enumerate().map(|(i, future)| async move { (i, future.await) }).collect();
    let mut deadline = started + quiet.min(most);
    while let Ok(Some((i, output))) = tokio::time::timeout_at(deadline, waiting.next()).await {
        outputs[i] = Some(output);
        deadline = (tokio::time::Instant::now() + quiet).min(started + most);
    }
    outputs
}

/// What a confirm says of `message`'s delivery.
fn judge(message: &Outgoing, confirmed: lapin::Result<Confirmation>) -> Result<Delivered> {
    match confirmed {
        Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => Ok(Delivered::Confirmed),
        Ok(Confirmation::Ack(Some(_))) => Ok(Delivered::Unroutable),
        Ok(Confirmation::Nack(_)) => {
            Err(AmqpError::Nacked { exchange: message.exchange.clone(), routing_key: message.routing_key.clone() })
        }
        Err(source) => Err(AmqpError::Broker { operation: "publisher confirm", source }),
    }
}

/// Publishes every message (mandatory) at once on `channel` and returns
/// their confirms, in order. A publish hands its frames to the
/// connection's I/O thread and completes once they are written: awaiting
/// each before starting the next wakes that thread once per message, and a
/// batch of a hundred (a policy to a hundred slaves) waited on a hundred
/// wake-ups in turn on a busy machine. Here every publish is started in
/// order (each takes its delivery tag and queues its frames when first
/// polled) and all are awaited together.
pub async fn publish_all(channel: &Channel, messages: &[Outgoing]) -> Result<Vec<PublisherConfirm>> {
    let mut publishes: Vec<_> = messages
        .iter()
        .map(|message| {
            Box::pin(bounded(
                "basic.publish",
                channel.basic_publish(
                    message.exchange.as_str().into(),
                    message.routing_key.as_str().into(),
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    &message.payload,
                    message.properties.clone(),
                ),
            ))
        })
        .collect();
    let mut confirms: Vec<Option<PublisherConfirm>> = messages.iter().map(|_| None).collect();
    // Polled in order every time, so the first polls (which queue the
    // frames) keep the messages' order.
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (publish, confirm) in publishes.iter_mut().zip(confirms.iter_mut()) {
            if confirm.is_some() {
                continue;
            }
            match publish.as_mut().poll(cx) {
                Poll::Ready(Ok(c)) => *confirm = Some(c),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => waiting = true,
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    })
    .await?;
    Ok(confirms.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use std::future::pending;

    use super::*;

    /// A future that gives `n` after `seconds`, or never.
    fn after(seconds: Option<u64>, n: u32) -> std::pin::Pin<Box<dyn Future<Output = u32>>> {
        match seconds {
            Some(s) => Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(s)).await;
                n
            }),
            None => Box::pin(pending()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn confirms_that_keep_coming_are_waited_for_past_the_quiet_time() {
        let quiet = Duration::from_secs(10);
        let futures = vec![after(Some(8), 1), after(Some(24), 3), after(None, 4), after(Some(16), 2)];
        let started = tokio::time::Instant::now();
        let outputs = while_coming(futures, quiet, Duration::from_secs(60)).await;
        assert_eq!(outputs, [Some(1), Some(3), None, Some(2)], "each came within 10 s of the one before");
        assert_eq!(started.elapsed(), Duration::from_secs(34), "10 s after the last one that came");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silence_or_the_longest_wait_ends_it() {
        let quiet = Duration::from_secs(10);
        let gap = vec![after(Some(5), 1), after(Some(16), 2)];
        assert_eq!(while_coming(gap, quiet, Duration::from_secs(60)).await, [Some(1), None], "11 s of silence");
        let steady: Vec<_> = (1..=5).map(|n| after(Some(8 * n as u64), n)).collect();
        let started = tokio::time::Instant::now();
        let outputs = while_coming(steady, quiet, Duration::from_secs(30)).await;
        assert_eq!(outputs, [Some(1), Some(2), Some(3), None, None], "30 s at most");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
