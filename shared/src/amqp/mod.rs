//! The broker side of every service: one connection, channels on demand,
//! confirmed publishing ([`publisher`]) and the consumer loop ([`consumer`]).
//!
//! Every call that waits on the broker is bounded by [`BROKER_TIMEOUT`]; a
//! dead connection is replaced on the next [`Broker::channel`] call, so the
//! long-running loops recover by asking again after a back-off. A handle
//! has at most one connection attempt under way: one that outlasts the
//! bound is waited for again by the next call, and given up for a new one
//! only after [`ATTEMPT_PATIENCE`].

pub mod consumer;
pub mod publisher;

use std::time::Duration;

use lapin::{protocol::constants::REPLY_SUCCESS, Channel, Connection, ConnectionProperties};
use tokio::{sync::Mutex, task::JoinHandle};

use crate::secret::{redact_url, Secret};

/// Upper bound on any single wait for the broker.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection attempt is waited for, over the calls that wait
/// for it, before the next call gives it up and starts another. An attempt
/// stuck in the TCP connect ends by itself (the kernel gives up its SYN
/// retries after about two minutes); one whose handshake a peer never
/// answers (a network that drops everything after the connect) would
/// otherwise hold the handle without a connection for good.
pub const ATTEMPT_PATIENCE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("cannot reach the broker at {url}: {source}")]
    Connect { url: String, source: lapin::Error },
    #[error("broker operation '{operation}' failed: {source}")]
    Broker { operation: &'static str, source: lapin::Error },
    #[error("broker operation '{0}' timed out after {BROKER_TIMEOUT:?}")]
    Timeout(&'static str),
    /// A message of [`publisher::Publisher::publish_each`] whose confirm
    /// did not come while the others' kept coming.
    #[error(
        "broker did not confirm the message: no confirm came for {BROKER_TIMEOUT:?}, or it was not among those that came within {:?}",
        publisher::MAX_CONFIRM_WAIT
    )]
    Unconfirmed,
    #[error("broker refused message for '{exchange}' / '{routing_key}' (nack)")]
    Nacked { exchange: String, routing_key: String },
    #[error("no queue is bound for '{exchange}' / '{routing_key}' (message returned)")]
    Unroutable { exchange: String, routing_key: String },
}

pub type Result<T> = std::result::Result<T, AmqpError>;

/// The AMQP heartbeat asked for, in seconds, when the broker URL names
/// none. A connection that hears nothing for two heartbeats is given up, so
/// a consumer of a frozen broker reconnects after about 20 s instead of
/// the two minutes of RabbitMQ's default (60 s); a broker that proposes a
/// shorter one keeps it.
pub const DEFAULT_HEARTBEAT: u16 = 10;

/// The largest AMQP frame asked for, in bytes, when the broker URL names
/// none: 32 KiB. lapin keeps a send and a receive buffer of 32 frames each
/// per connection, written through when the connection opens, so with
/// RabbitMQ's default of 128 KiB every connection held 8 MiB of memory
/// (most of what a simulated slave cost the 1,000-slave benchmark's
/// process); at 32 KiB it holds 2 MiB, and a message larger than a frame
/// is sent as several, as before. A broker that proposes a smaller one
/// keeps it.
pub const DEFAULT_FRAME_MAX: u32 = 32 * 1024;

/// `url` with `heartbeat=`[`DEFAULT_HEARTBEAT`] and
/// `frame_max=`[`DEFAULT_FRAME_MAX`] added to its query, each unless the
/// URL has it already.
fn with_defaults(url: &str) -> String {
    let with = with_default(url, "heartbeat", &DEFAULT_HEARTBEAT.to_string());
    with_default(&with, "frame_max", &DEFAULT_FRAME_MAX.to_string())
}

/// `url` with `key=value` added to its query unless it has `key` already.
fn with_default(url: &str, key: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if query.split('&').any(|pair| pair.split('=').next() == Some(key)) {
        return url.to_owned();
    }
    let joiner = if query.is_empty() { "" } else { "&" };
    format!("{base}?{query}{joiner}{key}={value}")
}

/// Runs a broker future with the standard timeout, naming the operation.
pub async fn bounded<T>(
    operation: &'static str,
    fut: impl std::future::Future<Output = lapin::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(BROKER_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(AmqpError::Broker { operation, source }),
        Err(_) => Err(AmqpError::Timeout(operation)),
    }
}

/// Closes `channel`, bounded like every broker wait. Whoever opened a
/// channel closes it before the connection closes: a channel left to close
/// itself on drop races the connection's close, and lapin logs each such
/// race as a connection error.
pub async fn close_channel(channel: &Channel, reason: &str) -> Result<()> {
    bounded("channel.close", channel.close(REPLY_SUCCESS, reason.into())).await
}

