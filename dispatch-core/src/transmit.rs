//! What the node asks its driver to send.
//!
//! The node never owns a socket. It encodes each datagram into a buffer the
//! driver lends it (`poll_transmit(now, &mut buf)`) and returns a [`Transmit`]
//! saying how many bytes it wrote and where they go.

/// Where a transmit goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination<A> {
    /// One peer.
    Peer(A),
    /// Every peer of the cluster, for transports that broadcast (for example
    /// gossipsub). The node only emits this when configured for a
    /// broadcasting transport.
    Broadcast,
}

/// A datagram the node wrote into the caller's buffer: `buf[..len]` goes to
/// `destination`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<A> {
    /// Where the datagram goes.
    pub destination: Destination<A>,
    /// How many bytes at the start of the caller's buffer make up the
    /// datagram.
    pub len: usize,
}
