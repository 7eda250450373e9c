//! The datagram socket the [`Runner`](crate::Runner) drives: an
//! embassy-net [`UdpSocket`], or any other [`Socket`] (the tests use an
//! in-memory network). [`bind`] makes the UDP socket over buffers of a
//! visible size, [`SocketBuffers`].
//!
//! Peers are addressed by [`core::net::SocketAddr`], which is what
//! `dispatch-std` nodes use over UDP: the addresses the core gossips
//! encode the same on servers and devices.

use core::net::SocketAddr;

use embassy_net::udp::{self, BindError, PacketMetadata, UdpSocket};
use embassy_net::{IpAddress, IpEndpoint, Stack};

/// The memory of a UDP socket: `PACKETS` datagrams each way, in `RX` bytes
/// received and `TX` bytes to send. The defaults hold two full-size
/// datagrams from servers (1472 bytes each) and a burst of the device's own
/// (512 bytes with `Config::small()`). Give it static storage, for example
/// `ConstStaticCell::new(SocketBuffers::new())` from `static_cell`, so it
/// takes no stack.
pub struct SocketBuffers<const PACKETS: usize = 8, const RX: usize = 4096, const TX: usize = 2048> {
    rx_meta: [PacketMetadata; PACKETS],
    rx: [u8; RX],
    tx_meta: [PacketMetadata; PACKETS],
    tx: [u8; TX],
}

impl<const PACKETS: usize, const RX: usize, const TX: usize> SocketBuffers<PACKETS, RX, TX> {
    /// Empty buffers.
    pub const fn new() -> Self {
        SocketBuffers {
            rx_meta: [PacketMetadata::EMPTY; PACKETS],
            rx: [0; RX],
            tx_meta: [PacketMetadata::EMPTY; PACKETS],
            tx: [0; TX],
        }
    }
}

impl<const PACKETS: usize, const RX: usize, const TX: usize> Default
    for SocketBuffers<PACKETS, RX, TX>
{
    fn default() -> Self {
        Self::new()
    }
}

/// A UDP socket on `stack` over `buffers`, bound to `port`.
pub fn bind<'a, const PACKETS: usize, const RX: usize, const TX: usize>(
    stack: Stack<'a>,
    buffers: &'a mut SocketBuffers<PACKETS, RX, TX>,
    port: u16,
) -> Result<UdpSocket<'a>, BindError> {
    let b = buffers;
    let mut socket = UdpSocket::new(stack, &mut b.rx_meta, &mut b.rx, &mut b.tx_meta, &mut b.tx);
    socket.bind(port)?;
    Ok(socket)
}

/// Why a datagram was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// No route to the address, or its address family is not built in
    /// (IPv6 needs the `ipv6` feature).
    Unreachable,
    /// The datagram does not fit the socket's transmit buffer.
    TooLarge,
    /// The socket is not bound to a port.
    NotBound,
}

/// Why a receive gave no datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// The datagram was longer than the receive buffer and was dropped.
    Truncated,
}

/// A bound datagram socket.
///
/// Futures need not be `Send`: the runner and the handles live on one
/// executor.
#[allow(async_fn_in_trait)]
pub trait Socket {
    /// Sends `data` to `to`, waiting for room in the transmit buffer.
    async fn send_to(&mut self, data: &[u8], to: SocketAddr) -> Result<(), SendError>;
    /// Waits for a datagram; returns its length in `buf` and its sender.
    /// Dropping the future before it completes loses nothing.
    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddr), RecvError>;
}

impl Socket for UdpSocket<'_> {
    async fn send_to(&mut self, data: &[u8], to: SocketAddr) -> Result<(), SendError> {
        let to = endpoint(to).ok_or(SendError::Unreachable)?;
        UdpSocket::send_to(self, data, to)
            .await
            .map_err(|e| match e {
                udp::SendError::NoRoute => SendError::Unreachable,
                udp::SendError::PacketTooLarge => SendError::TooLarge,
                udp::SendError::SocketNotBound => SendError::NotBound,
            })
    }

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddr), RecvError> {
        match UdpSocket::recv_from(self, buf).await {
            Ok((len, meta)) => Ok((len, SocketAddr::from(meta.endpoint))),
            Err(udp::RecvError::Truncated) => Err(RecvError::Truncated),
        }
    }
}

/// The embassy-net endpoint of `addr`, if its family is built in.
fn endpoint(addr: SocketAddr) -> Option<IpEndpoint> {
    match addr {
        SocketAddr::V4(a) => Some(IpEndpoint::new(IpAddress::Ipv4(*a.ip()), a.port())),
        #[cfg(feature = "ipv6")]
        SocketAddr::V6(a) => Some(IpEndpoint::new(IpAddress::Ipv6(*a.ip()), a.port())),
        #[cfg(not(feature = "ipv6"))]
        SocketAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn addresses_round_trip_through_embassy_endpoints() {
        let a = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 168, 69, 1), 7000));
        let e = endpoint(a).expect("IPv4 is always built in");
        assert_eq!(SocketAddr::from(e), a);
    }
}
