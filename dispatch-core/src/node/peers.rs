//! The peers a node knows, and the failure detector that marks them down.
//!
//! A peer is a node we have heard from directly. Addresses learned from
//! seeds or from other peers' gossip are contacts: we send them heartbeats
//! until they answer, and only then do they become peers. A peer silent for
//! `down_after` is down; silent for `permanent_down_after`, it is forgotten.
//!
//! Only a datagram written for this node's current incarnation, or one from
//! a peer already known in the incarnation it names, makes or changes a
//! peer. Anything else from a stranger is answered (at most once per
//! `retry_after` per address, from a bounded table of strangers evicted
//! oldest first) with a greeting written for the incarnation it claims,
//! and otherwise believed in nothing: a name that never answers that
//! greeting never takes a place in the peer table, so strangers cannot
//! fill it, and a datagram replayed to a node that restarted since it was
//! captured cannot bring anyone back.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

use super::replay::ReplayWindow;
use crate::presence::ReplicaId;
use crate::time::Instant;

/// Whether a peer is answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStatus {
    /// Heard from within the down period.
    Up,
    /// Silent for the down period; its services are hidden.
    Down,
}

/// What the node knows of one peer.
#[derive(Debug, Clone)]
pub struct Peer<A> {
    /// Name and current incarnation.
    pub id: ReplicaId,
    /// Where it was last heard from.
    pub addr: A,
    /// When it was last heard from.
    pub last_heard: Instant,
    /// Up or down.
    pub status: PeerStatus,
    /// Highest heartbeat sequence seen from this incarnation.
    pub(crate) last_seq: u64,
    /// Its own clock as its last heartbeat stated it.
    pub(crate) clock: u64,
    /// While we lack some of its changes: when to ask it for them (first
    /// after a short wait for reordered deltas, then again if unanswered).
    pub(crate) ask_at: Option<Instant>,
    /// Nonces of this incarnation already accepted (sealed traffic only).
    pub(crate) window: ReplayWindow,
    /// When we last answered its introduction with one of ours (in the
    /// clear, where only introductions are addressed).
    pub(crate) introduced_at: Option<Instant>,
}

/// How a heartbeat or other direct message changed the peer table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Heard {
    /// A name we did not know; `was_contact` if we had been greeting its
    /// address (it is a seed or was gossiped to us).
    New {
        /// We were greeting its address.
        was_contact: bool,
    },
    /// A known peer, unchanged incarnation; `came_back` if it was down.
    Known {
        /// The peer was down and is up again.
        came_back: bool,
    },
    /// A known name with a newer incarnation: the old one is retired.
    Restarted {
        /// The incarnation it replaced.
        old: ReplicaId,
    },
}

/// Why a message was not accepted by the peer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerRefusal {
    /// From an incarnation older than the one we know.
    Stale,
    /// The table is full.
    Full,
}

/// The peer table plus the contacts still to be confirmed.
#[derive(Debug, Clone)]
pub(crate) struct Peers<A> {
    peers: BTreeMap<Box<str>, Peer<A>>,
    /// Addresses to greet (seeds and gossiped peers), with when they were
    /// added; seeds are kept until they answer, others expire.
    contacts: BTreeMap<A, Contact>,
    /// Incarnations that left gracefully: their late or replayed messages
    /// must not bring their entries back. Bounded by `max_peers`.
    departed: BTreeMap<Box<str>, u64>,
    /// The replay windows of peers forgotten after `permanent_down_after`,
    /// by name with their incarnation: a peer that comes back in the same
    /// incarnation gets its window back, so that what was captured before
    /// it was forgotten cannot bring it back. Bounded by `max_peers`.
    forgotten: BTreeMap<Box<str>, (u64, ReplayWindow)>,
    /// Addresses of strangers we greeted, with when: at most `max_peers`,
    /// the oldest evicted first. Never peers until they answer.
    strangers: BTreeMap<A, Instant>,
    max_peers: usize,
}

#[derive(Debug, Clone, Copy)]
struct Contact {
    added: Instant,
    seed: bool,
    /// The incarnation gossip named for it, to address our greetings.
    incarnation: Option<u64>,
}

impl<A: Clone + Ord> Peers<A> {
    pub(crate) fn new(max_peers: usize) -> Self {
        Peers {
            peers: BTreeMap::new(),
            contacts: BTreeMap::new(),
            departed: BTreeMap::new(),
            forgotten: BTreeMap::new(),
            strangers: BTreeMap::new(),
            max_peers,
        }
    }

