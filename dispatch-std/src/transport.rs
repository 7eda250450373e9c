//! What the driver needs from a network: send a datagram to a peer, receive
//! the next one. [`Udp`] is the implementation for servers; another crate
//! (libp2p, a simulated network) implements [`Transport`] and reuses the
//! driver and the [`Registry`](crate::Registry) API unchanged.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;

use dispatch_core::node::{self, RecvError};
use dispatch_core::transmit::Destination;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UdpSocket;

/// A datagram transport the driver moves the core's bytes over.
///
/// The driver calls [`Transport::recv`] inside `tokio::select!`, so it must
/// be cancel-safe: a `recv` future dropped before it completes loses no
/// datagram. `send` may be called from several tasks at once.
pub trait Transport: Send + Sync + 'static {
    /// A peer's address, as the core stores and gossips it, and as the
    /// `dispatch` program shows it (`Display`).
    type Addr: Clone
        + Ord
        + fmt::Debug
        + fmt::Display
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;

    /// Receives the next datagram into `buf`: its length and its sender.
    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<(usize, Self::Addr)>> + Send;

    /// Sends `datagram` to `to`. Delivery is best effort: the core resends
    /// what matters.
    fn send(
        &self,
        to: &Destination<Self::Addr>,
        datagram: &[u8],
    ) -> impl Future<Output = io::Result<()>> + Send;

    /// The address peers reach this transport at.
    fn local_addr(&self) -> io::Result<Self::Addr>;

    /// Told, right after the node has handled the datagram [`Transport::recv`]
    /// returned last, what it made of it: `Ok` if the node took it, or why
    /// it dropped it (already counted in the node's stats). A transport that
    /// relays messages (gossipsub) forwards only what the node took. The
    /// default does nothing.
    fn judged(&self, verdict: Result<(), RecvError>) {
        let _ = verdict;
    }

    /// Adjusts the node's configuration to what the transport does (for
    /// example `transport_broadcasts` and `reliable_transport` for libp2p).
    /// The default changes nothing: datagrams that may be lost.
    fn configure(&self, config: &mut node::Config) {
        let _ = config;
    }
}

/// UDP on a tokio socket: peers are `SocketAddr`s.
#[derive(Debug)]
pub struct Udp {
    socket: UdpSocket,
}

impl Udp {
    /// Binds a UDP socket at `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Ok(Udp {
            socket: UdpSocket::bind(addr).await?,
        })
    }

    /// Wraps a socket bound already.
    pub fn from_socket(socket: UdpSocket) -> Self {
        Udp { socket }
    }
}

impl Transport for Udp {
    type Addr = SocketAddr;

    fn recv(&self, buf: &mut [u8]) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send {
        // `UdpSocket::recv_from` is cancel-safe.
        self.socket.recv_from(buf)
    }

    async fn send(&self, to: &Destination<SocketAddr>, datagram: &[u8]) -> io::Result<()> {
        match to {
            Destination::Peer(addr) => self.socket.send_to(datagram, addr).await.map(|_| ()),
            // The node emits broadcasts only when `transport_broadcasts`
            // is set, which UDP never does.
            Destination::Broadcast => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "UDP has no cluster broadcast",
            )),
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }
}
