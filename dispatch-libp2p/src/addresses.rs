//! Where cluster peers can be dialled: a bounded book of addresses.
//!
//! Filled from seeds, from the addresses this node dialled successfully,
//! and from the peer lists members send each other. Peer lists are hostile
//! input: the book holds at most `capacity` peers of
//! [`MAX_LISTED_ADDRS`] addresses each, and a full book makes room by
//! forgetting a peer that is not connected.

use std::collections::HashMap;

use libp2p::{Multiaddr, PeerId};

use crate::codec::MAX_LISTED_ADDRS;

/// Dialable addresses by peer, bounded.
#[derive(Debug)]
pub(crate) struct AddressBook {
    capacity: usize,
    by_peer: HashMap<PeerId, Vec<Multiaddr>>,
}

impl AddressBook {
    pub(crate) fn new(capacity: usize) -> Self {
        AddressBook {
            capacity: capacity.max(1),
            by_peer: HashMap::new(),
        }
    }

    /// Adds `addr` for `peer` (first, as the freshest). Returns false when
    /// the book is full of connected peers and `peer` is new.
    pub(crate) fn add(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        is_connected: impl Fn(&PeerId) -> bool,
    ) -> bool {
        if !self.by_peer.contains_key(&peer) && self.by_peer.len() >= self.capacity {
            let Some(spare) = self.by_peer.keys().find(|p| !is_connected(p)).copied() else {
                return false;
            };
            self.by_peer.remove(&spare);
        }
        let addrs = self.by_peer.entry(peer).or_default();
        addrs.retain(|a| *a != addr);
        addrs.insert(0, addr);
        addrs.truncate(MAX_LISTED_ADDRS);
        true
    }

    /// The addresses known for `peer`, freshest first.
    pub(crate) fn get(&self, peer: &PeerId) -> &[Multiaddr] {
        self.by_peer.get(peer).map_or(&[], Vec::as_slice)
    }

    /// Forgets `addr` of `peer`, which failed to dial.
    pub(crate) fn remove(&mut self, peer: &PeerId, addr: &Multiaddr) {
        if let Some(addrs) = self.by_peer.get_mut(peer) {
            addrs.retain(|a| a != addr);
            if addrs.is_empty() {
                self.by_peer.remove(peer);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_peer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use std::collections::HashSet;

    fn peer() -> PeerId {
        Keypair::generate_ed25519().public().to_peer_id()
    }

    #[test]
    fn a_full_book_forgets_a_disconnected_peer_never_a_connected_one() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let (a, b, c) = (peer(), peer(), peer());
        let mut book = AddressBook::new(2);
        let mut connected = HashSet::from([a]);
        assert!(book.add(a, addr.clone(), |p| connected.contains(p)));
        assert!(book.add(b, addr.clone(), |p| connected.contains(p)));
        assert!(book.add(c, addr.clone(), |p| connected.contains(p)));
        assert_eq!(book.len(), 2);
        assert!(!book.get(&a).is_empty(), "the connected peer is kept");
        assert!(book.get(&b).is_empty(), "the disconnected one made room");
        connected.insert(c);
        assert!(
            !book.add(peer(), addr, |p| connected.contains(p)),
            "no room left"
        );
        assert_eq!(book.len(), 2);
    }

    #[test]
    fn addresses_per_peer_are_bounded_and_freshest_first() {
        let p = peer();
        let mut book = AddressBook::new(4);
        for port in 0..20u16 {
            book.add(
                p,
                format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap(),
                |_| false,
            );
        }
        assert_eq!(book.get(&p).len(), MAX_LISTED_ADDRS);
        assert_eq!(
            book.get(&p)[0],
            "/ip4/127.0.0.1/tcp/19".parse::<Multiaddr>().unwrap()
        );
        let first = book.get(&p)[0].clone();
        book.remove(&p, &first);
        assert_eq!(book.get(&p).len(), MAX_LISTED_ADDRS - 1);
    }
}
