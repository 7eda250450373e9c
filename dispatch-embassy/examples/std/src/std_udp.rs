//! A [`Socket`] over the host's own UDP stack (async-io), for running the
//! device on loopback beside servers without a tap device or root: what the
//! heap report does.

use std::net::{SocketAddr, UdpSocket};

use async_io::Async;
use dispatch_embassy::socket::{RecvError, SendError};
use dispatch_embassy::Socket;

/// A bound host UDP socket.
pub struct StdUdp(Async<UdpSocket>);

impl StdUdp {
    /// Binds `addr`.
    pub fn bind(addr: SocketAddr) -> std::io::Result<StdUdp> {
        Async::<UdpSocket>::bind(addr).map(StdUdp)
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}

impl Socket for StdUdp {
    async fn send_to(&mut self, data: &[u8], to: SocketAddr) -> Result<(), SendError> {
        match self.0.send_to(data, to).await {
            Ok(_) => Ok(()),
            Err(_) => Err(SendError::Unreachable),
        }
    }

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<(usize, SocketAddr), RecvError> {
        loop {
            // An error here is an ICMP report about an earlier send (port
            // unreachable): nothing was received; wait for a datagram.
            if let Ok(received) = self.0.recv_from(buf).await {
                return Ok(received);
            }
        }
    }
}
