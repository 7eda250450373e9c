//! The peers a node knows, and the failure detector that marks them down.
//!
//! A peer is a node we have heard from directly. Addresses learned from
//! seeds or from other peers' gossip are contacts: we send them heartbeats
//! until they answer, and only then do they become peers. A peer silent for
//! `down_after` is down; silent for `permanent_down_after`, it is forgotten.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::time::Duration;

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
}

/// How a heartbeat or other direct message changed the peer table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Heard {
    /// A name we did not know.
    New,
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
    max_peers: usize,
}

#[derive(Debug, Clone, Copy)]
struct Contact {
    added: Instant,
    seed: bool,
}

impl<A: Clone + Ord> Peers<A> {
    pub(crate) fn new(max_peers: usize) -> Self {
        Peers {
            peers: BTreeMap::new(),
            contacts: BTreeMap::new(),
            departed: BTreeMap::new(),
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
        self.contacts.remove(addr);
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
                return Ok(Heard::Restarted { old });
            }
            return Ok(Heard::Known { came_back });
        }
        if self.peers.len() >= self.max_peers {
            return Err(PeerRefusal::Full);
        }
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
            },
        );
        Ok(Heard::New)
    }

    /// Remembers an address to greet. Seeds stay until they answer; other
    /// contacts are bounded by the peer limit and expire.
    pub(crate) fn add_contact(&mut self, now: Instant, addr: A, seed: bool) {
        if self.peers.values().any(|p| p.addr == addr) {
            return;
        }
        if !seed && self.contacts.len() >= self.max_peers {
            return;
        }
        let entry = self
            .contacts
            .entry(addr)
            .or_insert(Contact { added: now, seed });
        entry.seed |= seed;
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

    /// Contacts still to be confirmed, in address order.
    pub(crate) fn contacts(&self) -> impl Iterator<Item = &A> {
        self.contacts.keys()
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
            self.peers.remove(&*id.name);
        }
        self.contacts
            .retain(|_, c| c.seed || now.saturating_duration_since(c.added) < permanent_after);
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
        assert_eq!(p.heard(t0, &id("a", 1), &1), Ok(Heard::New));
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
        assert_eq!(p.heard(Instant::ZERO, &id("a", 7), &2), Ok(Heard::New));
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
        p.add_contact(Instant::ZERO, 9, true);
        p.add_contact(Instant::ZERO, 8, false);
        p.add_contact(Instant::ZERO, 1, false);
        assert_eq!(p.contacts().copied().collect::<Vec<_>>(), [8, 9]);
        p.expire(Instant::ZERO + GONE, DOWN, GONE);
        assert_eq!(p.contacts().copied().collect::<Vec<_>>(), [9]);
    }
}