    /// Records direct news from `id` at `addr`. Refuses an older incarnation
    /// than known, or a new name when the table is full.
    pub(crate) fn heard(
        &mut self,
        now: Instant,
        id: &ReplicaId,
        addr: &A,
    ) -> Result<Heard, PeerRefusal> {
        if self
            .departed
            .get(&*id.name)
            .is_some_and(|&inc| id.incarnation <= inc)
        {
            return Err(PeerRefusal::Stale);
        }
        let was_contact = self.contacts.remove(addr).is_some();
        self.strangers.remove(addr);
        if let Some(peer) = self.peers.get_mut(&*id.name) {
            if id.incarnation < peer.id.incarnation {
                return Err(PeerRefusal::Stale);
            }
            let restarted = id.incarnation > peer.id.incarnation;
            let came_back = peer.status == PeerStatus::Down;
            peer.addr = addr.clone();
            peer.last_heard = now;
            peer.status = PeerStatus::Up;
            if restarted {
                let old = core::mem::replace(&mut peer.id, id.clone());
                peer.last_seq = 0;
                peer.clock = 0;
                peer.ask_at = None;
                peer.window = ReplayWindow::default();
                peer.introduced_at = None;
                return Ok(Heard::Restarted { old });
            }
            return Ok(Heard::Known { came_back });
        }
        if self.peers.len() >= self.max_peers {
            return Err(PeerRefusal::Full);
        }
        let window = match self.forgotten.remove(&*id.name) {
            Some((inc, window)) if inc == id.incarnation => window,
            _ => ReplayWindow::default(),
        };
        self.peers.insert(
            id.name.clone(),
            Peer {
                id: id.clone(),
                addr: addr.clone(),
                last_heard: now,
                status: PeerStatus::Up,
                last_seq: 0,
                clock: 0,
                ask_at: None,
                window,
                introduced_at: None,
            },
        );
        Ok(Heard::New { was_contact })
    }

    /// Whether to greet the stranger at `addr` now: not if we greeted that
    /// address within `gap`. Remembers it, evicting the stranger greeted
    /// longest ago when the table is full.
    pub(crate) fn greet_stranger(&mut self, now: Instant, addr: &A, gap: Duration) -> bool {
        if let Some(&at) = self.strangers.get(addr) {
            if now.saturating_duration_since(at) < gap {
                return false;
            }
        } else if self.strangers.len() >= self.max_peers {
            let oldest = self
                .strangers
                .iter()
                .min_by_key(|(_, &at)| at)
                .map(|(a, _)| a.clone());
            if let Some(a) = oldest {
                self.strangers.remove(&a);
            }
        }
        self.strangers.insert(addr.clone(), now);
        true
    }

    /// The incarnation of the node at `addr`, when a peer or gossip named it.
    pub(crate) fn incarnation_at(&self, addr: &A) -> Option<u64> {
        self.peers
            .values()
            .find(|p| p.addr == *addr)
            .map(|p| p.id.incarnation)
            .or_else(|| self.contacts.get(addr).and_then(|c| c.incarnation))
    }

    /// Remembers an address to greet. Seeds stay until they answer; other
    /// contacts are bounded by the peer limit and expire.
    pub(crate) fn add_contact(
        &mut self,
        now: Instant,
        addr: A,
        seed: bool,
        incarnation: Option<u64>,
    ) {
        if self.peers.values().any(|p| p.addr == addr) {
            return;
        }
        if !seed && self.contacts.len() >= self.max_peers {
            return;
        }
        let entry = self.contacts.entry(addr).or_insert(Contact {
            added: now,
            seed,
            incarnation,
        });
        entry.seed |= seed;
        entry.incarnation = incarnation.or(entry.incarnation);
    }

    /// Whether `id` is an incarnation we must not hear from again: older
    /// than the one we know, or one that left.
    pub(crate) fn is_stale(&self, id: &ReplicaId) -> bool {
        self.departed
            .get(&*id.name)
            .is_some_and(|&inc| id.incarnation <= inc)
            || self
                .peers
                .get(&*id.name)
                .is_some_and(|p| id.incarnation < p.id.incarnation)
    }

