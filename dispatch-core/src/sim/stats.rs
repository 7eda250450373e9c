//! What the simulated network counted.

use core::ops::AddAssign;

/// Datagrams that did not arrive, by reason. Counted against the node that
/// sent them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    /// Lost by the link's random loss.
    pub loss: u64,
    /// Blocked by a partition.
    pub partition: u64,
    /// The receiver was down when the datagram arrived, or the sender
    /// crashed while it was in flight.
    pub crashed: u64,
    /// Larger than the MTU (or than the buffer the node was lent): a bug in
    /// the node. Counted once per transmit, not per destination.
    pub oversize: u64,
    /// Addressed to a node that does not exist: a bug in the node.
    pub no_route: u64,
}

impl Drops {
    /// All drops, whatever the reason.
    pub fn total(&self) -> u64 {
        self.loss + self.partition + self.crashed + self.oversize + self.no_route
    }
}

impl AddAssign for Drops {
    fn add_assign(&mut self, o: Drops) {
        self.loss += o.loss;
        self.partition += o.partition;
        self.crashed += o.crashed;
        self.oversize += o.oversize;
        self.no_route += o.no_route;
    }
}

/// Traffic counters of one node, kept across its restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Transmits the node returned from `poll_transmit`.
    pub transmits: u64,
    /// Datagrams put on the wire: one per destination, so a broadcast to
    /// seven peers counts seven. Includes those later lost or blocked.
    pub sent_datagrams: u64,
    /// Bytes of [`sent_datagrams`](NodeStats::sent_datagrams).
    pub sent_bytes: u64,
    /// Datagrams delivered to the node.
    pub received_datagrams: u64,
    /// Bytes of [`received_datagrams`](NodeStats::received_datagrams).
    pub received_bytes: u64,
    /// Extra copies the network made of datagrams this node sent.
    pub duplicated: u64,
    /// Datagrams this node sent that did not arrive.
    pub dropped: Drops,
}

impl AddAssign for NodeStats {
    fn add_assign(&mut self, o: NodeStats) {
        self.transmits += o.transmits;
        self.sent_datagrams += o.sent_datagrams;
        self.sent_bytes += o.sent_bytes;
        self.received_datagrams += o.received_datagrams;
        self.received_bytes += o.received_bytes;
        self.duplicated += o.duplicated;
        self.dropped += o.dropped;
    }
}
