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
    /// In the clear, to a node with a keyring.
    Unsealed,
    /// Sealed with a key id this node does not hold (retired, not yet
    /// added, or this node has no keyring).
    UnknownKey,
    /// Sealed, and the tag does not verify: forged, altered, sealed with
    /// another key under a known id, or written for an earlier incarnation
    /// of this node.
    BadTag,
    /// In the clear, written for an earlier incarnation of this node.
    NotForUs,
    /// Neither written for this incarnation nor from a peer known in the
    /// incarnation it names, and not a heartbeat: a stranger is greeted
    /// when it sends a heartbeat, and believed in nothing until it answers.
    Unconfirmed,
}

/// Number of [`DropReason`]s.
const REASONS: usize = 14;

impl DropReason {
    /// Every reason, in the order of their counters.
    pub const ALL: [DropReason; REASONS] = [
        DropReason::Malformed,
        DropReason::Version,
        DropReason::ForeignCluster,
        DropReason::StaleIncarnation,
        DropReason::Replayed,
        DropReason::TooManyPeers,
        DropReason::Refused,
        DropReason::BadChunk,
        DropReason::UnknownPeer,
        DropReason::Unsealed,
        DropReason::UnknownKey,
        DropReason::BadTag,
        DropReason::NotForUs,
        DropReason::Unconfirmed,
    ];

    /// Whether the datagram itself is bad, whoever receives it and whatever
    /// they know: not a Dispatch datagram, another cluster's, in the clear
    /// where a key is required, or sealed with a tag that does not verify.
    /// A relaying transport (gossipsub) rejects such a message and penalises
    /// whoever relayed it; the other reasons depend on what this node knows
    /// (stale, replayed, a full table, a stranger), so the message is only
    /// ignored: not forwarded, and nobody is blamed.
    pub fn is_invalid(self) -> bool {
        matches!(
            self,
            DropReason::Malformed
                | DropReason::ForeignCluster
                | DropReason::Unsealed
                | DropReason::BadTag
        )
    }
}

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
    /// Calls and casts this node started.
    pub calls_started: u64,
    /// Calls that got their reply.
    pub calls_completed: u64,
    /// Calls that failed otherwise than by timing out (refused, node down,
    /// left).
    pub calls_failed: u64,
    /// Calls with no reply before their deadline.
    pub calls_timed_out: u64,
    /// Casts never acknowledged before their deadline.
    pub casts_unconfirmed: u64,
    /// Requests sent again for want of a reply or acknowledgement.
    pub requests_resent: u64,
    /// Requests handed to the application.
    pub requests_handled: u64,
    /// Copies of requests already handed on: answered, never handed on
    /// again.
    pub duplicate_requests: u64,
    /// Copies of requests their caller had already finished with.
    pub stale_requests: u64,
    /// Requests refused (no such instance, too large, busy).
    pub requests_refused: u64,
    /// Replies sent (copies not counted).
    pub replies_sent: u64,
    /// Replies for calls no longer waited on (copies, or after a timeout).
    pub late_replies: u64,
    /// Heartbeats from strangers (nodes joining, or peers that restarted)
    /// answered with a greeting written for the incarnation they claim.
    pub strangers_greeted: u64,
    /// Datagrams sealed with the keyring's primary key.
    pub datagrams_sealed: u64,
}

impl Stats {
    /// Datagrams dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Each reason with the datagrams dropped for it.
    pub fn drops(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|&r| (r, self.dropped(r)))
    }

    /// Datagrams dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }

    pub(crate) fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter() {
        let mut s = Stats::default();
        for (k, &r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r as usize, k, "{r:?} is listed in counter order");
            for _ in 0..=k {
                s.drop(r);
            }
        }
        let counts: alloc::vec::Vec<u64> = s.drops().map(|(_, n)| n).collect();
        assert_eq!(counts, (1..=REASONS as u64).collect::<alloc::vec::Vec<_>>());
    }
}