/// A lazily (re)connected broker connection shared by a process.
///
/// Few connections, many channels: each lapin connection runs its own I/O
/// thread, so a service keeps exactly one.
#[derive(Debug)]
pub struct Broker {
    url: Secret<String>,
    name: String,
    connection: Mutex<Link>,
    /// [`ATTEMPT_PATIENCE`], shorter in tests.
    attempt_patience: Duration,
    /// Woken each time this handle opens a new connection, so that users
    /// waiting out a back-off after losing theirs retry at once.
    reconnected: tokio::sync::Notify,
}

/// The handle's connection, and the attempt to open one while it has none.
///
/// lapin opens a connection in an I/O thread of its own, which goes on
/// (a TCP connect the kernel retries for minutes, then the handshake) when
/// the future that asked for it is dropped: a caller that gave up after
/// [`BROKER_TIMEOUT`] and asked again left a thread, a socket and its
/// buffers behind each time. When a broker slowed by 1,000 slaves stopped
/// accepting connections in time, their reconnections piled up to 7,000
/// threads and 9 GB in one process (`bench/README.md`, change 53). So the
/// attempt runs as a task of its own, and the next call waits for that
/// same attempt, taking its connection if it came late, until
/// [`ATTEMPT_PATIENCE`].
#[derive(Debug, Default)]
struct Link {
    connection: Option<Connection>,
    attempt: Option<Attempt>,
}

/// A connection attempt under way, and when it started.
#[derive(Debug)]
struct Attempt {
    task: JoinHandle<lapin::Result<Connection>>,
    started: tokio::time::Instant,
}

impl Broker {
    /// Does not connect yet; see [`Broker::connect`]. A URL that names no
    /// `heartbeat` gets [`DEFAULT_HEARTBEAT`], one that names no
    /// `frame_max` gets [`DEFAULT_FRAME_MAX`].
    pub fn new(url: Secret<String>, name: impl Into<String>) -> Self {
        Self {
            url: Secret::new(with_defaults(url.expose())),
            name: name.into(),
            connection: Mutex::new(Link::default()),
            attempt_patience: ATTEMPT_PATIENCE,
            reconnected: tokio::sync::Notify::new(),
        }
    }

    /// Creates the broker handle and checks the connection works now.
    pub async fn connect(url: Secret<String>, name: impl Into<String>) -> Result<Self> {
        let broker = Self::new(url, name);
        broker.channel().await?;
        Ok(broker)
    }

    /// The URL with its password hidden, for logs.
    pub fn display_url(&self) -> String {
        redact_url(self.url.expose())
    }

    /// A fresh channel, reconnecting first if the connection is gone.
    pub async fn channel(&self) -> Result<Channel> {
        let mut link = self.connection.lock().await;
        if let Some(conn) = link.connection.as_ref() {
            if conn.status().connected() {
                if let Ok(channel) = bounded("channel.open", conn.create_channel()).await {
                    return Ok(channel);
                }
            }
        }
        if let Some(stale) = link.attempt.take_if(|a| a.started.elapsed() >= self.attempt_patience) {
            tracing::warn!(
                broker = %self.display_url(),
                connection = %self.name,
                waited_s = stale.started.elapsed().as_secs(),
                "A connection attempt got no answer; starting another."
            );
            stale.task.abort();
        }
        let attempt = link.attempt.get_or_insert_with(|| {
            let url = self.url.expose().clone();
            let props = ConnectionProperties::default().with_connection_name(self.name.clone().into());
            let task = tokio::spawn(async move { Connection::connect(&url, props).await });
            Attempt { task, started: tokio::time::Instant::now() }
        });
        // Timed out: the attempt stays, for the next call to wait for.
        let joined = tokio::time::timeout(BROKER_TIMEOUT, &mut attempt.task)
            .await
            .map_err(|_| AmqpError::Timeout("connection.open"))?;
        link.attempt = None;
        let conn = match joined {
            Ok(Ok(conn)) => conn,
            Ok(Err(source)) => return Err(AmqpError::Connect { url: self.display_url(), source }),
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            // Cancelled: only when the runtime shuts down.
            Err(_) => return Err(AmqpError::Timeout("connection.open")),
        };
        tracing::info!(broker = %self.display_url(), connection = %self.name, "Connected to the broker.");
        let conn = link.connection.insert(conn);
        self.reconnected.notify_waiters();
        bounded("channel.open", conn.create_channel()).await
    }

