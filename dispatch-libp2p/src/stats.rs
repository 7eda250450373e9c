//! Counters of the behaviour's own work; the core counts what it dropped
//! and why in the node's stats.

use std::sync::{Arc, Mutex, PoisonError};

/// Counters of the behaviour's own work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Gossip messages handed to the core.
    pub gossip_received: u64,
    /// Gossip messages the core took: forwarded.
    pub gossip_accepted: u64,
    /// Gossip messages refused as junk, foreign or forged: not forwarded,
    /// and held against the peer that relayed them.
    pub gossip_rejected: u64,
    /// Gossip messages dropped as stale, replayed or unexpected: not
    /// forwarded.
    pub gossip_ignored: u64,
    /// Gossip messages longer than `max_datagram_bytes`: rejected unread.
    /// (Past twice that, gossipsub's own codec drops the frame first.)
    pub gossip_oversized: u64,
    /// Datagrams received from one peer.
    pub requests_received: u64,
    /// Requests the codec refused: oversized, or not a frame.
    pub requests_refused: u64,
    /// Requests that failed to arrive: undecodable, oversized, timed out.
    pub requests_failed: u64,
    /// Datagrams that could not be sent to their peer (no address, dial
    /// failed, connection closed).
    pub sends_failed: u64,
    /// Broadcasts that reached no peer (none subscribed yet) or failed.
    pub publishes_failed: u64,
    /// Messages dropped because the driver was behind.
    pub inbox_full: u64,
    /// Peer lists received.
    pub peer_lists_received: u64,
    /// Dials started towards members learned from peer lists or seeds.
    pub dials: u64,
}

/// The behaviour's counters, readable from outside its Swarm
/// ([`Behaviour::stats_handle`](crate::Behaviour::stats_handle)).
#[derive(Debug, Clone, Default)]
pub struct SharedStats(Arc<Mutex<Stats>>);

impl SharedStats {
    /// The counters now.
    pub fn get(&self) -> Stats {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }
}
