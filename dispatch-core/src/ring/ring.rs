//! [`Ring`]: the members of one service type and the routing of keys to them.

use super::claim::{Claim, Claims};
use super::hash::key_hash;
use super::jump::{bucket, fallback_weight, seed};
use super::occupancy::Occupancy;
use super::{Routing, Slot, SlotOutOfRange};
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

/// Rounds of fresh jump buckets a lookup tries before the fallback.
///
/// A round fails when its bucket is vacant (or excluded), which happens with
/// the ring's share of vacant slots `v`; after this many rounds (a share
/// `v^64` of the keys: none in practice at 50% vacant, 0.1% at 90%) the
/// owner is chosen by highest random weight over the usable slots, which is
/// pure and minimal too, but scans every slot.
const ROUNDS: u32 = 64;

/// The slot limit of [`Ring::new`]: slots `0..DEFAULT_SLOT_LIMIT` may be
/// claimed.
pub const DEFAULT_SLOT_LIMIT: Slot = 1 << 20;

/// One member of a ring: the slot it claims and whether it is online.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Member {
    /// The slot the member claimed when it registered.
    pub slot: Slot,
    /// Whether the member is online; offline members are routed to only
    /// with [`Routing::AllowOffline`].
    pub online: bool,
}

/// The members of one service type and the routing of keys to them.
///
/// The routing is a pure function of the member set `{(key, slot, online)}`:
/// two rings holding the same set answer every lookup identically, whatever
/// order the members were inserted and removed in. Each slot is held by its
/// claimant with the smallest key ([`Claim`]); a key goes to the first of
/// its jump buckets, one a round, that a member holds (see the
/// [module docs](super)), so
///
/// - the keys of vacant slots spread evenly over the held ones;
/// - removing (or taking offline) a holder moves only the keys it owned;
/// - adding (or bringing online) a holder moves keys only to it (the
///   highest slot excepted: its removal or arrival changes the range the
///   buckets are drawn in, which moves the few keys whose earlier rounds
///   fell in vacant slots next to it).
///
/// Lookups do not allocate and use integer arithmetic only.
///
/// ```
/// use dispatch_core::ring::{Ring, Routing};
///
/// let mut ring = Ring::new();
/// for name in ["a", "b", "c"] {
///     let slot = ring.free_slot().expect("far below the slot limit");
///     ring.insert(name, slot, true).expect("slot is below the limit");
/// }
/// let owner = ring.lookup(b"file.png", Routing::OnlineOnly).copied();
/// let replicas = ring.lookup_n(b"file.png", 3, Routing::OnlineOnly);
/// assert_eq!(replicas.len(), 3);
/// assert_eq!(replicas.first().copied().copied(), owner);
/// ```
#[derive(Debug, Clone)]
pub struct Ring<K> {
    members: BTreeMap<K, Member>,
    claims: Claims<K>,
    /// Slots with a holder.
    held: Occupancy,
    /// Slots whose holder is online.
    online: Occupancy,
    slot_limit: Slot,
}

impl<K: Ord + Clone> Default for Ring<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Ord + Clone> Ring<K> {
    /// An empty ring accepting slots below [`DEFAULT_SLOT_LIMIT`].
    pub fn new() -> Self {
        Self::with_slot_limit(DEFAULT_SLOT_LIMIT)
    }

    /// An empty ring accepting slots below `slot_limit`. The ring's memory
    /// grows with the largest slot claimed, so a small device may lower it.
    pub fn with_slot_limit(slot_limit: Slot) -> Self {
        Ring {
            members: BTreeMap::new(),
            claims: Claims::default(),
            held: Occupancy::default(),
            online: Occupancy::default(),
            slot_limit,
        }
    }

    /// Adds member `key` claiming `slot`, or updates it if present (a new
    /// slot is a re-claim; the same slot only updates `online`).
    ///
    /// Returns whether the member holds its slot. On error the ring is
    /// unchanged.
    pub fn insert(&mut self, key: K, slot: Slot, online: bool) -> Result<Claim, SlotOutOfRange> {
        if slot >= self.slot_limit {
            return Err(SlotOutOfRange {
                slot,
                limit: self.slot_limit,
            });
        }
        if let Some(m) = self.members.get(&key) {
            if m.slot == slot {
                self.set_online(&key, online);
                return Ok(if self.claims.holder(slot) == Some(&key) {
                    Claim::Holds
                } else {
                    Claim::Contends
                });
            }
            self.remove(&key);
        }
        self.members.insert(key.clone(), Member { slot, online });
        let claim = self.claims.claim(slot, key);
        if claim == Claim::Holds {
            self.held.insert(slot);
            self.online.set(slot, online);
        }
        Ok(claim)
    }

