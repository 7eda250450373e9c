//! Counters a node keeps of its traffic and of what it refused.

/// Why an incoming datagram was dropped. Each reason has its own counter in
/// [`Stats::dropped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a Dispatch datagram, or its body did not decode.
    Malformed,
    /// A wire version this build does not speak.
    Version,
    /// Another cluster's datagram.
    ForeignCluster,
    /// From an incarnation older than the one known for that name.
    StaleIncarnation,
    /// A heartbeat that did not advance its sequence: replayed or reordered.
    Replayed,
    /// The peer table is full.
    TooManyPeers,
    /// The data would exceed a presence limit, or names our own replica.
    Refused,
    /// A chunk for no transfer we know, or that does not fit its transfer.
    BadChunk,
    /// A message from a peer we do not know (and that cannot introduce it).
    UnknownPeer,
}

/// Number of [`DropReason`]s.
const REASONS: usize = 9;

/// Counters of a node, read with [`Node::stats`](super::Node::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to the node.
    pub datagrams_in: u64,
    /// Bytes handed to the node.
    pub bytes_in: u64,
    /// Datagrams the node wrote (a broadcast counts once).
    pub datagrams_out: u64,
    /// Bytes the node wrote.
    pub bytes_out: u64,
    /// Dropped datagrams, indexed by [`DropReason`]: use [`Stats::dropped`].
    drops: [u64; REASONS],
    /// Deltas merged.
    pub deltas_merged: u64,
    /// Deltas that did not follow on from what we had (a catch-up followed).
    pub delta_gaps: u64,
    /// Catch-up requests sent.
    pub catch_ups_sent: u64,
    /// Transfers started towards peers.
    pub transfers_sent: u64,
    /// Transfers received whole and merged.
    pub transfers_received: u64,
    /// Transfers abandoned (limit, timeout or undecodable).
    pub transfers_failed: u64,
    /// Chunks sent again on request.
    pub chunks_resent: u64,
}

impl Stats {
    /// Datagrams dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Datagrams dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }

    pub(crate) fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }
}