    /// Whether a gossiped peer is news to us.
    pub(crate) fn is_news(&self, id: &ReplicaId) -> bool {
        match self.peers.get(&*id.name) {
            Some(p) => id.incarnation > p.id.incarnation,
            None => true,
        }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Peer<A>> {
        self.peers.get(name)
    }

    /// Whether a sealed datagram of `id` with `nonce` is new: checked
    /// against the replay window of that incarnation, whether it is a peer
    /// or was forgotten; the first nonce of an incarnation never seen is
    /// new (its window starts when it becomes a peer).
    pub(crate) fn accept_nonce(&mut self, id: &ReplicaId, nonce: u128) -> bool {
        if let Some(p) = self.peers.get_mut(&*id.name) {
            if p.id.incarnation == id.incarnation {
                return p.window.accept(nonce);
            }
        }
        match self.forgotten.get_mut(&*id.name) {
            Some((inc, window)) if *inc == id.incarnation => window.accept(nonce),
            _ => true,
        }
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut Peer<A>> {
        self.peers.get_mut(name)
    }

    /// Forgets a peer that left gracefully, and refuses its incarnation
    /// from now on.
    pub(crate) fn depart(&mut self, id: &ReplicaId) {
        self.peers.remove(&*id.name);
        if self.departed.len() >= self.max_peers && !self.departed.contains_key(&*id.name) {
            self.departed.pop_first();
        }
        self.departed.insert(id.name.clone(), id.incarnation);
    }

    /// Peers in name order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Peer<A>> {
        self.peers.values()
    }

    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// Contacts still to be confirmed, in address order, with the
    /// incarnation gossip named for them.
    pub(crate) fn contacts(&self) -> impl Iterator<Item = (&A, Option<u64>)> {
        self.contacts.iter().map(|(a, c)| (a, c.incarnation))
    }

    /// Applies the failure detector at `now`: peers silent for `down_after`
    /// go down, peers silent for `permanent_after` are removed, contacts that
    /// are not seeds expire after `permanent_after`. Returns what changed.
    pub(crate) fn expire(
        &mut self,
        now: Instant,
        down_after: Duration,
        permanent_after: Duration,
    ) -> (Vec<ReplicaId>, Vec<ReplicaId>) {
        let mut downed = Vec::new();
        let mut gone = Vec::new();
        for peer in self.peers.values_mut() {
            let silent = now.saturating_duration_since(peer.last_heard);
            if silent >= permanent_after {
                gone.push(peer.id.clone());
            } else if silent >= down_after && peer.status == PeerStatus::Up {
                peer.status = PeerStatus::Down;
                downed.push(peer.id.clone());
            }
        }
        for id in &gone {
            if let Some(peer) = self.peers.remove(&*id.name) {
                if self.forgotten.len() >= self.max_peers && !self.forgotten.contains_key(&*id.name)
                {
                    self.forgotten.pop_first();
                }
                self.forgotten
                    .insert(id.name.clone(), (id.incarnation, peer.window));
            }
        }
        self.contacts
            .retain(|_, c| c.seed || now.saturating_duration_since(c.added) < permanent_after);
        self.strangers
            .retain(|_, at| now.saturating_duration_since(*at) < permanent_after);
        (downed, gone)
    }

    /// The next instant at which [`Peers::expire`] has something to do.
    pub(crate) fn next_expiry(
        &self,
        down_after: Duration,
        permanent_after: Duration,
    ) -> Option<Instant> {
        let peers = self.peers.values().map(|p| match p.status {
            PeerStatus::Up => p.last_heard + down_after,
            PeerStatus::Down => p.last_heard + permanent_after,
        });
        let contacts = self
            .contacts
            .values()
            .filter(|c| !c.seed)
            .map(|c| c.added + permanent_after);
        peers.chain(contacts).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, inc: u64) -> ReplicaId {
        ReplicaId::new(name, inc)
    }

    const DOWN: Duration = Duration::from_secs(10);
    const GONE: Duration = Duration::from_secs(60);

    #[test]
    fn silence_downs_then_forgets_and_news_restores() {
        let mut p: Peers<u8> = Peers::new(4);
        let t0 = Instant::ZERO;
        assert_eq!(
            p.heard(t0, &id("a", 1), &1),
            Ok(Heard::New { was_contact: false })
        );
        assert_eq!(p.next_expiry(DOWN, GONE), Some(t0 + DOWN));
        let (down, gone) = p.expire(t0 + DOWN, DOWN, GONE);
        assert_eq!((down.len(), gone.len()), (1, 0));
        assert_eq!(p.get("a").unwrap().status, PeerStatus::Down);
        assert_eq!(
            p.heard(t0 + DOWN, &id("a", 1), &1),
            Ok(Heard::Known { came_back: true })
        );
        let (down, gone) = p.expire(t0 + DOWN + GONE, DOWN, GONE);
        assert_eq!((down.len(), gone.len()), (0, 1));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn incarnations_only_move_forward() {
        let mut p: Peers<u8> = Peers::new(4);
        p.heard(Instant::ZERO, &id("a", 5), &1).unwrap();
        assert_eq!(
            p.heard(Instant::ZERO, &id("a", 4), &1),
            Err(PeerRefusal::Stale)
        );
        assert_eq!(
            p.heard(Instant::ZERO, &id("a", 6), &2),
            Ok(Heard::Restarted { old: id("a", 5) })
        );
        assert_eq!(p.get("a").unwrap().addr, 2);
        assert!(!p.is_news(&id("a", 6)));
        assert!(p.is_news(&id("a", 7)));
        p.depart(&id("a", 6));
        assert_eq!(
            p.heard(Instant::ZERO, &id("a", 6), &2),
            Err(PeerRefusal::Stale)
        );
        assert_eq!(
            p.heard(Instant::ZERO, &id("a", 7), &2),
            Ok(Heard::New { was_contact: false })
        );
    }

    #[test]
    fn table_is_bounded_and_contacts_expire_but_seeds_stay() {
        let mut p: Peers<u8> = Peers::new(2);
        p.heard(Instant::ZERO, &id("a", 1), &1).unwrap();
        p.heard(Instant::ZERO, &id("b", 1), &2).unwrap();
        assert_eq!(
            p.heard(Instant::ZERO, &id("c", 1), &3),
            Err(PeerRefusal::Full)
        );
        p.add_contact(Instant::ZERO, 9, true, None);
        p.add_contact(Instant::ZERO, 8, false, Some(4));
        p.add_contact(Instant::ZERO, 1, false, None);
        let addrs = |p: &Peers<u8>| p.contacts().map(|(a, _)| *a).collect::<Vec<_>>();
        assert_eq!(addrs(&p), [8, 9]);
        assert_eq!(p.incarnation_at(&8), Some(4));
        assert_eq!(p.incarnation_at(&1), Some(1), "a peer's own incarnation");
        p.expire(Instant::ZERO + GONE, DOWN, GONE);
        assert_eq!(addrs(&p), [9]);
    }

    #[test]
    fn a_forgotten_peer_keeps_its_replay_window_for_its_incarnation() {
        let mut p: Peers<u8> = Peers::new(4);
        let t0 = Instant::ZERO;
        p.heard(t0, &id("a", 1), &1).unwrap();
        assert!(p.accept_nonce(&id("a", 1), 5));
        assert!(!p.accept_nonce(&id("a", 1), 5), "a replay");
        let (_, gone) = p.expire(t0 + GONE, DOWN, GONE);
        assert_eq!(gone.len(), 1);
        // Forgotten: what was captured from it is still a replay, while its
        // new datagrams are not, and it comes back with its window.
        assert!(!p.accept_nonce(&id("a", 1), 5));
        assert!(p.accept_nonce(&id("a", 1), 6));
        assert_eq!(
            p.heard(t0 + GONE, &id("a", 1), &1),
            Ok(Heard::New { was_contact: false })
        );
        assert!(!p.accept_nonce(&id("a", 1), 6));
        // A new incarnation starts afresh.
        assert!(p.accept_nonce(&id("a", 2), 5));
    }

    #[test]
    fn strangers_are_greeted_sparingly_from_a_bounded_table() {
        let mut p: Peers<u16> = Peers::new(3);
        let gap = Duration::from_millis(500);
        let t0 = Instant::ZERO;
        assert!(p.greet_stranger(t0, &1, gap));
        assert!(!p.greet_stranger(t0 + Duration::from_millis(100), &1, gap));
        assert!(p.greet_stranger(t0 + gap, &1, gap));
        // A flood of strangers evicts the oldest: a new address is always
        // greeted at once, and never fills the peer table.
        for a in 2..1000u16 {
            assert!(p.greet_stranger(t0 + gap, &a, gap));
        }
        assert_eq!(p.strangers.len(), 3);
        assert_eq!(p.len(), 0);
        assert!(p.greet_stranger(t0 + gap, &5000, gap));
    }
}