    /// Removes member `key`; returns what it was, `None` if it was not a
    /// member. If it held its slot, the smallest contender takes it over.
    pub fn remove(&mut self, key: &K) -> Option<Member> {
        let m = self.members.remove(key)?;
        if self.claims.release(m.slot, key) {
            let successor_online = self
                .claims
                .holder(m.slot)
                .map(|k| self.members.get(k).is_some_and(|s| s.online));
            match successor_online {
                Some(online) => self.online.set(m.slot, online),
                None => {
                    self.held.remove(m.slot);
                    self.online.remove(m.slot);
                }
            }
        }
        Some(m)
    }

    /// Sets member `key` online or offline; returns `false` if it is not a
    /// member.
    pub fn set_online(&mut self, key: &K, online: bool) -> bool {
        let Some(m) = self.members.get_mut(key) else {
            return false;
        };
        m.online = online;
        if self.claims.holder(m.slot) == Some(key) {
            self.online.set(m.slot, online);
        }
        true
    }

    /// The member that owns `key` (bytes, hashed with [`key_hash`]), `None`
    /// when no member is routable under `routing`.
    #[inline]
    pub fn lookup(&self, key: &[u8], routing: Routing) -> Option<&K> {
        self.lookup_slot(key_hash(key), routing)
            .and_then(|s| self.claims.holder(s))
    }

    /// `n` distinct members for `key`, the owner first, in a stable order;
    /// fewer only when fewer are routable. For a lookup that does not
    /// allocate, see [`lookup_n_slots`](Self::lookup_n_slots).
    pub fn lookup_n(&self, key: &[u8], n: usize, routing: Routing) -> Vec<&K> {
        let mut slots = vec![0 as Slot; n.min(self.routable(routing))];
        let found = self.lookup_n_slots(key_hash(key), routing, &mut slots);
        slots[..found]
            .iter()
            .filter_map(|&s| self.claims.holder(s))
            .collect()
    }

    /// The slot that owns the key whose [`key_hash`] is `hash`.
    #[inline]
    pub fn lookup_slot(&self, hash: u64, routing: Routing) -> Option<Slot> {
        let occ = self.occupancy(routing);
        let max = occ.max()?;
        let first = bucket(seed(hash, 0, 0), max);
        if occ.contains(first) {
            return Some(first);
        }
        // The rounds of a ring with holes, in line: with a share v of the
        // slots vacant, a share v of the lookups comes here.
        for round in 1..ROUNDS {
            let s = bucket(seed(hash, 0, round), max);
            if occ.contains(s) {
                return Some(s);
            }
        }
        Self::fallback(occ, hash, 0, &[])
    }

    /// Fills `out` with distinct slots for the key whose [`key_hash`] is
    /// `hash`, the owner first; returns how many it wrote (`out.len()`, or
    /// the number of routable members if smaller).
    ///
    /// Replica `i` is the owner under independent jump buckets (seeded by
    /// `i`), with the slots of replicas `0..i` treated as vacant. So each
    /// member is in about `n/N` of the lists, and when one member leaves or
    /// joins, a list changes in the position it held or takes, and rarely in
    /// another.
    #[inline]
    pub fn lookup_n_slots(&self, hash: u64, routing: Routing, out: &mut [Slot]) -> usize {
        let occ = self.occupancy(routing);
        let Some(max) = occ.max() else {
            return 0;
        };
        let n = out.len().min(occ.len() as usize);
        for replica in 0..n {
            let (chosen, rest) = out.split_at_mut(replica);
            let first = bucket(seed(hash, replica as u32, 0), max);
            let found = if occ.contains(first) && !chosen.contains(&first) {
                Some(first)
            } else {
                Self::retry(occ, hash, replica as u32, max, chosen)
            };
            match found {
                Some(s) => rest[0] = s,
                // Unreachable: fewer than `occ.len()` slots are chosen.
                None => return replica,
            }
        }
        n
    }

    /// Rounds `1..ROUNDS` of `replica`, each a fresh jump bucket, then
    /// the fallback.
    fn retry(occ: &Occupancy, hash: u64, replica: u32, max: Slot, chosen: &[Slot]) -> Option<Slot> {
        let usable = |s: Slot| occ.contains(s) && !chosen.contains(&s);
        (1..ROUNDS)
            .map(|round| bucket(seed(hash, replica, round), max))
            .find(|&s| usable(s))
            .or_else(|| Self::fallback(occ, hash, replica, chosen))
    }

