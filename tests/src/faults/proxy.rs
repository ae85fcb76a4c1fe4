//! A TCP proxy a test controls, standing for the WAN between two brokers:
//! it forwards every connection to its upstream until [`TcpProxy::cut`],
//! which closes every open connection and refuses new ones until
//! [`TcpProxy::restore`].

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// A running proxy on 127.0.0.1; stops when dropped.
pub struct TcpProxy {
    /// The port clients connect to instead of the upstream's.
    pub port: u16,
    up: Arc<watch::Sender<bool>>,
    accepting: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding 127.0.0.1:<port> to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("a port for the proxy");
        let port = listener.local_addr().expect("the proxy's address").port();
        let (up, _) = watch::channel(true);
        let up = Arc::new(up);
        let accepting = tokio::spawn(accept(listener, upstream, up.clone()));
        Self { port, up, accepting }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, up: Arc<watch::Sender<bool>>) {
    while let Ok((client, _)) = listener.accept().await {
        if !*up.borrow() {
            drop(client); // refused while cut
            continue;
        }
        tokio::spawn(forward(client, upstream, up.subscribe()));
    }
}

/// Copies both ways until either side closes or the proxy is cut.
async fn forward(mut client: TcpStream, upstream: SocketAddr, mut up: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = up.wait_for(|up| !*up) => {}
    }
}
