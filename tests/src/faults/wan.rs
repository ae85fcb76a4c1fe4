//! A stand-in for the WAN between two sites: a TCP proxy on 127.0.0.1 that
//! the test controls. A link between a slave's broker and its master's
//! broker goes through it, so a test can
//!
//! * [`Wan::cut`] it: every open connection is closed at once and new ones
//!   are refused (accepted and closed) until [`Wan::restore`];
//! * [`Wan::hold`] it: connections stay open but no byte crosses, as when a
//!   route black-holes packets (heartbeats time out on both sides);
//! * [`Wan::slow`] it: every chunk waits before it crosses (latency);
//! * [`Wan::flap`] it: cut for a while every period, for a bounded time.
//!
//! Counters say how many connections were accepted and how many bytes
//! crossed, so a test can prove traffic went through the proxy and not
//! around it.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// What the WAN does to traffic now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    Open,
    Cut,
    Hold,
    Slow(Duration),
}

/// How much went through.
#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    bytes: AtomicU64,
}

/// A controllable TCP proxy from [`Wan::address`] to a target.
pub struct Wan {
    address: SocketAddr,
    condition: watch::Sender<Condition>,
    counters: Arc<Counters>,
    acceptor: JoinHandle<()>,
}

impl Wan {
    /// Listens on a free port of 127.0.0.1 and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("the WAN proxy binds");
        let address = listener.local_addr().expect("a bound address");
        let (condition, watching) = watch::channel(Condition::Open);
        let counters = Arc::new(Counters::default());
        let acceptor = tokio::spawn(accept(listener, target, watching, counters.clone()));
        Self { address, condition, counters, acceptor }
    }

    /// Where the far side is reached through the WAN.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn condition(&self) -> Condition {
        *self.condition.borrow()
    }

    pub fn cut(&self) {
        self.set(Condition::Cut);
    }

    pub fn hold(&self) {
        self.set(Condition::Hold);
    }

    pub fn slow(&self, latency: Duration) {
        self.set(Condition::Slow(latency));
    }

    pub fn restore(&self) {
        self.set(Condition::Open);
    }

    fn set(&self, condition: Condition) {
        tracing::info!(?condition, address = %self.address, "WAN condition changed.");
        self.condition.send_replace(condition);
    }

    /// Cuts the link for `down` every `period` during `total`, then
    /// restores it; returns when done.
    pub async fn flap(&self, down: Duration, period: Duration, total: Duration) {
        assert!(down < period, "a flap is down for less than its period");
        let started = tokio::time::Instant::now();
        while started.elapsed() + period <= total {
            self.cut();
            tokio::time::sleep(down).await;
            self.restore();
            tokio::time::sleep(period - down).await;
        }
        self.restore();
    }

    /// Connections accepted and passed on so far.
    pub fn connections(&self) -> u64 {
        self.counters.accepted.load(Ordering::Relaxed)
    }

    /// Connections refused while the link was cut.
    pub fn refused(&self) -> u64 {
        self.counters.refused.load(Ordering::Relaxed)
    }

    /// Bytes that crossed, both ways.
    pub fn bytes(&self) -> u64 {
        self.counters.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        // Closing the condition ends every connection's pumps too.
        self.acceptor.abort();
    }
}

async fn accept(
    listener: TcpListener,
    target: SocketAddr,
    condition: watch::Receiver<Condition>,
    counters: Arc<Counters>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else { continue };
        if *condition.borrow() == Condition::Cut {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            drop(inbound);
            continue;
        }
        let Ok(outbound) = TcpStream::connect(target).await else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        let (in_read, in_write) = inbound.into_split();
        let (out_read, out_write) = outbound.into_split();
        tokio::spawn(pump(in_read, out_write, condition.clone(), counters.clone()));
        tokio::spawn(pump(out_read, in_write, condition.clone(), counters.clone()));
    }
}

