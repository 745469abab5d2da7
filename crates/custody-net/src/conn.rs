//! Connection limits and timeouts, for the gRPC and the HTTP listener
//! alike. A peer that opens connections and sends nothing, trickles a
//! request's headers, or stops reading must not hold descriptors for
//! ever: at the descriptor limit honest requests fail.
//!
//! - [`Gate`] caps open connections, in all and per peer address; a
//!   connection over a cap is accepted and closed at once, so the backlog
//!   never fills and accepting never spins.
//! - [`Guarded`] closes a connection on which nothing moved, in either
//!   direction, for the idle timeout. gRPC keepalive pings count as
//!   movement, so a live client's idle channel stays open; HTTP/1 header
//!   reads have their own, shorter deadline ([`serve_http`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// `Limits` are the caps and timeouts of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, from all peers.
    pub max_connections: usize,
    /// Connections open at once from one peer address.
    pub max_per_peer: usize,
    /// A connection on which nothing is read or written for this long is
    /// closed.
    pub idle: Duration,
    /// An HTTP request's headers must arrive within this long.
    pub header: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_per_peer: 256,
            idle: Duration::from_secs(60),
            header: Duration::from_secs(10),
        }
    }
}

/// `Gate` counts the open connections of one listener.
pub struct Gate {
    limits: Limits,
    total: AtomicUsize,
    peers: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
}

/// `Ticket` is one admitted connection; dropping it frees its place.
pub struct Ticket {
    gate: Arc<Gate>,
    peer: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.total.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut peers) = self.gate.peers.lock() {
            if let Some(n) = peers.get_mut(&self.peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    peers.remove(&self.peer);
                }
            }
        }
    }
}

impl Gate {
    /// `new` is a gate with nothing open.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            total: AtomicUsize::new(0),
            peers: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        })
    }

    /// `admit` is a ticket for a connection from `peer`, or `None` when a
    /// cap is reached.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Ticket> {
        let mut peers = self.peers.lock().ok()?;
        let mine = peers.get(&peer).copied().unwrap_or(0);
        if mine >= self.limits.max_per_peer
            || self.total.load(Ordering::Relaxed) >= self.limits.max_connections
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        peers.insert(peer, mine + 1);
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Ticket {
            gate: self.clone(),
            peer,
        })
    }

    /// `open` is the number of connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// `refused` is the number of connections closed at a cap so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// `Guarded` is an admitted connection that fails, and so closes, once
/// nothing has moved on it for the idle timeout.
pub struct Guarded {
    io: TcpStream,
    idle: Duration,
    /// When something last moved.
    moved: Instant,
    /// A timer at or before `moved + idle`; moved on lazily, when it
    /// fires, so traffic costs a clock read and not a timer update.
    deadline: Pin<Box<Sleep>>,
    _ticket: Ticket,
}

impl Guarded {
    fn new(io: TcpStream, idle: Duration, ticket: Ticket) -> Self {
        Self {
            io,
            idle,
            moved: Instant::now(),
            deadline: Box::pin(tokio::time::sleep(idle)),
            _ticket: ticket,
        }
    }

    fn moved(&mut self) {
        self.moved = Instant::now();
    }