    /// Resolves the next time this handle opens a new connection (another
    /// user of it reconnected after the broker came back). Counts from its
    /// first poll, or from `enable()` on it.
    pub fn reconnected(&self) -> tokio::sync::futures::Notified<'_> {
        self.reconnected.notified()
    }

    /// How many messages wait in `queue` (not counting those delivered to a
    /// consumer and not acked yet), or `None` when the broker cannot tell
    /// (no such queue, or the broker is unreachable).
    pub async fn queue_depth(&self, queue: &str) -> Option<u32> {
        self.queue_counts(queue).await.map(|(ready, _)| ready)
    }

    /// `(messages waiting, consumers)` of `queue`, exact (a passive
    /// declare, unlike the management API's statistics, which lag by
    /// seconds), or `None` as for [`Self::queue_depth`].
    pub async fn queue_counts(&self, queue: &str) -> Option<(u32, u32)> {
        let mut looks = QueueLooks::default();
        let counts = looks.counts(self, queue).await;
        looks.close().await;
        counts
    }

    /// Closes the connection (graceful shutdown), and one that an attempt
    /// still under way opens later.
    pub async fn close(&self) {
        let mut link = self.connection.lock().await;
        if let Some(attempt) = link.attempt.take() {
            tokio::spawn(async move {
                if let Ok(Ok(Ok(conn))) = tokio::time::timeout(BROKER_TIMEOUT, attempt.task).await {
                    shut(conn).await;
                }
            });
        }
        if let Some(conn) = link.connection.take() {
            shut(conn).await;
        }
    }
}

/// Closes `conn` for a shutdown, bounded like every broker wait.
async fn shut(conn: Connection) {
    let _ = tokio::time::timeout(BROKER_TIMEOUT, conn.close(REPLY_SUCCESS, "shutdown".into())).await;
}

/// Looks at queues' counts on one channel, for a caller that looks again
/// and again while it waits (a slave held for room in its master's bulk
/// queue looks every half second): a channel opened and closed for each
/// look made the broker open and close 110 to 140 channels a second
/// through the benchmark's drain (`bench/README.md`, change 48). The
/// caller closes it with [`QueueLooks::close`] when done.
#[derive(Debug, Default)]
pub struct QueueLooks {
    channel: Option<Channel>,
}

impl QueueLooks {
    /// As [`Broker::queue_counts`], on this look's channel (opened on the
    /// first look, and again after a failed one: the broker closes a
    /// channel that asks for a queue it does not have).
    pub async fn counts(&mut self, broker: &Broker, queue: &str) -> Option<(u32, u32)> {
        let channel = match self.channel.take().filter(|c| c.status().connected()) {
            Some(channel) => channel,
            None => broker.channel().await.ok()?,
        };
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        match bounded("queue.declare", channel.queue_declare(queue.into(), passive, Default::default())).await {
            Ok(declared) => {
                self.channel = Some(channel);
                Some((declared.message_count(), declared.consumer_count()))
            }
            Err(_) => {
                let _ = close_channel(&channel, "done").await;
                None
            }
        }
    }

    /// [`Self::counts`]' messages waiting alone, as [`Broker::queue_depth`].
    pub async fn depth(&mut self, broker: &Broker, queue: &str) -> Option<u32> {
        self.counts(broker, queue).await.map(|(ready, _)| ready)
    }

    /// Closes the channel, if one is open.
    pub async fn close(self) {
        if let Some(channel) = self.channel.filter(|c| c.status().connected()) {
            let _ = close_channel(&channel, "done").await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_heartbeat_or_frame_size_gets_the_defaults() {
        assert_eq!(
            with_defaults("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f?heartbeat=10&frame_max=32768"
        );
        assert_eq!(with_defaults("amqp://h/%2f?frame_max=8192"), "amqp://h/%2f?frame_max=8192&heartbeat=10");
        assert_eq!(with_defaults("amqp://h/%2f?heartbeat=4"), "amqp://h/%2f?heartbeat=4&frame_max=32768");
        assert_eq!(
            with_defaults("amqp://h/%2f?channel_max=9&heartbeat=0&frame_max=131072"),
            "amqp://h/%2f?channel_max=9&heartbeat=0&frame_max=131072"
        );
    }

    /// A peer that accepts TCP connections and never speaks AMQP, as a
    /// broker too busy to answer: each call times out, the second one
    /// waits for the first attempt instead of opening another connection,
    /// and a call past the attempt's patience starts another.
    #[tokio::test]
    async fn a_call_after_a_timed_out_connect_waits_for_the_same_attempt() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("amqp://guest:guest@{}/%2f", listener.local_addr().unwrap());
        let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                // Held open, unanswered.
                let _ = accepted_tx.send(socket);
            }
        });
        let mut broker = Broker::new(Secret::new(url), "silent peer");
        broker.attempt_patience = BROKER_TIMEOUT + BROKER_TIMEOUT / 2;
        let mut connections = Vec::new();
        for (call, expected) in [(1, 1), (2, 1), (3, 2)] {
            let result = broker.channel().await;
            assert!(matches!(result, Err(AmqpError::Timeout("connection.open"))), "call {call}: {result:?}");
            while let Ok(socket) = accepted.try_recv() {
                connections.push(socket);
            }
            assert_eq!(connections.len(), expected, "connections after call {call}");
        }
        broker.close().await;
    }
}