/// Copies one direction of one connection under the WAN's condition; a cut
/// (or the proxy dropped) ends it, closing both halves it holds.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut condition: watch::Receiver<Condition>,
    counters: Arc<Counters>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if !passable(&mut condition).await {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            changed = condition.changed() => {
                if changed.is_err() { return; }
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = *condition.borrow();
        if let Condition::Slow(latency) = now {
            tokio::time::sleep(latency).await;
        }
        // A chunk read before a hold crosses once it ends (TCP would
        // retransmit it); before a cut it is lost with the connection.
        if !passable(&mut condition).await {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Waits while the link is held: `false` once it is cut or the proxy is gone.
async fn passable(condition: &mut watch::Receiver<Condition>) -> bool {
    loop {
        let now = *condition.borrow_and_update();
        match now {
            Condition::Cut => return false,
            Condition::Hold => {
                if condition.changed().await.is_err() {
                    return false;
                }
            }
            Condition::Open | Condition::Slow(_) => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on 127.0.0.1: its address.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        address
    }

    /// Sends `text` and reads the echo within `within`, if any.
    async fn round_trip(stream: &mut TcpStream, text: &[u8], within: Duration) -> Option<Vec<u8>> {
        stream.write_all(text).await.ok()?;
        let mut buffer = vec![0u8; text.len()];
        match tokio::time::timeout(within, stream.read_exact(&mut buffer)).await {
            Ok(Ok(_)) => Some(buffer),
            _ => None,
        }
    }

    #[tokio::test]
    async fn traffic_crosses_until_cut_and_again_once_restored() {
        let wan = Wan::start(echo().await).await;
        let mut stream = TcpStream::connect(wan.address()).await.unwrap();
        assert_eq!(round_trip(&mut stream, b"hello", Duration::from_secs(5)).await.as_deref(), Some(&b"hello"[..]));
        assert!(wan.bytes() >= 10, "both ways counted");

        wan.cut();
        // The open connection is closed by the cut.
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the cut closes open connections: {closed:?}");
        // A new one is refused.
        let mut refused = TcpStream::connect(wan.address()).await.unwrap();
        assert_eq!(round_trip(&mut refused, b"x", Duration::from_millis(500)).await, None);
        assert!(wan.refused() >= 1);

        wan.restore();
        let mut again = TcpStream::connect(wan.address()).await.unwrap();
        assert_eq!(round_trip(&mut again, b"back", Duration::from_secs(5)).await.as_deref(), Some(&b"back"[..]));
        assert_eq!(wan.connections(), 2);
    }

    #[tokio::test]
    async fn a_held_link_passes_nothing_until_restored() {
        let wan = Wan::start(echo().await).await;
        let mut stream = TcpStream::connect(wan.address()).await.unwrap();
        assert!(round_trip(&mut stream, b"one", Duration::from_secs(5)).await.is_some());
        wan.hold();
        let before = wan.bytes();
        assert_eq!(round_trip(&mut stream, b"two", Duration::from_millis(300)).await, None);
        assert_eq!(wan.bytes(), before, "nothing crossed while held");
        wan.restore();
        // The connection survived the hold, and what was sent during it
        // arrives late, as TCP would retransmit it.
        let mut late = [0u8; 3];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut late)).await.unwrap().unwrap();
        assert_eq!(&late, b"two");
        assert_eq!(round_trip(&mut stream, b"three", Duration::from_secs(5)).await.as_deref(), Some(&b"three"[..]));
    }

    #[tokio::test]
    async fn a_slow_link_delays_each_chunk() {
        let wan = Wan::start(echo().await).await;
        let mut stream = TcpStream::connect(wan.address()).await.unwrap();
        wan.slow(Duration::from_millis(200));
        let started = std::time::Instant::now();
        assert!(round_trip(&mut stream, b"slow", Duration::from_secs(5)).await.is_some());
        // Two crossings (there and back), each delayed.
        assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_flapping_link_is_cut_and_restored_in_turn_and_ends_open() {
        let wan = Arc::new(Wan::start(echo().await).await);
        let flapping = tokio::spawn({
            let wan = wan.clone();
            async move { wan.flap(Duration::from_millis(100), Duration::from_millis(300), Duration::from_secs(2)).await }
        });
        let (mut seen_cut, mut seen_open) = (0, 0);
        while !flapping.is_finished() {
            match wan.condition() {
                Condition::Cut => seen_cut += 1,
                _ => seen_open += 1,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        flapping.await.unwrap();
        assert!(seen_cut > 0 && seen_open > seen_cut, "cut {seen_cut} / open {seen_open} samples");
        assert_eq!(wan.condition(), Condition::Open);
    }
}