    /// `expired` is ready with an error once nothing has moved for the
    /// idle timeout; otherwise it registers for a wake-up at the
    /// deadline, moving the timer on if traffic came since it was set.
    fn expired<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        loop {
            match self.deadline.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let due = self.moved + self.idle;
                    if due <= Instant::now() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "connection idle: nothing read or written within the idle timeout",
                        )));
                    }
                    // Something moved since: wait for the new deadline.
                    self.deadline.as_mut().reset(due);
                }
            }
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => self.expired(cx),
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => self.expired(cx),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Pending => self.expired(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Guarded {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// `GatedListener` accepts connections through a [`Gate`].
pub struct GatedListener {
    listener: TcpListener,
    gate: Arc<Gate>,
    what: &'static str,
}

/// How long accepting pauses when the process is out of descriptors.
const OUT_OF_DESCRIPTORS_PAUSE: Duration = Duration::from_millis(100);

impl GatedListener {
    /// `new` gates `listener` (the `what` listener, for logs).
    pub fn new(listener: TcpListener, limits: Limits, what: &'static str) -> Self {
        Self {
            listener,
            gate: Gate::new(limits),
            what,
        }
    }

    /// `gate` is this listener's gate.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// `accept` is the next connection within the caps. Connections over
    /// a cap are closed as they come; running out of descriptors pauses
    /// accepting briefly instead of spinning.
    ///
    /// # Errors
    ///
    /// When the listener itself fails.
    pub async fn accept(&self) -> io::Result<(Guarded, SocketAddr)> {
        loop {
            let (io, peer) = match self.listener.accept().await {
                Ok(x) => x,
                Err(e) if transient(&e) => {
                    tracing::warn!(listener = self.what, error = %e, "accept failed; pausing");
                    tokio::time::sleep(OUT_OF_DESCRIPTORS_PAUSE).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(ticket) = self.gate.admit(peer.ip()) else {
                let n = self.gate.refused();
                // One line for the first and then every 1,000th.
                if n % 1000 == 1 {
                    tracing::warn!(
                        listener = self.what,
                        %peer,
                        refused = n,
                        open = self.gate.open(),
                        "connection refused: too many open connections (in all, or from this address)"
                    );
                }
                drop(io);
                continue;
            };
            // Answers span several segments; Nagle's algorithm against a
            // client's delayed ACK would add ~40 ms to each.
            let _ = io.set_nodelay(true);
            return Ok((Guarded::new(io, self.gate.limits.idle, ticket), peer));
        }
    }

    /// `incoming` is the accepted connections as a stream, for tonic:
    /// with `tls`, each once its handshake has finished, within the
    /// header timeout. Handshakes run side by side (up to the
    /// connection cap), so a slow one delays no other; one that fails or
    /// times out is dropped.
    pub fn incoming(
        self,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> impl futures::Stream<Item = io::Result<crate::tls::Conn>> {
        use futures::StreamExt as _;
        let (handshake, concurrent) = (self.gate.limits.header, self.gate.limits.max_connections);
        let accepted = futures::stream::unfold(self, |l| async move {
            let next = l.accept().await;
            Some((next, l))
        });
        accepted
            .map(move |next| {
                let tls = tls.clone();
                async move {
                    match next {
                        Ok((io, addr)) => {
                            match crate::tls::accept(io, addr, tls.as_ref(), handshake).await {
                                Ok(conn) => Some(Ok(conn)),
                                Err(e) => {
                                    tracing::debug!(%addr, error = %e, "TLS handshake failed");
                                    None
                                }
                            }
                        }
                        Err(e) => Some(Err(e)),
                    }
                }
            })
            .buffer_unordered(concurrent.max(1))
            .filter_map(futures::future::ready)
    }
}

/// `transient` is whether an accept error passes by itself: the process
/// or system out of descriptors or memory, or a connection reset before
/// it was accepted.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// `serve_http` serves `router` on `listener` over HTTP/1.1, with the
/// header read deadline of its limits, until `stop` changes; then it lets
/// open requests finish for up to `drain`.
///
/// # Errors
///
/// When the listener fails.
pub async fn serve_http(
    listener: GatedListener,
    router: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(listener.gate.limits.header);
    let handshake = listener.gate.limits.header;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (io, addr) = accepted?;
                let (router, builder, graceful, tls) =
                    (router.clone(), builder.clone(), graceful.watcher(), tls.clone());
                tokio::spawn(async move {
                    let conn = match crate::tls::accept(io, addr, tls.as_ref(), handshake).await {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::debug!(%addr, error = %e, "TLS handshake failed");
                            return;
                        }
                    };
                    // Each request carries who is at the other end, for
                    // the access check.
                    let peer = conn.peer().clone();
                    let service = tower::ServiceBuilder::new()
                        .map_request(move |mut r: axum::http::Request<_>| {
                            r.extensions_mut().insert(peer.clone());
                            r
                        })
                        .service(router);
                    let service = hyper_util::service::TowerToHyperService::new(service);
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(conn), service));
                    // A peer that goes away or times out ends its
                    // connection; nothing more to do.
                    let _ = conn.await;
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_caps_each_peer_and_the_total_and_frees_on_drop() {
        let gate = Gate::new(Limits {
            max_connections: 3,
            max_per_peer: 2,
            ..Limits::default()
        });
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let a1 = gate.admit(a).expect("first from a");
        let _a2 = gate.admit(a).expect("second from a");
        assert!(gate.admit(a).is_none(), "a third from one peer");
        let _b1 = gate.admit(b).expect("first from b");
        assert!(gate.admit(b).is_none(), "a fourth in all");
        assert_eq!((gate.open(), gate.refused()), (3, 2));
        drop(a1);
        assert!(gate.admit(b).is_some(), "a place freed");
    }
}