    /// Highest random weight over the usable slots: the rare path of a
    /// sparse ring, after every round found its bucket vacant.
    #[cold]
    #[inline(never)]
    fn fallback(occ: &Occupancy, hash: u64, replica: u32, chosen: &[Slot]) -> Option<Slot> {
        let fb = seed(hash, replica, ROUNDS);
        occ.iter()
            .filter(|s| !chosen.contains(s))
            .max_by_key(|&s| fallback_weight(fb, s))
    }

    /// The lowest slot that no member claims, where this node should register
    /// its next member of the type; `None` if every slot below the limit is
    /// claimed.
    pub fn free_slot(&self) -> Option<Slot> {
        let s = self.held.first_vacant();
        (s < u64::from(self.slot_limit)).then_some(s as Slot)
    }

    /// The members that hold no slot (they lost a concurrent claim), with the
    /// slot they claim, by slot then key. A node re-registers those it owns
    /// on a [`free_slot`](Self::free_slot).
    pub fn displaced(&self) -> impl Iterator<Item = (&K, Slot)> + '_ {
        self.claims.contenders()
    }

    /// The member holding `slot`.
    #[inline]
    pub fn holder(&self, slot: Slot) -> Option<&K> {
        self.claims.holder(slot)
    }

    /// Whether `key` is a member holding its slot.
    pub fn holds(&self, key: &K) -> bool {
        self.members
            .get(key)
            .is_some_and(|m| self.claims.holder(m.slot) == Some(key))
    }

    /// Member `key`, if present.
    pub fn member(&self, key: &K) -> Option<&Member> {
        self.members.get(key)
    }

    /// Every member, by key, holders and contenders alike.
    pub fn members(&self) -> impl Iterator<Item = (&K, &Member)> + '_ {
        self.members.iter()
    }

    /// How many members the ring has, holders and contenders alike.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the ring has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// How many members a lookup with `routing` can return.
    pub fn routable(&self, routing: Routing) -> usize {
        self.occupancy(routing).len() as usize
    }

    /// The largest slot claimed plus one: the ring's capacity.
    pub fn capacity(&self) -> Slot {
        self.held.max().map_or(0, |m| m + 1)
    }

    /// Vacant slots below the highest held one.
    ///
    /// Lookup cost depends on it: a key whose bucket is vacant draws again,
    /// so a lookup takes `capacity / (capacity - holes)` rounds on average
    /// (balance does not: the keys of vacant slots spread evenly).
    /// Registering on the lowest free slot fills holes first.
    pub fn holes(&self) -> usize {
        self.capacity() as usize - self.held.len() as usize
    }

    /// The slot limit this ring accepts claims below.
    pub fn slot_limit(&self) -> Slot {
        self.slot_limit
    }

    #[inline(always)]
    fn occupancy(&self, routing: Routing) -> &Occupancy {
        match routing {
            Routing::OnlineOnly => &self.online,
            Routing::AllowOffline => &self.held,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_members_route_only_when_allowed() {
        let mut r = Ring::new();
        r.insert(1u32, 0, false).unwrap();
        assert_eq!(r.lookup(b"k", Routing::OnlineOnly), None);
        assert_eq!(r.lookup(b"k", Routing::AllowOffline), Some(&1));
        r.set_online(&1, true);
        assert_eq!(r.lookup(b"k", Routing::OnlineOnly), Some(&1));
    }

    #[test]
    fn contender_takes_over_with_its_own_online_flag() {
        let mut r = Ring::new();
        assert_eq!(r.insert(5u32, 0, true), Ok(Claim::Holds));
        assert_eq!(r.insert(9u32, 0, false), Ok(Claim::Contends));
        assert_eq!(r.displaced().collect::<alloc::vec::Vec<_>>(), [(&9, 0)]);
        assert_eq!(r.free_slot(), Some(1));
        r.insert(3, 2, true).unwrap();
        assert_eq!((r.capacity(), r.holes()), (3, 1));
        r.remove(&3);
        r.remove(&5);
        assert!(r.holds(&9));
        assert_eq!(r.routable(Routing::OnlineOnly), 0);
        assert_eq!(r.routable(Routing::AllowOffline), 1);
        assert_eq!(
            r.insert(1, DEFAULT_SLOT_LIMIT, true),
            Err(SlotOutOfRange {
                slot: DEFAULT_SLOT_LIMIT,
                limit: DEFAULT_SLOT_LIMIT
            })
        );
    }
}
